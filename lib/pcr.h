/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

#define PCR_COUNT 24
#define PCR_DIGEST_MAX 64

struct pcr_bank {
	const char *name;
	TPMI_ALG_HASH alg;
	uint16_t size;
};

const struct pcr_bank *pcr_bank_by_name(const char *name);
const struct pcr_bank *pcr_bank_by_alg(TPMI_ALG_HASH alg);
int pcr_bank_digest(const struct pcr_bank *bank, const void *data, size_t n, uint8_t *out);

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
