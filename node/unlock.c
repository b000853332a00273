/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Opening one LUKS2 volume with its systemd-tpm2 tokens: each token is tried in turn, its key
 * unsealed under the token's PCR policy and used to activate the volume, and a refusal is
 * explained by naming the PCRs that moved. Only when none opens it, and it has a
 * keystrap-attested token, does keystrap attest to the token's server for its share: a boot
 * the strict tokens open never touches the network.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <blkid/blkid.h>

#include "attest-msg.h"
#include "attest.h"
#include "encode.h"
#include "log.h"
#include "luks.h"
#include "measure.h"
#include "open.h"
#include "reseal.h"
#include "token.h"
#include "unlock.h"

/* Names each bound PCR whose value differs from what the token was sealed against. */
static void explain_policy_failure(struct tpm *t, const char *path, int tok, const struct tpm2_token *k)
{
	uint8_t now[PCR_COUNT][PCR_DIGEST_MAX];
	char msg[2048] = "", pcrs[80];
	size_t o = 0;

	pcr_mask_format(k->pcr_mask, pcrs, sizeof(pcrs));
	if (k->values_mask != k->pcr_mask || tpm_pcr_read(t, k->bank, k->pcr_mask, now) < 0) {
		log_error("%s token %d: PCR policy not satisfied: the current values of PCRs %s (%s) "
			  "differ from those it was sealed against (the token does not record which)",
			  path, tok, pcrs, k->bank->name);
		return;
	}
	for (unsigned i = 0; i < PCR_COUNT; i++) {
		char have[2 * PCR_DIGEST_MAX + 1], want[2 * PCR_DIGEST_MAX + 1];

		if (!(k->pcr_mask & (1u << i)) || memcmp(now[i], k->values[i], k->bank->size) == 0)
			continue;
		hex_encode(now[i], k->bank->size, have);
		hex_encode(k->values[i], k->bank->size, want);
		o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%sPCR %u is %s but policy wants %s",
				      o ? "; " : "", i, have, want);
		if (o >= sizeof(msg))
			break;
	}
	if (o == 0)
		log_error("%s token %d: PCR policy not satisfied although PCRs %s (%s) hold the enrolled "
			  "values (policy hash does not match them)", path, tok, pcrs, k->bank->name);
	else
		log_error("%s token %d: PCR mismatch (%s): %s", path, tok, k->bank->name, msg);
}

/*
 * Unseals k's object under its policy (auth first, for a signed one), each refusal said in one
 * line: -EPERM only when bound PCRs differ from what it was sealed against.
 */
static int unseal_token(struct tpm *t, const char *path, int tok, const struct tpm2_token *k,
			const struct tpm_authorize *auth, struct secbuf **ret)
{
	ESYS_TR parent = ESYS_TR_NONE;
	int r;

	if (k->srk_size > 0)
		r = tpm_srk_load(t, k->srk, k->srk_size, &parent);
	else
		r = tpm_primary_create(t, k->primary_alg, &parent);
	if (r == -ENOKEY)
		return log_error_errno(r, "%s token %d: the TPM's SRK at 0x%x is not the one the volume "
				       "was sealed under", path, tok, TPM_SRK_HANDLE);
	if (r < 0)
		return log_error_errno(r, "%s token %d: %s", path, tok, tpm_failure_reason(r));

	r = tpm_unseal(t, parent, k->blob, k->blob_size, auth, k->bank, k->pcr_mask, ret);
	tpm_flush(t, &parent);
	if (r == -EBADMSG && auth)
		return log_error_errno(r, "%s token %d: the TPM refused the PCR signature (VerifySignature "
				       "failed: it is not the token key's signature of this policy)", path, tok);
	if (r == -EPERM && k->pcr_mask == 0)
		return log_error_errno(-EKEYREJECTED, "%s token %d: the signed PCR policy is satisfied but the key is "
				       "sealed to another policy (signed by another key or over other PCRs)",
				       path, tok);
	if (r == -EPERM) {
		explain_policy_failure(t, path, tok, k);
		return r;
	}
	if (r < 0)
		return log_error_errno(r, "%s token %d: %s", path, tok, tpm_failure_reason(r));
	return 0;
}

/* Opens keyslot slot of cd as name (NULL: dry run) with passphrase, or says why not. */
static int activate(struct crypt_device *cd, const char *path, const char *name, int tok, int slot,
		    const struct secbuf *passphrase, const char *what)
{
	int r = luks_activate(cd, name, slot, passphrase);

	if (r == -EPERM)
		return log_error_errno(-EKEYREJECTED, "%s token %d: %s does not open keyslot %d", path, tok, what, slot);
	if (r < 0)
		return log_error_errno(r, "%s: cannot open as '%s': %s", path, name ? name : "(dry run)",
				       r == -ENOTSUP || r == -ENODEV ?
					       "device-mapper is not available (dm_crypt module not loaded?)" :
					       strerror(-r));
	return 0;
}

/*
 * A refusal because bound PCRs moved (-EPERM) adds their values to seen, read now: what a reseal
 * after the attested path seals to, before attest measures into PCR 12.
 */
static int try_token(struct tpm *t, const char *path, const char *name, const char *signature,
		     struct crypt_device *cd, int tok, const char *json, struct reseal_pcrs *seen)
{
	_cleanup_free_ struct tpm_authorize *auth = NULL;
	_cleanup_secbuf_ struct secbuf *secret = NULL, *passphrase = NULL;
	_cleanup_free_ struct tpm2_token *k = malloc(sizeof(*k));
	const char *why;
	int r;

	if (!k)
		return log_error_errno(-ENOMEM, "out of memory");
	r = token_parse(json, strlen(json), k, &why);
	if (r < 0)
		return log_error_errno(r, "%s token %d is malformed: %s", path, tok, why);
	if (!luks_keyslot_in_use(cd, k->keyslot))
		return log_error_errno(-ENOENT, "%s token %d points at keyslot %d, which holds no key "
				       "of this volume", path, tok, k->keyslot);
	if (k->pin)
		return log_error_errno(-EOPNOTSUPP, "%s token %d needs a PIN; keystrap unlocks "
				       "unattended only", path, tok);
	if (k->pubkey_size > 0) {
		auth = malloc(sizeof(*auth));
		if (!auth)
			return log_error_errno(-ENOMEM, "out of memory");
		r = unlock_signed_policy(t, path, tok, k, signature, auth);
		if (r < 0)
			return r;
	}

	r = unseal_token(t, path, tok, k, auth, &secret);
	if (r == -EPERM && reseal_pcrs_read(seen, t, k->bank, k->pcr_mask) < 0)
		log_error("%s token %d: cannot read PCRs to reseal it to later", path, tok);
	if (r < 0)
		return r;
	if (token_passphrase(secret, &passphrase) < 0)
		return log_error_errno(-ENOMEM, "out of memory");
	if ((r = activate(cd, path, name, tok, k->keyslot, passphrase, "the unsealed key")) < 0)
		return r;
	if (name)
		printf("%s: opened as /dev/mapper/%s (token %d, keyslot %d)\n", path, name, tok, k->keyslot);
	else
		printf("%s: token %d unseals a key that opens keyslot %d (dry run)\n", path, tok, k->keyslot);
	return 0;
}

/* The configuration with [Attest] and Offline=, loaded (and measured) the first time a volume needs it. */
static const struct keystrap_config *config_of(struct tpm *t, struct unlock_options *o)
{
	if (!o->config && o->config_path && !o->config_tried) {
		o->config_tried = true;
		if (config_load(t, o->config_path, &o->loaded) >= 0)
			o->config = o->loaded;
	}
	return o->config;
}

/* The share the server released for volume, from the opened payload; NULL when it sent none. */
static const struct secbuf *released_share(const struct node_credentials *c, const char *volume)
{
	char name[sizeof(ATTEST_DISK_SHARE_PREFIX) + ATTEST_VOLUME_LEN];

	snprintf(name, sizeof(name), ATTEST_DISK_SHARE_PREFIX "%s", volume);
	for (size_t i = 0; i < c->n_secrets; i++)
		if (streq(c->secrets[i].name, name))
			return c->secrets[i].value;
	return NULL;
}

/*
 * The attested token: this TPM's share first (offline), then an attestation that brings the
 * server's share back sealed to this TPM, then the keyslot both open.
 */
static int try_attested(struct tpm *t, const struct volume *v, struct crypt_device *cd, int tok, const char *json,
			struct unlock_options *o, uint32_t stale, const struct reseal_pcrs *seen)
{
	_cleanup_secbuf_ struct secbuf *share_tpm = NULL, *passphrase = NULL;
	_cleanup_node_credentials_ struct node_credentials *c = NULL;
	_cleanup_free_ struct attested_token *k = malloc(sizeof(*k));
	const char *name = o->dry_run ? NULL : v->name, *why, *const *get;
	const struct keystrap_config *cfg;
	const struct secbuf *share_srv;
	struct attest_options a;
	char uuid[ATTEST_VOLUME_LEN + 1];
	int r;

	if (!k)
		return log_error_errno(-ENOMEM, "out of memory");
	if ((r = token_attested_parse(json, strlen(json), k, &why)) < 0)
		return log_error_errno(r, "%s token %d is malformed: %s", v->path, tok, why);
	if (!luks_keyslot_in_use(cd, k->tpm.keyslot))
		return log_error_errno(-ENOENT, "%s token %d points at keyslot %d, which holds no key "
				       "of this volume", v->path, tok, k->tpm.keyslot);
	if (luks_uuid(cd, uuid) < 0)
		snprintf(uuid, sizeof(uuid), "no LUKS2 UUID");
	if (!streq(uuid, k->volume))
		return log_error_errno(-EXDEV, "%s token %d belongs to volume %s, not to this one (%s)", v->path, tok,
				       k->volume, uuid);
	cfg = config_of(t, o);
	if (!cfg || !cfg->server || !cfg->ca)
		return log_error_errno(-ENOENT, "%s token %d is attested but there is no [Attest] Server= and CA= "
				       "to attest to (%s)", v->path, tok, o->config_path ?: "no keystrap.conf");
	if (!streq(cfg->server, k->server))
		return log_error_errno(-EXDEV, "%s token %d holds a share of keystrap-server %s, but [Attest] "
				       "Server= is %s", v->path, tok, k->server, cfg->server);

	/* Offline first: a boot this TPM would refuse its share to sends nothing to the server. */
	if ((r = unseal_token(t, v->path, tok, &k->tpm, NULL, &share_tpm)) < 0)
		return r;
	attest_options_from_config(cfg, TPM_EK_RSA2048, &a);
	get = (const char *const[]){ k->volume };
	a.tpm = t;
	a.shares_get = get;
	a.n_shares_get = 1;
	if ((r = attest_run(&a, &c, NULL)) < 0)
		return r;
	share_srv = released_share(c, k->volume);
	if (!share_srv)
		return log_error_errno(-ENOKEY, "%s token %d: the server accepted this boot but released no share "
				       "for volume %s: it holds none for this node and volume (enroll --attested "
				       "again)", v->path, tok, k->volume);
	if (token_attested_passphrase(share_tpm, share_srv, k->volume, &passphrase) < 0)
		return log_error_errno(-EPROTO, "%s token %d: the server's share for volume %s is %zu bytes, not %d",
				       v->path, tok, k->volume, share_srv->size, TOKEN_SHARE_SIZE);
	if ((r = activate(cd, v->path, name, tok, k->tpm.keyslot, passphrase,
			  "this TPM's share with the server's")) < 0)
		return r;
	if (name)
		printf("%s: opened as /dev/mapper/%s (attested token %d, keyslot %d)\n", v->path, name, tok,
		       k->tpm.keyslot);
	else
		printf("%s: attested token %d: this TPM's share and the server's open keyslot %d (dry run)\n", v->path,
		       tok, k->tpm.keyslot);
	fflush(stdout);
	if (o->attested) {
		struct unlock_attested u = {
			.volume = v,
			.cd = cd,
			.tpm = t,
			.token = tok,
			.keyslot = k->tpm.keyslot,
			.stale = stale,
			.seen = seen,
			.passphrase = passphrase,
			.dry_run = o->dry_run,
		};

		(void)o->attested(&u, o->userdata);
	}
	return 0;
}

/* A TPM that failed like this will not do better for the next token. */
static bool tpm_gone(int r)
{
	return r == -ENOLCK || r == -EIO || r == -ENODEV || r == -ETIMEDOUT;
}

int unlock_volume(struct tpm **t, const struct volume *v, struct unlock_options *o)
{
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	_cleanup_free_ struct reseal_pcrs *seen = calloc(1, sizeof(*seen));
	const struct keystrap_config *cfg = NULL;
	uint32_t leftovers = 0, stale = 0;
	const char *json, *attested_json = NULL;
	int r, tok = -1, tried = 0, skipped = 0, attested = -1;

	if (!seen)
		return log_error_errno(-ENOMEM, "out of memory");
	r = luks_load(v->path, &cd);
	if (r < 0)
		return r;
	/* What an enroll cut short leaves opens nothing; removing it is a write, so a dry run
	 * only says so, once, and skips it. */
	(void)luks_repair_logged(cd, v->path, o->dry_run, &leftovers);
	if (!o->dry_run && v->name && crypt_status(NULL, v->name) == CRYPT_ACTIVE) {
		printf("%s: already open as /dev/mapper/%s\n", v->path, v->name);
		return 0;
	}
	for (tok = -1; (tok = luks_next_token(cd, tok, TOKEN_TYPE_ATTESTED, &json)) >= 0;)
		if (!(leftovers & (1u << tok))) {
			attested = tok;
			attested_json = json;
			break;
		}
	if (attested >= 0) {
		if (!*t && (r = tpm_connect(t)) < 0)
			return r;
		cfg = config_of(*t, o);
	}
	tok = -1;
	while ((tok = luks_next_tpm2_token(cd, tok, &json)) >= 0) {
		if (leftovers & (1u << tok)) {
			skipped++;
			continue;
		}
		/* Offline=no: revocation always wins, so where an attested token is, no TPM-only one counts. */
		if (attested >= 0 && cfg && !cfg->offline) {
			log_info("%s token %d: not used: Offline=no, and token %d is attested", v->path, tok, attested);
			continue;
		}
		if (!*t && (r = tpm_connect(t)) < 0)
			return r;
		tried++;
		r = try_token(*t, v->path, o->dry_run ? NULL : v->name, o->signature, cd, tok, json, seen);
		if (r == 0)
			return 0;
		if (r == -EPERM)
			stale |= 1u << tok;
		if (tpm_gone(r))
			return r;
	}
	if (attested >= 0)
		return try_attested(*t, v, cd, attested, attested_json, o, stale, seen) < 0 ? -EACCES : 0;
	if (!tried && skipped)
		return -ENOENT;
	if (!tried)
		return log_error_errno(-ENOENT, "'%s' has no systemd-tpm2 token", v->path);
	return -EACCES;
}

int unlock_find_all(struct volume *vols, size_t *n)
{
	blkid_cache cache = NULL;
	blkid_dev_iterate it;
	blkid_dev dev;

	if (blkid_get_cache(&cache, "/dev/null") < 0)
		return -ENOMEM;
	(void)blkid_probe_all(cache);
	it = blkid_dev_iterate_begin(cache);
	(void)blkid_dev_set_search(it, "TYPE", "crypto_LUKS");
	while (blkid_dev_next(it, &dev) == 0 && *n < UNLOCK_VOLUMES_MAX) {
		_cleanup_crypt_ struct crypt_device *cd = NULL;
		const char *path = blkid_dev_devname(dev), *json;
		char *uuid;

		dev = blkid_verify(cache, dev);
		if (!dev || luks_open(path, &cd) < 0 ||
		    (luks_next_tpm2_token(cd, -1, &json) < 0 && luks_next_token(cd, -1, TOKEN_TYPE_ATTESTED, &json) < 0))
			continue;
		uuid = blkid_get_tag_value(cache, "UUID", path);
		if (!uuid)
			continue;
		vols[*n].path = strdup(path);
		if (asprintf(&vols[*n].name, "luks-%s", uuid) < 0)
			vols[*n].name = NULL;
		free(uuid);
		if (vols[*n].path && vols[*n].name)
			(*n)++;
	}
	blkid_dev_iterate_end(it);
	blkid_put_cache(cache);
	return 0;
}
