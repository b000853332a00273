/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * token_parse and token_classify on arbitrary bytes: what a LUKS2 header hands keystrap is
 * untrusted. Besides "no crash", every accepted token must survive token_format -> token_parse
 * unchanged (tpm2_srk and tpm2_pubkey are read but never written, so they are left out), and
 * token_classify names a keyslot in range or none. A keystrap-attested token that parses
 * formats and parses back to the same sealed object, server and volume.
 */
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "token.h"

static void must(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tpm2_token a, b;
	static struct attested_token at, bt;
	const char *why = NULL;
	char *json = NULL;
	int slot = 99;
	enum token_kind kind = token_classify((const char *)data, size, &slot);

	/* What repair may act on: a keyslot number in range, or none. */
	must(kind == TOKEN_PENDING ? slot >= -1 && slot < 32 :
	     kind == TOKEN_KEYSTRAP ? slot >= 0 && slot < 32 : slot == 99);
	if (token_attested_parse((const char *)data, size, &at, &why) == 0) {
		must(why == NULL && at.tpm.keyslot >= 0 && at.tpm.keyslot < 32 && at.tpm.values_mask == at.tpm.pcr_mask &&
		     at.tpm.pcr_mask && strncmp(at.server, "https://", 8) == 0 && strlen(at.volume) == 36);
		must(token_attested_format(&at, &json) == 0);
		must(token_attested_parse(json, strlen(json), &bt, &why) == 0);
		must(at.tpm.keyslot == bt.tpm.keyslot && at.tpm.pcr_mask == bt.tpm.pcr_mask && at.tpm.bank == bt.tpm.bank &&
		     at.tpm.blob_size == bt.tpm.blob_size && memcmp(at.tpm.blob, bt.tpm.blob, at.tpm.blob_size) == 0 &&
		     at.tpm.srk_size == bt.tpm.srk_size && memcmp(at.tpm.srk, bt.tpm.srk, at.tpm.srk_size) == 0 &&
		     streq(at.server, bt.server) && streq(at.volume, bt.volume));
		free(json);
		json = NULL;
		must(kind == TOKEN_KEYSTRAP && slot == at.tpm.keyslot);
	} else
		must(why != NULL);
	why = NULL;
	if (token_parse((const char *)data, size, &a, &why) < 0) {
		must(why != NULL);
		return 0;
	}
	must(why == NULL);
	must(a.keyslot >= 0 && a.keyslot < 32 && a.bank && a.blob_size > 0 && a.blob_size <= TOKEN_BLOB_MAX);
	must((a.values_mask & ~a.pcr_mask) == 0 && a.srk_size <= TOKEN_SRK_MAX);

	must(token_format(&a, &json) == 0);
	must(token_parse(json, strlen(json), &b, &why) == 0);
	must(a.keyslot == b.keyslot && a.pcr_mask == b.pcr_mask && a.bank == b.bank &&
	     a.primary_alg == b.primary_alg && a.pin == b.pin && a.blob_size == b.blob_size &&
	     memcmp(a.blob, b.blob, a.blob_size) == 0 && memcmp(a.policy_hash, b.policy_hash, 32) == 0 &&
	     a.values_mask == b.values_mask);
	for (int i = 0; i < PCR_COUNT; i++)
		if (a.values_mask & (1u << i))
			must(memcmp(a.values[i], b.values[i], a.bank->size) == 0);
	free(json);
	return 0;
}
