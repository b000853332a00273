/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Enrolling a volume: a fresh 256-bit key sealed in the TPM under the PCR policy, then a LUKS2
 * keyslot for it and the systemd-tpm2 token that describes it (luks_enroll orders the two
 * commits so a cut-short run leaves something the next run recognises and removes).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "enroll.h"
#include "log.h"
#include "luks.h"
#include "open.h"
#include "token.h"

#define SECRET_SIZE 32

struct enroll_ctx {
	struct tpm2_token token;
};

static int make_token(int slot, void *userdata, char **ret_json)
{
	struct enroll_ctx *c = userdata;

	c->token.keyslot = slot;
	return token_format(&c->token, ret_json);
}

int enroll_random(size_t size, struct secbuf **ret)
{
	_cleanup_secbuf_ struct secbuf *b = secbuf_new(size);

	if (!b)
		return log_error_errno(-ENOMEM, "out of memory");
	if (getrandom(b->data, size, 0) != (ssize_t)size)
		return log_error_errno(-errno, "getrandom failed: %m");
	*ret = TAKE_PTR(b);
	return 0;
}

int enroll_seal(struct tpm *tpm, struct pcr_spec *spec, uint16_t alg, bool srk, const struct secbuf *secret,
		struct tpm2_token *tok)
{
	_cleanup_tpm_ struct tpm *own = NULL;
	struct tpm *t = tpm;
	uint8_t current[PCR_COUNT][PCR_DIGEST_MAX];
	ESYS_TR primary = ESYS_TR_NONE;
	char pcrs[80];
	int r;

	if (!t) {
		r = tpm_connect(&own);
		if (r < 0)
			return r;
		t = own;
	}
	pcr_mask_format(spec->mask, pcrs, sizeof(pcrs));

	/* Read even when every value is given: a bank this TPM has not allocated would seal a key
	 * that can never be unsealed. */
	r = tpm_pcr_read(t, spec->bank, spec->mask, current);
	if (r < 0)
		return log_error_errno(r, "cannot read PCRs %s from bank %s: %s", pcrs, spec->bank->name,
				       tpm_failure_reason(r));
	for (unsigned i = 0; i < PCR_COUNT; i++)
		if (spec->mask & ~spec->given & (1u << i))
			memcpy(spec->values[i], current[i], spec->bank->size);
	spec->given = spec->mask;
	r = pcr_policy_digest(spec, tok->policy_hash);
	if (r < 0)
		return log_error_errno(r, "cannot compute the PCR policy digest");

	if (srk)
		r = tpm_srk_ensure(t, &primary, tok->srk, sizeof(tok->srk), &tok->srk_size);
	else
		r = tpm_primary_create(t, alg, &primary);
	if (r == -ENOKEY)
		return log_error_errno(r, "the object at 0x%x is not a storage key; it cannot be the SRK",
				       TPM_SRK_HANDLE);
	if (r < 0)
		return log_error_errno(r, "cannot %s the TPM storage primary key: %s",
				       srk ? "create and persist" : "create", tpm_failure_reason(r));
	r = tpm_seal(t, primary, tok->policy_hash, secret, tok->blob, sizeof(tok->blob), &tok->blob_size);
	tpm_flush(t, &primary);
	if (r < 0)
		return log_error_errno(r, "cannot seal the disk key: %s", tpm_failure_reason(r));

	tok->pcr_mask = spec->mask;
	tok->bank = spec->bank;
	tok->primary_alg = alg;
	tok->values_mask = spec->mask;
	memcpy(tok->values, spec->values, sizeof(spec->values));
	return 0;
}

static int seal_new_key(struct tpm *t, struct pcr_spec *spec, uint16_t alg, bool srk, struct enroll_ctx *c,
			struct secbuf **ret_passphrase)
{
	_cleanup_secbuf_ struct secbuf *secret = NULL, *passphrase = NULL;
	int r;

	if ((r = enroll_random(SECRET_SIZE, &secret)) < 0 || (r = enroll_seal(t, spec, alg, srk, secret, &c->token)) < 0)
		return r;
	if (token_passphrase(secret, &passphrase) < 0)
		return log_error_errno(-ENOMEM, "out of memory");
	*ret_passphrase = TAKE_PTR(passphrase);
	return 0;
}

int enroll_add_keyslot(struct crypt_device *cd, const char *path, const struct secbuf *existing,
		       const char *existing_what, const struct secbuf *passphrase,
		       int (*make_json)(int slot, void *userdata, char **ret_json), void *userdata,
		       int *ret_slot, int *ret_token)
{
	enum luks_leftover leftover;
	int r;

	r = luks_enroll(cd, existing, passphrase, make_json, userdata, ret_slot, ret_token, &leftover);
	/* make_json said why itself; nothing was written. */
	if (r == -ECANCELED)
		return r;
	if (r == -EACCES)
		return log_error_errno(r, "the existing %s does not open any keyslot of '%s'", existing_what, path);
	if (r == -ENOBUFS)
		return log_error_errno(r, "all 32 LUKS2 token slots of '%s' are in use; nothing was added "
				       "(free one with 'cryptsetup token remove')", path);
	if (r == -EMLINK)
		return log_error_errno(r, "all LUKS2 keyslots of '%s' are in use; nothing was added "
				       "(free one with 'cryptsetup luksKillSlot')", path);
	if (r < 0)
		return log_error_errno(r, "cannot add keyslot and token to '%s': %s; %s", path,
				       r == -E2BIG ? "the LUKS2 header has no room left for them" : strerror(-r),
				       leftover == LUKS_LEFT_ENROLLED ?
					 "the new keyslot and token were written all the same and open the "
					 "volume (see cryptsetup luksDump)" :
				       leftover == LUKS_LEFT_PENDING ?
					 "what was written could not be removed now: keystrap enroll or unlock "
					 "removes it when next run" :
					 "nothing was added");
	return 0;
}

int enroll_volume(struct crypt_device *cd, const char *path, const struct secbuf *existing, const char *existing_what,
		  struct pcr_spec *spec, uint16_t alg, bool srk, int *ret_slot, int *ret_token)
{
	return enroll_volume_tpm(NULL, cd, path, existing, existing_what, spec, alg, srk, NULL, ret_slot, ret_token);
}

int enroll_volume_tpm(struct tpm *t, struct crypt_device *cd, const char *path, const struct secbuf *existing,
		      const char *existing_what, struct pcr_spec *spec, uint16_t alg, bool srk,
		      const uint8_t *replaces, int *ret_slot, int *ret_token)
{
	_cleanup_secbuf_ struct secbuf *passphrase = NULL;
	_cleanup_free_ struct enroll_ctx *c = NULL;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return log_error_errno(-ENOMEM, "out of memory");
	r = seal_new_key(t, spec, alg, srk, c, &passphrase);
	if (r < 0)
		return r;
	if (replaces) {
		memcpy(c->token.replaces, replaces, sizeof(c->token.replaces));
		c->token.replaces_set = true;
	}
	return enroll_add_keyslot(cd, path, existing, existing_what, passphrase, make_token, c, ret_slot, ret_token);
}

int enroll_replace_check_tokens(struct crypt_device *cd, const char *path, uint32_t tokens)
{
	int r;

	for (int tok = 0; tok < 32; tok++) {
		struct luks_removal p;

		if (!(tokens & (1u << tok)))
			continue;
		r = luks_removal_plan(cd, tok, &p);
		if (r < 0)
			return log_error_errno(r, "cannot read token %d of '%s': %s", tok, path, strerror(-r));
		if (p.refusal == LUKS_REMOVE_SHARED)
			return log_error_errno(-EBUSY, "cannot replace token %d of '%s': its keyslot %d is also "
					       "bound to token %d; nothing was added", tok, path, p.keyslot, p.other);
	}
	return 0;
}

int enroll_replace_check(struct crypt_device *cd, const char *path, const char *type, uint32_t *ret_old)
{
	const char *json = NULL;
	uint32_t old = 0;
	int r;

	for (int tok = -1; (tok = luks_next_token(cd, tok, type, &json)) >= 0;)
		old |= 1u << tok;
	r = enroll_replace_check_tokens(cd, path, old);
	if (r < 0)
		return r;
	*ret_old = old;
	return 0;
}

int enroll_replace(struct crypt_device *cd, const char *path, int slot, int token, uint32_t old,
		   uint32_t *ret_keyslots)
{
	uint32_t gone = 0;
	int r;

	for (int tok = 0; tok < 32; tok++) {
		struct luks_removal p;

		if (!(old & (1u << tok)))
			continue;
		r = luks_removal_plan(cd, tok, &p);
		if (r >= 0)
			r = luks_remove_token(cd, tok);
		if (r < 0)
			return log_error_errno(r, "enrolled keyslot %d, token %d of '%s', but cannot remove the "
					       "replaced token %d: %s; 'keystrap wipe --device %s --token %d' "
					       "removes it", slot, token, path, tok,
					       r == -EPERM ? "its keyslot is needed" : strerror(-r), path, tok);
		gone |= p.keyslots;
	}
	*ret_keyslots = gone;
	return 0;
}

static int make_recovery_token(int slot, void *userdata, char **ret_json)
{
	(void)userdata;
	return token_recovery_format(slot, ret_json);
}

int enroll_recovery(struct crypt_device *cd, const char *path, const struct secbuf *existing,
		    const char *existing_what, struct secbuf **ret_key, int *ret_slot, int *ret_token)
{
	_cleanup_secbuf_ struct secbuf *random = NULL, *key = NULL;
	int r;

	if ((r = enroll_random(RECOVERY_KEY_BYTES, &random)) < 0)
		return r;
	if (token_recovery_key(random, &key) < 0)
		return log_error_errno(-ENOMEM, "out of memory");
	r = enroll_add_keyslot(cd, path, existing, existing_what, key, make_recovery_token, NULL, ret_slot, ret_token);
	if (r < 0)
		return r;
	*ret_key = TAKE_PTR(key);
	return 0;
}
