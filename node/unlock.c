/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Opening one LUKS2 volume with its systemd-tpm2 tokens: each token is tried in turn, its key
 * unsealed under the token's PCR policy and used to activate the volume, and a refusal is
 * explained by naming the PCRs that moved.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <blkid/blkid.h>

#include "encode.h"
#include "log.h"
#include "luks.h"
#include "open.h"
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

static int try_token(struct tpm *t, const char *path, const char *name, const char *signature,
		     struct crypt_device *cd, int tok, const char *json)
{
	_cleanup_free_ struct tpm_authorize *auth = NULL;
	_cleanup_secbuf_ struct secbuf *secret = NULL, *passphrase = NULL;
	_cleanup_free_ struct tpm2_token *k = malloc(sizeof(*k));
	ESYS_TR parent = ESYS_TR_NONE;
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

	if (k->srk_size > 0)
		r = tpm_srk_load(t, k->srk, k->srk_size, &parent);
	else
		r = tpm_primary_create(t, k->primary_alg, &parent);
	if (r == -ENOKEY)
		return log_error_errno(r, "%s token %d: the TPM's SRK at 0x%x is not the one the volume "
				       "was sealed under", path, tok, TPM_SRK_HANDLE);
	if (r < 0)
		return log_error_errno(r, "%s token %d: %s", path, tok, tpm_failure_reason(r));

	r = tpm_unseal(t, parent, k->blob, k->blob_size, auth, k->bank, k->pcr_mask, &secret);
	tpm_flush(t, &parent);
	if (r == -EBADMSG && auth)
		return log_error_errno(r, "%s token %d: the TPM refused the PCR signature (VerifySignature "
				       "failed: it is not the token key's signature of this policy)", path, tok);
	if (r == -EPERM && k->pcr_mask == 0)
		return log_error_errno(r, "%s token %d: the signed PCR policy is satisfied but the key is "
				       "sealed to another policy (signed by another key or over other PCRs)",
				       path, tok);
	if (r == -EPERM) {
		explain_policy_failure(t, path, tok, k);
		return r;
	}
	if (r < 0)
		return log_error_errno(r, "%s token %d: %s", path, tok, tpm_failure_reason(r));

	if (token_passphrase(secret, &passphrase) < 0)
		return log_error_errno(-ENOMEM, "out of memory");

	r = luks_activate(cd, name, k->keyslot, passphrase);
	if (r == -EPERM)
		return log_error_errno(r, "%s token %d: the unsealed key does not open keyslot %d", path,
				       tok, k->keyslot);
	if (r < 0)
		return log_error_errno(r, "%s: cannot open as '%s': %s", path, name ? name : "(dry run)",
				       r == -ENOTSUP || r == -ENODEV ?
					       "device-mapper is not available (dm_crypt module not loaded?)" :
					       strerror(-r));
	if (name)
		printf("%s: opened as /dev/mapper/%s (token %d, keyslot %d)\n", path, name, tok, k->keyslot);
	else
		printf("%s: token %d unseals a key that opens keyslot %d (dry run)\n", path, tok, k->keyslot);
	return 0;
}

int unlock_volume(struct tpm **t, const struct volume *v, const char *signature, bool dry_run)
{
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	uint32_t leftovers = 0;
	const char *json;
	int r, tok = -1, tried = 0, skipped = 0;

	r = luks_load(v->path, &cd);
	if (r < 0)
		return r;
	/* What an enroll cut short leaves opens nothing; removing it is a write, so a dry run
	 * only says so, once, and skips it. */
	(void)luks_repair_logged(cd, v->path, dry_run, &leftovers);
	if (!dry_run && crypt_status(NULL, v->name) == CRYPT_ACTIVE) {
		printf("%s: already open as /dev/mapper/%s\n", v->path, v->name);
		return 0;
	}
	while ((tok = luks_next_tpm2_token(cd, tok, &json)) >= 0) {
		if (leftovers & (1u << tok)) {
			skipped++;
			continue;
		}
		if (!*t && (r = tpm_connect(t)) < 0)
			return r;
		tried++;
		r = try_token(*t, v->path, dry_run ? NULL : v->name, signature, cd, tok, json);
		if (r == 0)
			return 0;
		/* Lockout and a dead TPM will not get better with the next token. */
		if (r == -ENOLCK || r == -EIO || r == -ENODEV || r == -ETIMEDOUT)
			return r;
	}
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
		if (!dev || luks_open(path, &cd) < 0 || luks_next_tpm2_token(cd, -1, &json) < 0)
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
