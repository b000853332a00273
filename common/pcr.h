/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <openssl/types.h>
#include <tss2/tss2_tpm2_types.h>

#define PCR_COUNT 24
#define PCR_DIGEST_MAX 64

#define PCR_BANKS 5 /* sha1, sha256, sha384, sha512, sm3_256: every hash a PC Client TPM may use */
#define PCR_BANKS_ALL ((1u << PCR_BANKS) - 1) /* a mask of bank indexes: every bank */

struct pcr_bank {
	const char *name;
	TPMI_ALG_HASH alg;
	uint16_t size;
	const char *md; /* OpenSSL's name for the hash */
};

const struct pcr_bank *pcr_bank_by_name(const char *name);
const struct pcr_bank *pcr_bank_by_alg(TPMI_ALG_HASH alg);
/* Banks by position 0..PCR_BANKS-1, for tables indexed by bank. */
const struct pcr_bank *pcr_bank_by_index(size_t i);
size_t pcr_bank_index(const struct pcr_bank *bank);
int pcr_bank_digest(const struct pcr_bank *bank, const void *data, size_t n, uint8_t *out);
/* value = H(value || digest), what TPM2_PCR_Extend does: for replaying logs in software. */
int pcr_bank_extend(const struct pcr_bank *bank, uint8_t *value, const uint8_t *digest);

/*
 * The hashes of a run of extends (one log's replay): each bank's EVP_MD fetched once, on its
 * first extend, and one digest context for them all. An implicit fetch and a context per
 * event were two thirds of a replay's CPU (a real 59-event log in two banks: 49 us, 17 us
 * fetched once). Zero-initialised; done frees.
 */
struct pcr_hashes {
	EVP_MD *md[PCR_BANKS];
	EVP_MD_CTX *ctx;
};
void pcr_hashes_done(struct pcr_hashes *h);
/* pcr_bank_extend through h: -EOPNOTSUPP when this OpenSSL has no such hash. */
int pcr_hashes_extend(struct pcr_hashes *h, const struct pcr_bank *bank, uint8_t *value, const uint8_t *digest);

/* What an operator binds: which PCRs, and for which ones the value is given up front. */
struct pcr_spec {
	const struct pcr_bank *bank;
	uint32_t mask;  /* every bound PCR */
	uint32_t given; /* subset whose value is in values[]; the rest are read from the TPM */
	uint8_t values[PCR_COUNT][PCR_DIGEST_MAX];
};

/* "7,15:0,11:HEX": a bare index means "current value", ":0" all zero, ":HEX" that digest. */
int pcr_spec_parse(const char *s, const struct pcr_bank *bank, struct pcr_spec *ret, char **ret_bad);

void pcr_selection_from_mask(uint32_t mask, TPMI_ALG_HASH alg, TPML_PCR_SELECTION *ret);

/* TPM2_PolicyPCR digest from a fresh (all-zero) sha256 policy session, as the TPM computes it. */
int pcr_policy_digest(const struct pcr_spec *spec, uint8_t ret_digest[32]);

/* "7,15" */
void pcr_mask_format(uint32_t mask, char *buf, size_t size);
