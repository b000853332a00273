/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap enroll --attested: a keyslot whose passphrase needs two shares, share_tpm sealed in
 * this TPM under a PCR policy updates leave alone and share_srv, which keystrap-server keeps for
 * this node and volume and releases only to an attestation its signed policy accepts
 * (token_attested_passphrase). The server is given share_srv inside an attestation; only once
 * it answered that attestation as accepted, and its reply verified, does luks_enroll write the
 * pending record, the keyslot and the keystrap-attested token (enroll.c's three commits).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attest-msg.h"
#include "attest.h"
#include "enroll.h"
#include "log.h"
#include "luks.h"
#include "open.h"
#include "token.h"

struct attested_ctx {
	struct attested_token token;
	const struct attest_options *attest;
	const char *path;
	const struct secbuf *share_srv;
	enum attest_failure failure;
};

/* luks_enroll's last step before it writes: the attestation that stores share_srv, then the token. */
static int attest_then_token(int slot, void *userdata, char **ret_json)
{
	_cleanup_node_credentials_ struct node_credentials *c = NULL;
	struct attested_ctx *x = userdata;
	struct attest_options o = *x->attest;

	o.share_volume = x->token.volume;
	o.share = x->share_srv;
	if (attest_run(&o, &c, &x->failure) < 0)
		return log_error_errno(-ECANCELED, "no attested keyslot: the attestation did not pass, so nothing "
				       "was written to '%s'", x->path);
	x->token.tpm.keyslot = slot;
	return token_attested_format(&x->token, ret_json);
}

int enroll_attested(struct crypt_device *cd, const char *path, const struct secbuf *existing,
		    const char *existing_what, struct pcr_spec *spec, uint16_t alg, bool srk,
		    const struct attest_options *attest, bool offline, struct enroll_attested_result *ret,
		    enum attest_failure *ret_failure)
{
	_cleanup_secbuf_ struct secbuf *share_tpm = NULL, *share_srv = NULL, *passphrase = NULL;
	_cleanup_free_ struct attested_ctx *x = calloc(1, sizeof(*x));
	uint32_t earlier = 0, strict = 0, keyslots = 0;
	int r, slot, token;

	if (!x)
		return log_error_errno(-ENOMEM, "out of memory");
	if (!attest->server || strlen(attest->server) > TOKEN_SERVER_MAX)
		return log_error_errno(-EINVAL, "no keystrap-server URL of at most %d bytes to enroll with",
				       TOKEN_SERVER_MAX);
	if (luks_uuid(cd, x->token.volume) < 0)
		return log_error_errno(-EINVAL, "'%s' has the UUID '%s', which is not a LUKS2 UUID (8-4-4-4-12 hex "
				       "digits)", path, crypt_get_uuid(cd) ?: "");
	snprintf(x->token.server, sizeof(x->token.server), "%s", attest->server);
	/* What goes once the new token is there, asked before anything is sent or written: the
	 * server keeps one share per node and volume, so an earlier attested token of this volume
	 * can open nothing after this; with Offline=no, every strict TPM-only token too. */
	if ((r = enroll_replace_check(cd, path, TOKEN_TYPE_ATTESTED, &earlier)) < 0 ||
	    (!offline && (r = enroll_replace_check(cd, path, TOKEN_TYPE_TPM2, &strict)) < 0))
		return r;

	if ((r = enroll_random(TOKEN_SHARE_SIZE, &share_tpm)) < 0 || (r = enroll_random(TOKEN_SHARE_SIZE, &share_srv)) < 0 ||
	    (r = enroll_seal(NULL, spec, alg, srk, share_tpm, &x->token.tpm)) < 0)
		return r;
	if (token_attested_passphrase(share_tpm, share_srv, x->token.volume, &passphrase) < 0)
		return log_error_errno(-ENOMEM, "cannot derive the attested keyslot's passphrase");

	x->attest = attest;
	x->path = path;
	x->share_srv = share_srv;
	x->failure = ATTEST_FAILED_LOCAL;
	r = enroll_add_keyslot(cd, path, existing, existing_what, passphrase, attest_then_token, x, &slot, &token);
	if (r == -ECANCELED && ret_failure)
		*ret_failure = x->failure;
	if (r < 0 || (r = enroll_replace(cd, path, slot, token, earlier | strict, &keyslots)) < 0)
		return r;
	*ret = (struct enroll_attested_result){
		.keyslot = slot,
		.token = token,
		.replaced = earlier | strict,
		.keyslots_removed = keyslots,
	};
	return 0;
}
