/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reseal on an approved boot (issue 13 item 2): the attested token opened the volume because a
 * strict token no longer unsealed, so this boot's state passed the fleet's signed policy. Each
 * stale strict token is replaced by one sealed to the PCR values this boot showed, before PCR
 * 15 is extended, so the next boot unlocks offline again. The new keyslot and token are
 * committed first (luks_enroll's three commits, which a cut leaves for luks_repair), then the
 * stale token goes, keyslot first (luks_remove_token): every instant has a strict token bound
 * to its keyslot, and no keyslot without its token.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libcryptsetup.h>

#include "enroll.h"
#include "log.h"
#include "measure.h"
#include "reseal.h"
#include "token.h"
#include "unlock.h"

int reseal_pcrs_read(struct reseal_pcrs *p, struct tpm *t, const struct pcr_bank *bank, uint32_t mask)
{
	uint8_t now[PCR_COUNT][PCR_DIGEST_MAX];
	size_t b = pcr_bank_index(bank);
	int r;

	mask &= ~p->read[b];
	if (!mask)
		return 0;
	r = tpm_pcr_read(t, bank, mask, now);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < PCR_COUNT; i++)
		if (mask & (1u << i))
			memcpy(p->values[b][i], now[i], bank->size);
	p->read[b] |= mask;
	return 0;
}

/* What the new token binds: the stale one's bank and PCRs; PCR 15 as it binds it, the rest as seen. */
static void reseal_spec(const struct tpm2_token *k, const struct reseal_pcrs *seen, struct pcr_spec *ret)
{
	size_t b = pcr_bank_index(k->bank);

	*ret = (struct pcr_spec){ .bank = k->bank, .mask = k->pcr_mask };
	if (k->pcr_mask & (1u << LOCK_PCR)) {
		/* The boot value keys are sealed against, which the lock moves away from: zero when the
		 * token records none (systemd-cryptenroll's) and the values are zeroed above. */
		if (k->values_mask & (1u << LOCK_PCR))
			memcpy(ret->values[LOCK_PCR], k->values[LOCK_PCR], k->bank->size);
		ret->given |= 1u << LOCK_PCR;
	}
	if (!seen)
		return;
	for (unsigned i = 0; i < PCR_COUNT; i++)
		if ((k->pcr_mask & seen->read[b] & ~ret->given) & (1u << i)) {
			memcpy(ret->values[i], seen->values[b][i], k->bank->size);
			ret->given |= 1u << i;
		}
}

/* Why tok cannot be resealed, or NULL. */
static const char *unresealable(const struct tpm2_token *k)
{
	if (k->pubkey_size > 0)
		return "it is a signed-policy token (sign the new PCR values instead)";
	if (k->pin)
		return "it needs a PIN";
	if (k->pcr_mask == 0)
		return "it binds no PCR";
	return NULL;
}

/* One stale token: the new one committed, then the stale one removed. */
static int reseal_one(struct tpm *t, struct crypt_device *cd, const char *path, const struct secbuf *opened_with, int tok,
		      const struct reseal_pcrs *seen, bool dry_run)
{
	_cleanup_free_ struct tpm2_token *k = malloc(sizeof(*k));
	const char *json = NULL, *why = NULL;
	struct pcr_spec spec;
	uint32_t gone;
	int r, slot, token;
	char pcrs[80], cause[1024];
	uint8_t stale_blob[32];

	if (!k)
		return log_error_errno(-ENOMEM, "out of memory");
	r = crypt_token_json_get(cd, tok, &json);
	if (r < 0)
		return log_error_errno(r, "%s: cannot read token %d to reseal it: %s", path, tok, strerror(-r));
	r = token_parse(json, strlen(json), k, &why);
	if (r >= 0)
		r = token_blob_digest(json, strlen(json), stale_blob);
	if (r < 0)
		return log_error_errno(r, "%s token %d is malformed (%s); it is not resealed", path, tok,
				       why ?: "tpm2-blob");
	why = unresealable(k);
	if (why) {
		log_info("%s token %d is not resealed: %s", path, tok, why);
		return 0;
	}
	if (enroll_replace_check_tokens(cd, path, 1u << tok) < 0)
		return 0;

	reseal_spec(k, seen, &spec);
	pcr_mask_format(spec.mask, pcrs, sizeof(pcrs));
	if (dry_run) {
		printf("%s: token %d would be resealed to PCRs %s (%s) of this boot (dry run: nothing written)\n",
		       path, tok, pcrs, spec.bank->name);
		return 0;
	}
	/* enroll's line says what was left; this one adds that the stale token is still there. */
	log_capture(cause, sizeof(cause));
	r = enroll_volume_tpm(t, cd, path, opened_with, "attested token's passphrase", &spec, k->primary_alg,
			      k->srk_size > 0, stale_blob, &slot, &token);
	log_capture(NULL, 0);
	if (r < 0)
		return log_error_errno(r, "%s token %d was not resealed and stays: %s", path, tok, cause);
	r = enroll_replace(cd, path, slot, token, 1u << tok, &gone);
	if (r < 0)
		return r;
	printf("%s: resealed token %d to PCRs %s (%s) of this boot as token %d, keyslot %d; the next boot "
	       "unlocks offline\n", path, tok, pcrs, spec.bank->name, token, slot);
	return 0;
}

int reseal_strict(struct tpm *t, struct crypt_device *cd, const char *path, const struct secbuf *opened_with, uint32_t stale,
		  const struct reseal_pcrs *seen, bool dry_run)
{
	for (int tok = 0; tok < 32; tok++) {
		int r;

		if (!(stale & (1u << tok)))
			continue;
		r = reseal_one(t, cd, path, opened_with, tok, seen, dry_run);
		/* After a failed write cd is not the disk's header: the rest wait for the next boot. */
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * The attested token opened u->volume, so this boot passed the fleet's policy: the strict tokens
 * that refused it are resealed to the PCRs they were tried against, before the lock, so that the
 * next boot like this one unlocks offline. Its failures are said by reseal_strict; the volume is
 * open either way.
 */
int reseal_attested(const struct unlock_attested *u, void *userdata)
{
	(void)userdata;
	if (!u->stale)
		return 0;
	return reseal_strict(u->tpm, u->cd, u->volume->path, u->passphrase, u->stale, u->seen, u->dry_run);
}
