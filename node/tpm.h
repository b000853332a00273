/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <openssl/evp.h>
#include <tss2/tss2_esys.h>

#include "macro.h"
#include "pcr.h"
#include "secbuf.h"
#include "tpmpub.h"

#define TPM_TCTI_DEFAULT "device:/dev/tpmrm0"
#define TPM_SRK_HANDLE 0x81000001u

/* KEYSTRAP_TPM_TIMEOUT: how long one TPM command may take (key generation: ten times that). */
#define TPM_TIMEOUT_DEFAULT_MS 5000u
#define TPM_TIMEOUT_MIN_MS 100u
#define TPM_TIMEOUT_MAX_MS 600000u

struct tpm {
	ESYS_CONTEXT *esys;
	TSS2_TCTI_CONTEXT *tcti; /* tcti-deadline.h's, in front of the TCTI tctildr loaded */
	char *tcti_conf;
	unsigned timeout_ms;
};

/*
 * Connects through KEYSTRAP_TCTI (secure_getenv) or the default device, every command bounded
 * by KEYSTRAP_TPM_TIMEOUT. -EINVAL: that is not a number of seconds (tpm_timeout_parse).
 */
int tpm_open(struct tpm **ret);
/* "5", "0.5", "30": seconds with up to three decimals, TPM_TIMEOUT_MIN_MS to _MAX_MS. */
int tpm_timeout_parse(const char *s, unsigned *ret_ms);
void tpm_close(struct tpm *t);
static inline void tpm_closep(struct tpm **t)
{
	tpm_close(*t);
}
#define _cleanup_tpm_ _cleanup_(tpm_closep)
const char *tpm_tcti_conf(const struct tpm *t);

/* Loads the storage parent a token refers to (systemd 252 templates, or a serialized SRK). */
int tpm_primary_create(struct tpm *t, uint16_t alg, ESYS_TR *ret);
/* The persistent TCG SRK (noDA) at 0x81000001, created and persisted if absent; serialized for tpm2_srk. */
int tpm_srk_ensure(struct tpm *t, ESYS_TR *ret, uint8_t *ret_serialized, size_t max, size_t *ret_size);
int tpm_srk_load(struct tpm *t, const uint8_t *serialized, size_t size, ESYS_TR *ret);
void tpm_flush(struct tpm *t, ESYS_TR *handle);

int tpm_pcr_read(struct tpm *t, const struct pcr_bank *bank, uint32_t mask,
		 uint8_t ret_values[PCR_COUNT][PCR_DIGEST_MAX]);

/* Seals secret under parent with the given policy digest; *ret_blob is TPM2B_PRIVATE||TPM2B_PUBLIC. */
int tpm_seal(struct tpm *t, ESYS_TR parent, const uint8_t policy[32], const struct secbuf *secret,
	     uint8_t *ret_blob, size_t blob_max, size_t *ret_blob_size);

/*
 * systemd 252's signed PCR policy: PolicyPCR over mask, then PolicyAuthorize of that digest
 * (empty policyRef) by key, whose RSASSA-SHA256 signature over SHA-256(digest) is sig.
 */
struct tpm_authorize {
	TPM2B_PUBLIC key;
	uint32_t mask;
	uint8_t sig[512];
	size_t sig_size;
};
/* The TPM2B_PUBLIC systemd 252 loads an RSA public key as (its name is in the token's policy). */
int tpm_rsa_public(EVP_PKEY *pkey, TPM2B_PUBLIC *ret);

/*
 * auth (may be NULL) comes first in the policy session, then PolicyPCR over mask (may be 0).
 * -EPERM: the PCR policy is not satisfied; -ENOKEY: blob does not belong to this parent;
 * -EBADMSG: the TPM refused auth's signature.
 */
int tpm_unseal(struct tpm *t, ESYS_TR parent, const uint8_t *blob, size_t blob_size,
	       const struct tpm_authorize *auth, const struct pcr_bank *bank, uint32_t mask,
	       struct secbuf **ret);

/* Extends pcr in every active bank with H_bank(data) (at most 1024 bytes); ret_digests may be NULL. */
int tpm_pcr_extend(struct tpm *t, unsigned pcr, const void *data, size_t size,
		   TPML_DIGEST_VALUES *ret_digests);

const char *tpm_rc_str(TSS2_RC rc);
/*
 * Every tpm_* call returns -ETIMEDOUT once a command missed its deadline (the TPM is then
 * given up for the rest of the process); this says which deadline and which TCTI.
 */
const char *tpm_silence_reason(void);
/* A TPM response code as the errno the rest of keystrap speaks. */
int tpm_rc_errno(TSS2_RC rc);

/* Attestation (issue 5): EK and certificate, an AK for this boot, ActivateCredential, Quote. */

/* The EK certificate as stored (DER, possibly padded): malloc'ed. -ENOENT: no such NV index. */
int tpm_ek_cert_read(struct tpm *t, enum tpm_ek_kind kind, uint8_t **ret, size_t *ret_size);
/* Derives the EK from the endorsement seed with the profile template: the certified key. */
int tpm_ek_create(struct tpm *t, enum tpm_ek_kind kind, ESYS_TR *ret, TPM2B_PUBLIC *ret_pub);

#define TPM_AK_UNIQUE_SIZE 32
/*
 * An attestation key: ECC P-256, ECDSA-SHA256, restricted signing, fixedTPM, fixedParent,
 * sensitiveDataOrigin, userWithAuth, stClear; a primary in the endorsement hierarchy.
 * unique NULL: fresh random (a new key); given: the same key again in this TPM.
 */
int tpm_ak_create(struct tpm *t, const uint8_t *unique, ESYS_TR *ret, TPM2B_PUBLIC *ret_pub);

/* TPM2_ActivateCredential; -EKEYREJECTED: the credential was not made for this EK and this AK. */
int tpm_credential_activate(struct tpm *t, ESYS_TR ak, ESYS_TR ek, const TPM2B_ID_OBJECT *blob,
			    const TPM2B_ENCRYPTED_SECRET *seed, struct secbuf **ret);

/* What TPM2_Quote returns: the signed TPMS_ATTEST bytes and the marshalled TPMT_SIGNATURE. */
struct tpm_quote {
	uint8_t attest[sizeof(TPMS_ATTEST)];
	size_t attest_size;
	uint8_t signature[sizeof(TPMT_SIGNATURE)];
	size_t signature_size;
};
int tpm_quote(struct tpm *t, ESYS_TR ak, const struct pcr_bank *bank, uint32_t mask, const uint8_t *extra,
	      size_t extra_size, struct tpm_quote *ret);
