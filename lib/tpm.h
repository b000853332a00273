/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <tss2/tss2_esys.h>

#include "macro.h"
#include "pcr.h"
#include "secbuf.h"

#define TPM_TCTI_DEFAULT "device:/dev/tpmrm0"
#define TPM_SRK_HANDLE 0x81000001u

struct tpm {
	ESYS_CONTEXT *esys;
	TSS2_TCTI_CONTEXT *tcti;
	char *tcti_conf;
};

/* Connects through KEYSTRAP_TCTI (secure_getenv) or the default device. */
int tpm_open(struct tpm **ret);
void tpm_close(struct tpm *t);
static inline void tpm_closep(struct tpm **t)
{
	tpm_close(*t);
}
#define _cleanup_tpm_ _cleanup_(tpm_closep)
const char *tpm_tcti_conf(const struct tpm *t);

/* Loads the storage parent a token refers to (systemd 252 templates, or a serialized SRK). */
int tpm_primary_create(struct tpm *t, uint16_t alg, ESYS_TR *ret);
int tpm_srk_load(struct tpm *t, const uint8_t *serialized, size_t size, ESYS_TR *ret);
void tpm_flush(struct tpm *t, ESYS_TR *handle);

int tpm_pcr_read(struct tpm *t, const struct pcr_bank *bank, uint32_t mask,
		 uint8_t ret_values[PCR_COUNT][PCR_DIGEST_MAX]);

/* Seals secret under parent with the given policy digest; *ret_blob is TPM2B_PRIVATE||TPM2B_PUBLIC. */
int tpm_seal(struct tpm *t, ESYS_TR parent, const uint8_t policy[32], const struct secbuf *secret,
	     uint8_t *ret_blob, size_t blob_max, size_t *ret_blob_size);

/* -EPERM: the PCR policy is not satisfied; -ENOKEY: blob does not belong to this parent. */
int tpm_unseal(struct tpm *t, ESYS_TR parent, const uint8_t *blob, size_t blob_size,
	       const struct pcr_bank *bank, uint32_t mask, struct secbuf **ret);

/* Extends pcr in every active bank with H_bank(data) (at most 1024 bytes); ret_digests may be NULL. */
int tpm_pcr_extend(struct tpm *t, unsigned pcr, const void *data, size_t size,
		   TPML_DIGEST_VALUES *ret_digests);

const char *tpm_rc_str(TSS2_RC rc);
/* A TPM response code as the errno the rest of keystrap speaks. */
int tpm_rc_errno(TSS2_RC rc);
