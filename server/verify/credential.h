/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

#include "tpmpub.h"

/*
 * TPM2_MakeCredential in software (TPM 2.0 Part 1 §24, Part 3 TPM2_MakeCredential): wraps a
 * secret so that only the TPM holding the EK can recover it with TPM2_ActivateCredential, and
 * only while an object with the given name is loaded in that TPM. Pure code (OpenSSL 3 EVP),
 * for the server; it never needs a TPM.
 */

/* KDFa (Part 1 §11.4.10.2, SP 800-108 counter mode with HMAC): bits must be a multiple of 8. */
int tpm_kdfa(TPMI_ALG_HASH alg, const uint8_t *key, size_t key_size, const char *label,
	     const uint8_t *context_u, size_t u_size, const uint8_t *context_v, size_t v_size,
	     uint8_t *out, size_t bits);

/* KDFe (Part 1 §11.4.10.3, SP 800-56A concatenation KDF) for an ECDH shared secret Z. */
int tpm_kdfe(TPMI_ALG_HASH alg, const uint8_t *z, size_t z_size, const char *label,
	     const uint8_t *party_u, size_t u_size, const uint8_t *party_v, size_t v_size,
	     uint8_t *out, size_t bits);

/*
 * credentialBlob (TPM2B_ID_OBJECT) and secret (TPM2B_ENCRYPTED_SECRET) as TPM2_MakeCredential
 * returns them, for an RSA EK (OAEP, label "IDENTITY") or an ECC EK (ephemeral ECDH + KDFe).
 * The secret is 1 to digest-size-of-the-EK's-nameAlg bytes (-EMSGSIZE otherwise, as the TPM).
 */
int credential_make(const struct tpm_pub *ek, const TPM2B_NAME *name, const uint8_t *secret,
		    size_t secret_size, TPM2B_ID_OBJECT *ret_blob, TPM2B_ENCRYPTED_SECRET *ret_seed);
