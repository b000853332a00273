/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>

#include "credential.h"
#include "log.h"
#include "ossl.h"
#include "secbuf.h"

#define DIGEST_MAX 64

static void be32(uint8_t out[4], uint32_t v)
{
	out[0] = (uint8_t)(v >> 24);
	out[1] = (uint8_t)(v >> 16);
	out[2] = (uint8_t)(v >> 8);
	out[3] = (uint8_t)v;
}

/* Counter-mode output (both TPM KDFs): PRF([1]32) || PRF([2]32) || ..., cut to size bytes. */
struct prf {
	int (*block)(const struct prf *p, const uint8_t counter[4], uint8_t *out);
	size_t hsize;
	const uint8_t *key, *u, *v;
	size_t key_size, u_size, v_size;
	const char *label, *md;
	uint8_t length[4];
	EVP_MAC_CTX *mac;
	EVP_MD_CTX *hash;
};

static int counter_mode(const struct prf *p, uint8_t *out, size_t size)
{
	uint8_t counter[4], block[DIGEST_MAX];
	int r = 0;

	for (size_t i = 1, done = 0; done < size && r == 0; i++, done += p->hsize) {
		be32(counter, (uint32_t)i);
		r = p->block(p, counter, block);
		if (r == 0)
			memcpy(out + done, block, size - done < p->hsize ? size - done : p->hsize);
	}
	secmem_wipe(block, sizeof(block));
	return r;
}

/* KDFa: HMAC(key, [i]32 || Label || 0x00 || ContextU || ContextV || [bits]32) */
static int kdfa_block(const struct prf *p, const uint8_t counter[4], uint8_t *out)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)p->md, 0),
		OSSL_PARAM_construct_end(),
	};
	size_t n = 0;

	if (!EVP_MAC_init(p->mac, p->key, p->key_size, params) || !EVP_MAC_update(p->mac, counter, 4) ||
	    !EVP_MAC_update(p->mac, (const uint8_t *)p->label, strlen(p->label) + 1) ||
	    !EVP_MAC_update(p->mac, p->u, p->u_size) || !EVP_MAC_update(p->mac, p->v, p->v_size) ||
	    !EVP_MAC_update(p->mac, p->length, 4) || !EVP_MAC_final(p->mac, out, &n, DIGEST_MAX) || n != p->hsize)
		return -EIO;
	return 0;
}

/* KDFe: H([i]32 || Z || Use (with its terminating 0) || PartyUInfo || PartyVInfo) */
static int kdfe_block(const struct prf *p, const uint8_t counter[4], uint8_t *out)
{
	const EVP_MD *md = EVP_get_digestbyname(p->md);
	unsigned n = 0;

	if (!md || !EVP_DigestInit_ex(p->hash, md, NULL) || !EVP_DigestUpdate(p->hash, counter, 4) ||
	    !EVP_DigestUpdate(p->hash, p->key, p->key_size) ||
	    !EVP_DigestUpdate(p->hash, p->label, strlen(p->label) + 1) ||
	    !EVP_DigestUpdate(p->hash, p->u, p->u_size) || !EVP_DigestUpdate(p->hash, p->v, p->v_size) ||
	    !EVP_DigestFinal_ex(p->hash, out, &n) || n != p->hsize)
		return -EIO;
	return 0;
}

int tpm_kdfa(TPMI_ALG_HASH alg, const uint8_t *key, size_t key_size, const char *label,
	     const uint8_t *context_u, size_t u_size, const uint8_t *context_v, size_t v_size,
	     uint8_t *out, size_t bits)
{
	_cleanup_(EVP_MAC_freep) EVP_MAC *mac = NULL;
	_cleanup_(EVP_MAC_CTX_freep) EVP_MAC_CTX *ctx = NULL;
	struct prf p = {
		.block = kdfa_block, .key = key, .key_size = key_size, .label = label,
		.u = context_u, .u_size = u_size, .v = context_v, .v_size = v_size,
	};

	if (bits == 0 || bits % 8 || bits > UINT32_MAX || tpm_hash_info(alg, &p.md, &p.hsize) < 0)
		return -EINVAL;
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	if (!ctx)
		return -ENOMEM;
	p.mac = ctx;
	be32(p.length, (uint32_t)bits);
	return counter_mode(&p, out, bits / 8);
}

int tpm_kdfe(TPMI_ALG_HASH alg, const uint8_t *z, size_t z_size, const char *label,
	     const uint8_t *party_u, size_t u_size, const uint8_t *party_v, size_t v_size,
	     uint8_t *out, size_t bits)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	struct prf p = {
		.block = kdfe_block, .key = z, .key_size = z_size, .label = label,
		.u = party_u, .u_size = u_size, .v = party_v, .v_size = v_size, .hash = ctx,
	};

	if (bits == 0 || bits % 8 || tpm_hash_info(alg, &p.md, &p.hsize) < 0)
		return -EINVAL;
	if (!ctx)
		return -ENOMEM;
	return counter_mode(&p, out, bits / 8);
}

/* RSA EK: a random seed, OAEP-encrypted under the EK with the EK's nameAlg and label "IDENTITY". */
static int seed_rsa(EVP_PKEY *key, const char *md, uint8_t *seed, size_t seed_size,
		    TPM2B_ENCRYPTED_SECRET *ret)
{
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	size_t out = sizeof(ret->secret);
	void *label;

	if (!ctx || EVP_PKEY_encrypt_init(ctx) <= 0 || RAND_priv_bytes(seed, (int)seed_size) != 1)
		return -EIO;
	label = OPENSSL_memdup("IDENTITY", sizeof("IDENTITY"));
	if (!label)
		return -ENOMEM;
	if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md_name(ctx, md, NULL) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md_name(ctx, md, NULL) <= 0) {
		OPENSSL_free(label);
		return -EIO;
	}
	if (EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, label, sizeof("IDENTITY")) <= 0) {
		OPENSSL_free(label);
		return -EIO;
	}
	if (EVP_PKEY_encrypt(ctx, ret->secret, &out, seed, seed_size) <= 0)
		return -EIO;
	ret->size = (uint16_t)out;
	return 0;
}

/* ECC EK: an ephemeral key on the EK's curve; seed = KDFe(Z, "IDENTITY", ephemeral x, EK x). */
static int seed_ecc(const struct tpm_pub *ek, EVP_PKEY *key, uint8_t *seed, size_t seed_size,
		    TPM2B_ENCRYPTED_SECRET *ret)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *eph = NULL;
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	TPMS_ECC_POINT point = { 0 };
	uint8_t pub[1 + 2 * 66], z[66];
	size_t fs = 0, pub_size = 0, z_size = sizeof(z), off = 0;
	const char *curve = tpm_curve_info(ek->area.parameters.eccDetail.curveID, &fs);
	int r;

	if (!curve)
		return -EOPNOTSUPP;
	/* A key generated from the EK's own context lands on the EK's group. */
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_generate(ctx, &eph) <= 0)
		return -EIO;
	EVP_PKEY_CTX_free(TAKE_PTR(ctx));
	if (!EVP_PKEY_get_octet_string_param(eph, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub),
					     &pub_size) ||
	    pub_size != 1 + 2 * fs || pub[0] != 0x04)
		return -EIO;
	/*
	 * No second peer validation: tpm_pub_to_evp already refused points off the curve, and the
	 * NIST prime curves have cofactor 1, so the full check (a scalar multiplication) adds nothing.
	 */
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL);
	if (!ctx || EVP_PKEY_derive_init(ctx) <= 0 || EVP_PKEY_derive_set_peer_ex(ctx, key, 0) <= 0 ||
	    EVP_PKEY_derive(ctx, z, &z_size) <= 0 || z_size != fs) {
		secmem_wipe(z, sizeof(z));
		return -EIO;
	}
	point.x.size = point.y.size = (uint16_t)fs;
	memcpy(point.x.buffer, pub + 1, fs);
	memcpy(point.y.buffer, pub + 1 + fs, fs);
	r = tpm_kdfe(ek->area.nameAlg, z, z_size, "IDENTITY", point.x.buffer, fs,
		     ek->area.unique.ecc.x.buffer, ek->area.unique.ecc.x.size, seed, seed_size * 8);
	secmem_wipe(z, sizeof(z));
	if (r < 0)
		return r;
	if (Tss2_MU_TPMS_ECC_POINT_Marshal(&point, ret->secret, sizeof(ret->secret), &off) != TSS2_RC_SUCCESS)
		return -EIO;
	ret->size = (uint16_t)off;
	return 0;
}

static int aes_cfb_encrypt(const TPMT_SYM_DEF_OBJECT *sym, const uint8_t *key, const uint8_t *in,
			   size_t size, uint8_t *out)
{
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	static const uint8_t iv[16] = { 0 };
	const EVP_CIPHER *cipher;
	int n = 0, f = 0;

	cipher = sym->keyBits.aes == 128 ? EVP_aes_128_cfb128() :
		 sym->keyBits.aes == 256 ? EVP_aes_256_cfb128() : NULL;
	if (!ctx || !cipher)
		return -EOPNOTSUPP;
	/* Part 1 §24.4: CFB with an all-zero IV; the key is used for this one message only. */
	if (!EVP_EncryptInit_ex(ctx, cipher, NULL, key, iv) ||
	    !EVP_EncryptUpdate(ctx, out, &n, in, (int)size) || !EVP_EncryptFinal_ex(ctx, out + n, &f) ||
	    (size_t)(n + f) != size)
		return -EIO;
	return 0;
}

static int hmac2(const char *md, const uint8_t *key, size_t key_size, const uint8_t *a, size_t na,
		 const uint8_t *b, size_t nb, uint8_t *out, size_t out_size)
{
	_cleanup_(EVP_MAC_freep) EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	_cleanup_(EVP_MAC_CTX_freep) EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md, 0),
		OSSL_PARAM_construct_end(),
	};
	size_t n = 0;

	if (!ctx)
		return -ENOMEM;
	if (!EVP_MAC_init(ctx, key, key_size, params) || !EVP_MAC_update(ctx, a, na) ||
	    !EVP_MAC_update(ctx, b, nb) || !EVP_MAC_final(ctx, out, &n, out_size) || n != out_size)
		return -EIO;
	return 0;
}

/* Everything derived from the seed: wiped on every return. */
struct cred_keys {
	uint8_t seed[DIGEST_MAX];
	uint8_t sym_key[32];
	uint8_t hmac_key[DIGEST_MAX];
	uint8_t plain[2 + DIGEST_MAX];
};

static int make(const struct tpm_pub *ek, const TPM2B_NAME *name, const uint8_t *secret,
		size_t secret_size, struct cred_keys *k, TPM2B_ID_OBJECT *ret_blob,
		TPM2B_ENCRYPTED_SECRET *ret_seed)
{
	const TPMT_PUBLIC *p = &ek->area;
	const TPMT_SYM_DEF_OBJECT *sym = &p->parameters.asymDetail.symmetric;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	TPM2B_ID_OBJECT blob = { 0 };
	uint8_t *hmac, *enc;
	const char *md;
	size_t hsize;
	int r;

	if (tpm_hash_info(p->nameAlg, &md, &hsize) < 0)
		return log_debug_errno(-EOPNOTSUPP, "EK nameAlg 0x%04x", p->nameAlg);
	if (secret_size == 0 || secret_size > hsize)
		return log_debug_errno(-EMSGSIZE, "credential of %zu bytes (1 to %zu)", secret_size, hsize);
	if (name->size < 2 || name->size > sizeof(name->name))
		return -EINVAL;
	if (sym->algorithm != TPM2_ALG_AES || sym->mode.aes != TPM2_ALG_CFB ||
	    (sym->keyBits.aes != 128 && sym->keyBits.aes != 256))
		return log_debug_errno(-EOPNOTSUPP, "EK symmetric algorithm is not AES-128/256-CFB");
	r = tpm_pub_to_evp(ek, &key);
	if (r < 0)
		return r;
	r = p->type == TPM2_ALG_RSA ? seed_rsa(key, md, k->seed, hsize, ret_seed)
				    : seed_ecc(ek, key, k->seed, hsize, ret_seed);
	if (r < 0)
		return log_debug_errno(r, "protecting the credential seed for the EK failed");

	/* symKey = KDFa(nameAlg, seed, "STORAGE", name, -, keyBits); HMACkey = KDFa(.., "INTEGRITY", -, -, digest bits) */
	r = tpm_kdfa(p->nameAlg, k->seed, hsize, "STORAGE", name->name, name->size, NULL, 0, k->sym_key,
		     sym->keyBits.aes);
	if (r < 0)
		return r;
	r = tpm_kdfa(p->nameAlg, k->seed, hsize, "INTEGRITY", NULL, 0, NULL, 0, k->hmac_key, hsize * 8);
	if (r < 0)
		return r;

	/* credentialBlob = TPM2B(outerHMAC) || CFB(symKey, TPM2B_DIGEST(secret)) */
	k->plain[0] = (uint8_t)(secret_size >> 8);
	k->plain[1] = (uint8_t)secret_size;
	memcpy(k->plain + 2, secret, secret_size);
	hmac = blob.credential + 2;
	enc = hmac + hsize;
	r = aes_cfb_encrypt(sym, k->sym_key, k->plain, 2 + secret_size, enc);
	if (r < 0)
		return r;
	/* outerHMAC = HMAC(HMACkey, encIdentity || name): binds the blob to the object's name. */
	r = hmac2(md, k->hmac_key, hsize, enc, 2 + secret_size, name->name, name->size, hmac, hsize);
	if (r < 0)
		return r;
	blob.credential[0] = (uint8_t)(hsize >> 8);
	blob.credential[1] = (uint8_t)hsize;
	blob.size = (uint16_t)(2 + hsize + 2 + secret_size);
	*ret_blob = blob;
	return 0;
}

int credential_make(const struct tpm_pub *ek, const TPM2B_NAME *name, const uint8_t *secret,
		    size_t secret_size, TPM2B_ID_OBJECT *ret_blob, TPM2B_ENCRYPTED_SECRET *ret_seed)
{
	struct cred_keys k;
	TPM2B_ENCRYPTED_SECRET seed = { 0 };
	TPM2B_ID_OBJECT blob;
	int r;

	r = make(ek, name, secret, secret_size, &k, &blob, &seed);
	secmem_wipe(&k, sizeof(k));
	if (r < 0)
		return r;
	*ret_blob = blob;
	*ret_seed = seed;
	return 0;
}
