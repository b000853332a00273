/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <tss2/tss2_tpm2_types.h>

/*
 * TPM public areas as attestation sees them: EKs and AKs, RSA or ECC. Pure code (no I/O), shared
 * by the node and the server. Everything a peer sends goes through tpm_pub_parse, which is
 * strict: one encoding per structure, nothing left over, only the algorithms we can use.
 */
struct tpm_pub {
	TPMT_PUBLIC area;
	TPM2B_NAME name; /* nameAlg || H_nameAlg(marshalled TPMT_PUBLIC): what the TPM calls the object */
};

/* A marshalled TPM2B_PUBLIC filling buf exactly. -EBADMSG: malformed; -EOPNOTSUPP: not RSA/ECC. */
int tpm_pub_parse(const uint8_t *buf, size_t size, struct tpm_pub *ret);
/* The same, from the structure ESAPI hands out (so node and server take one path). */
int tpm_pub_from_tss(const TPM2B_PUBLIC *pub, struct tpm_pub *ret);
/* Marshalled TPM2B_PUBLIC, the form tpm2-tools reads and writes ("-u key.pub"). */
int tpm_pub_marshal(const struct tpm_pub *pub, uint8_t *buf, size_t max, size_t *ret_size);

/* The public key for OpenSSL: RSA 2048-4096, ECC NIST P-256/384/521. -EBADMSG: not a valid key. */
int tpm_pub_to_evp(const struct tpm_pub *pub, EVP_PKEY **ret);

/*
 * An EC public key on curve (OpenSSL group name: prime256v1, secp384r1, secp521r1) from its
 * encoded point. -EBADMSG: not a point on that curve; -EOPNOTSUPP: another curve.
 */
int evp_ec_public(const char *curve, const uint8_t *point, size_t size, EVP_PKEY **ret);

/* 0 when the DER X.509 certificate certifies exactly this key; -EKEYREJECTED when another. */
int tpm_pub_cert_matches(const struct tpm_pub *pub, const uint8_t *der, size_t size);

/*
 * 0 when the key can only sign what the TPM itself produced (restricted signing key that never
 * left the TPM), else -EKEYREJECTED and a reason. Without this an "AK" could sign a made-up quote.
 */
int tpm_pub_check_ak(const struct tpm_pub *pub, const char **ret_reason);

/*
 * The TCG EK Credential Profile templates keystrap derives EKs from, each with the NV index its
 * certificate lives at. Each holds another key type, so an EK's key alone says which template
 * its public area must be.
 */
enum tpm_ek_kind {
	TPM_EK_RSA2048,  /* template L-1, certificate at 0x01c00002 */
	TPM_EK_ECC_P256, /* template L-2, certificate at 0x01c0000a */
	TPM_EK_ECC_P384, /* template H-3, certificate at 0x01c00016 (swtpm_setup's ECC EK) */
	_TPM_EK_KIND_MAX,
};
struct tpm_ek_profile {
	const char *name;     /* "rsa2048", "ecc256", "ecc384" */
	const char *template; /* "L-1", "L-2", "H-3" */
	TPM2_HANDLE cert_index;
	TPMT_PUBLIC area; /* what CreatePrimary takes; unique is the derivation's input, not the key */
};
/* NULL for a kind out of range. */
const struct tpm_ek_profile *tpm_ek_profile(enum tpm_ek_kind kind);
const char *tpm_ek_kind_name(enum tpm_ek_kind kind);
int tpm_ek_kind_from_name(const char *s, enum tpm_ek_kind *ret);

#define TPM_EK_ID_SIZE 32
#define TPM_PUB_REASON_MAX 160
/*
 * An EK's identity, what the server's registry is keyed by: SHA-256 of the marshalled
 * TPMT_PUBLIC, once that is exactly its key type's template with the key at full length. So
 * it is a function of the key alone: one EK is one identity whatever public area an attacker
 * wraps its (certified) key in; and for what a TPM derives it is the hash of the bytes sent.
 * -EKEYREJECTED and a reason naming the field and its value when the area is no template.
 */
int tpm_ek_identity(const struct tpm_pub *ek, uint8_t ret[TPM_EK_ID_SIZE], char reason[TPM_PUB_REASON_MAX]);

/* The qualified name of a hierarchy (TPM_RH_ENDORSEMENT, TPM_RH_OWNER, ...): its handle. */
void tpm_name_hierarchy(TPM2_HANDLE hierarchy, TPM2B_NAME *ret);
/* QN(child) = nameAlg || H_nameAlg(QN(parent) || name(child)): what TPMS_ATTEST.qualifiedSigner holds. */
int tpm_name_qualify(const TPM2B_NAME *parent_qn, const TPM2B_NAME *name, TPM2B_NAME *ret);

/* OpenSSL digest name and size of a TPM hash algorithm; -EOPNOTSUPP for any other. */
int tpm_hash_info(TPMI_ALG_HASH alg, const char **ret_name, size_t *ret_size);
/* OpenSSL group name and field size in bytes of a TPM ECC curve; NULL for an unsupported one. */
const char *tpm_curve_info(TPMI_ECC_CURVE curve, size_t *ret_size);
