/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <openssl/core_names.h>
#include <tss2/tss2_mu.h>

#include "encode.h"
#include "log.h"
#include "ossl.h"
#include "pcr.h"
#include "tpmpub.h"
#include "wire.h"

int tpm_hash_info(TPMI_ALG_HASH alg, const char **ret_name, size_t *ret_size)
{
	/* pcr.c already knows the TPM hash algorithms: one table; attestation takes the SHA family. */
	const struct pcr_bank *h = pcr_bank_by_alg(alg);

	if (!h || (alg != TPM2_ALG_SHA1 && alg != TPM2_ALG_SHA256 && alg != TPM2_ALG_SHA384 &&
		   alg != TPM2_ALG_SHA512))
		return -EOPNOTSUPP;
	if (ret_name)
		*ret_name = h->name;
	if (ret_size)
		*ret_size = h->size;
	return 0;
}

/* TPMT_SYM_DEF_OBJECT: the block ciphers carry key bits and mode; no other selector is valid here. */
static void read_sym(struct wire *w, TPMT_SYM_DEF_OBJECT *s)
{
	s->algorithm = wire_u16(w);
	switch (s->algorithm) {
	case TPM2_ALG_NULL:
		return;
	case TPM2_ALG_AES:
	case TPM2_ALG_SM4:
	case TPM2_ALG_CAMELLIA:
		s->keyBits.sym = wire_u16(w);
		s->mode.sym = wire_u16(w);
		return;
	default:
		wire_fail(w);
	}
}

/* TPMU_ASYM_SCHEME: which selectors carry a hash (and ECDAA a count), per key type. */
static void read_scheme(struct wire *w, bool ecc, TPMI_ALG_ASYM_SCHEME *scheme, TPMU_ASYM_SCHEME *d)
{
	*scheme = wire_u16(w);
	switch (*scheme) {
	case TPM2_ALG_NULL:
		return;
	case TPM2_ALG_RSAES:
		if (ecc)
			wire_fail(w);
		return;
	case TPM2_ALG_RSASSA:
	case TPM2_ALG_RSAPSS:
	case TPM2_ALG_OAEP:
		if (ecc)
			wire_fail(w);
		d->anySig.hashAlg = wire_u16(w);
		return;
	case TPM2_ALG_ECDSA:
	case TPM2_ALG_ECDH:
	case TPM2_ALG_SM2:
	case TPM2_ALG_ECSCHNORR:
	case TPM2_ALG_ECMQV:
		if (!ecc)
			wire_fail(w);
		d->anySig.hashAlg = wire_u16(w);
		return;
	case TPM2_ALG_ECDAA:
		if (!ecc)
			wire_fail(w);
		d->ecdaa.hashAlg = wire_u16(w);
		d->ecdaa.count = wire_u16(w);
		return;
	default:
		wire_fail(w);
	}
}

static void read_kdf(struct wire *w, TPMT_KDF_SCHEME *k)
{
	k->scheme = wire_u16(w);
	switch (k->scheme) {
	case TPM2_ALG_NULL:
		return;
	case TPM2_ALG_MGF1:
	case TPM2_ALG_KDF1_SP800_56A:
	case TPM2_ALG_KDF2:
	case TPM2_ALG_KDF1_SP800_108:
		k->details.mgf1.hashAlg = wire_u16(w);
		return;
	default:
		wire_fail(w);
	}
}

/* TPMT_PUBLIC for RSA and ECC keys, field by field as Part 2 lays it out. */
static int read_public(struct wire *w, TPMT_PUBLIC *p)
{
	*p = (TPMT_PUBLIC){ 0 };
	p->type = wire_u16(w);
	if (wire_ok(w) && p->type != TPM2_ALG_RSA && p->type != TPM2_ALG_ECC)
		return -EOPNOTSUPP;
	p->nameAlg = wire_u16(w);
	p->objectAttributes = wire_u32(w);
	p->authPolicy.size = wire_tpm2b(w, p->authPolicy.buffer, sizeof(p->authPolicy.buffer));
	if (p->type == TPM2_ALG_RSA) {
		TPMS_RSA_PARMS *r = &p->parameters.rsaDetail;

		read_sym(w, &r->symmetric);
		read_scheme(w, false, &r->scheme.scheme, &r->scheme.details);
		r->keyBits = wire_u16(w);
		r->exponent = wire_u32(w);
		p->unique.rsa.size = wire_tpm2b(w, p->unique.rsa.buffer, sizeof(p->unique.rsa.buffer));
	} else {
		TPMS_ECC_PARMS *e = &p->parameters.eccDetail;

		read_sym(w, &e->symmetric);
		read_scheme(w, true, &e->scheme.scheme, &e->scheme.details);
		e->curveID = wire_u16(w);
		read_kdf(w, &e->kdf);
		p->unique.ecc.x.size = wire_tpm2b(w, p->unique.ecc.x.buffer, sizeof(p->unique.ecc.x.buffer));
		p->unique.ecc.y.size = wire_tpm2b(w, p->unique.ecc.y.buffer, sizeof(p->unique.ecc.y.buffer));
	}
	return wire_ok(w) ? 0 : -EBADMSG;
}

static int digest_concat(TPMI_ALG_HASH alg, const void *a, size_t na, const void *b, size_t nb,
			 uint8_t *out, size_t *ret_size)
{
	const struct pcr_bank *h = pcr_bank_by_alg(alg);
	uint8_t buf[2 * sizeof(TPMU_NAME)];

	if (!h)
		return -EOPNOTSUPP;
	if (na + nb > sizeof(buf))
		return -EMSGSIZE;
	memcpy(buf, a, na);
	if (nb)
		memcpy(buf + na, b, nb);
	*ret_size = h->size;
	return pcr_bank_digest(h, buf, na + nb, out);
}

int tpm_pub_parse(const uint8_t *buf, size_t size, struct tpm_pub *ret)
{
	struct wire w = wire_init(buf, size), body;
	struct tpm_pub pub = { 0 };
	const struct pcr_bank *h;
	const uint8_t *start;
	uint16_t inner;
	int r;

	inner = wire_u16(&w);
	start = w.p;
	body = wire_sub(&w, inner);
	if (!wire_done(&w))
		return log_debug_errno(-EBADMSG, "TPM2B_PUBLIC: size field does not match the data");
	r = read_public(&body, &pub.area);
	if (r < 0)
		return log_debug_errno(r, "TPMT_PUBLIC: %s", r == -EOPNOTSUPP ? "not an RSA or ECC key" : "malformed");
	if (!wire_done(&body))
		return log_debug_errno(-EBADMSG, "TPMT_PUBLIC: %zu bytes left over", body.left);

	/* The name is over the bytes as received: the strict parse above admits one encoding only. */
	h = pcr_bank_by_alg(pub.area.nameAlg);
	if (!h)
		return log_debug_errno(-EOPNOTSUPP, "TPMT_PUBLIC: nameAlg 0x%04x", pub.area.nameAlg);
	pub.name.name[0] = (uint8_t)(pub.area.nameAlg >> 8);
	pub.name.name[1] = (uint8_t)pub.area.nameAlg;
	r = pcr_bank_digest(h, start, inner, pub.name.name + 2);
	if (r < 0)
		return r;
	pub.name.size = (uint16_t)(2 + h->size);
	*ret = pub;
	return 0;
}

int tpm_pub_from_tss(const TPM2B_PUBLIC *pub, struct tpm_pub *ret)
{
	uint8_t buf[sizeof(TPM2B_PUBLIC)];
	size_t off = 0;

	if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, buf + 2, sizeof(buf) - 2, &off) != TSS2_RC_SUCCESS)
		return -EINVAL;
	buf[0] = (uint8_t)(off >> 8);
	buf[1] = (uint8_t)off;
	return tpm_pub_parse(buf, off + 2, ret);
}

int tpm_pub_marshal(const struct tpm_pub *pub, uint8_t *buf, size_t max, size_t *ret_size)
{
	size_t off = 0;

	if (max < 2 || Tss2_MU_TPMT_PUBLIC_Marshal(&pub->area, buf + 2, max - 2, &off) != TSS2_RC_SUCCESS)
		return -ENOBUFS;
	buf[0] = (uint8_t)(off >> 8);
	buf[1] = (uint8_t)off;
	*ret_size = off + 2;
	return 0;
}

const char *tpm_curve_info(TPMI_ECC_CURVE curve, size_t *ret_size)
{
	switch (curve) {
	case TPM2_ECC_NIST_P256:
		*ret_size = 32;
		return "prime256v1";
	case TPM2_ECC_NIST_P384:
		*ret_size = 48;
		return "secp384r1";
	case TPM2_ECC_NIST_P521:
		*ret_size = 66;
		return "secp521r1";
	default:
		return NULL;
	}
}

static int evp_from_params(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **ret)
{
	_cleanup_(OSSL_PARAM_freep) OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (!params || !ctx)
		return -ENOMEM;
	/* fromdata checks an EC point lies on the curve: no invalid-curve points get through. */
	if (EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		return -EBADMSG;
	*ret = pkey;
	return 0;
}

static int rsa_to_evp(const TPMT_PUBLIC *p, EVP_PKEY **ret)
{
	const TPMS_RSA_PARMS *r = &p->parameters.rsaDetail;
	_cleanup_(OSSL_PARAM_BLD_freep) OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	_cleanup_(BN_freep) BIGNUM *n = NULL, *e = NULL;

	if (r->keyBits != 2048 && r->keyBits != 3072 && r->keyBits != 4096)
		return log_debug_errno(-EOPNOTSUPP, "RSA key of %u bits", r->keyBits);
	if (p->unique.rsa.size != r->keyBits / 8 || !(p->unique.rsa.buffer[0] & 0x80))
		return log_debug_errno(-EBADMSG, "RSA modulus is not %u bits", r->keyBits);
	if (r->exponent != 0 && (r->exponent < 3 || !(r->exponent & 1)))
		return log_debug_errno(-EBADMSG, "RSA exponent %u", r->exponent);
	n = BN_bin2bn(p->unique.rsa.buffer, p->unique.rsa.size, NULL);
	e = BN_new();
	if (!bld || !n || !e || !BN_set_word(e, r->exponent ? r->exponent : 65537) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
		return -ENOMEM;
	return evp_from_params("RSA", bld, ret);
}

/*
 * The curve's parameters as a key without a point, made once per process (a lost race frees
 * its copy). Building an EC key with EVP_PKEY_fromdata sets the group up from scratch each
 * time (Montgomery constants and all), five times the cost of copying it from here.
 */
static EVP_PKEY *curve_template(const char *curve)
{
	static const char *const names[] = { "prime256v1", "secp384r1", "secp521r1" };
	static EVP_PKEY *templates[ELEMENTSOF(names)];
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *t = NULL, *expected = NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)curve, 0),
		OSSL_PARAM_construct_end(),
	};
	size_t i = 0;

	while (i < ELEMENTSOF(names) && !streq(names[i], curve))
		i++;
	if (i == ELEMENTSOF(names))
		return NULL;
	if ((t = __atomic_load_n(&templates[i], __ATOMIC_ACQUIRE)))
		return t;
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 || EVP_PKEY_fromdata(ctx, &t, EVP_PKEY_KEY_PARAMETERS, params) <= 0)
		return NULL;
	if (!__atomic_compare_exchange_n(&templates[i], &expected, t, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		EVP_PKEY_free(t);
		return expected;
	}
	return t;
}

int evp_ec_public(const char *curve, const uint8_t *point, size_t size, EVP_PKEY **ret)
{
	EVP_PKEY *t = curve_template(curve), *key;

	if (!t)
		return -EOPNOTSUPP;
	key = EVP_PKEY_new();
	if (!key)
		return -ENOMEM;
	/* Setting the point checks it lies on the curve: no invalid-curve points get through. */
	if (EVP_PKEY_copy_parameters(key, t) != 1 || EVP_PKEY_set1_encoded_public_key(key, point, size) != 1) {
		EVP_PKEY_free(key);
		return -EBADMSG;
	}
	*ret = key;
	return 0;
}

static int ecc_to_evp(const TPMT_PUBLIC *p, EVP_PKEY **ret)
{
	const TPMS_ECC_POINT *q = &p->unique.ecc;
	uint8_t point[1 + 2 * 66] = { 0x04 };
	const char *curve;
	size_t fs = 0;

	curve = tpm_curve_info(p->parameters.eccDetail.curveID, &fs);
	if (!curve)
		return log_debug_errno(-EOPNOTSUPP, "ECC curve 0x%04x", p->parameters.eccDetail.curveID);
	if (q->x.size == 0 || q->x.size > fs || q->y.size == 0 || q->y.size > fs)
		return log_debug_errno(-EBADMSG, "ECC point does not fit curve %s", curve);
	/* TPMs may drop leading zero octets: put them back. */
	memcpy(point + 1 + fs - q->x.size, q->x.buffer, q->x.size);
	memcpy(point + 1 + 2 * fs - q->y.size, q->y.buffer, q->y.size);
	return evp_ec_public(curve, point, 1 + 2 * fs, ret);
}

int tpm_pub_to_evp(const struct tpm_pub *pub, EVP_PKEY **ret)
{
	return pub->area.type == TPM2_ALG_RSA ? rsa_to_evp(&pub->area, ret) : ecc_to_evp(&pub->area, ret);
}

int tpm_pub_cert_matches(const struct tpm_pub *pub, const uint8_t *der, size_t size)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_(X509_freep) X509 *cert = NULL;
	const unsigned char *p = der;
	EVP_PKEY *cert_key;
	int r;

	if (size > LONG_MAX)
		return -EBADMSG;
	/* NV indices are often larger than the certificate: d2i stops at the end of the DER. */
	cert = d2i_X509(NULL, &p, (long)size);
	if (!cert)
		return log_debug_errno(-EBADMSG, "not a DER X.509 certificate");
	cert_key = X509_get0_pubkey(cert);
	if (!cert_key)
		return log_debug_errno(-EBADMSG, "certificate public key not understood");
	r = tpm_pub_to_evp(pub, &key);
	if (r < 0)
		return r;
	return EVP_PKEY_eq(key, cert_key) == 1 ? 0 : -EKEYREJECTED;
}

int tpm_pub_check_ak(const struct tpm_pub *pub, const char **ret_reason)
{
	const TPMA_OBJECT need = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM |
				 TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN;
	const TPMT_PUBLIC *p = &pub->area;
	TPMI_ALG_ASYM_SCHEME scheme = p->type == TPM2_ALG_RSA ? p->parameters.rsaDetail.scheme.scheme
							       : p->parameters.eccDetail.scheme.scheme;
	const char *reason = NULL;

	if ((p->objectAttributes & need) != need || (p->objectAttributes & TPMA_OBJECT_DECRYPT))
		reason = "AK is not a restricted signing key bound to its TPM";
	else if (p->nameAlg == TPM2_ALG_SHA1)
		reason = "AK name algorithm is SHA-1";
	else if (scheme != (p->type == TPM2_ALG_RSA ? TPM2_ALG_RSASSA : TPM2_ALG_ECDSA))
		reason = "AK signing scheme is neither RSASSA nor ECDSA";
	if (reason) {
		if (ret_reason)
			*ret_reason = reason;
		return -EKEYREJECTED;
	}
	return 0;
}

/* TCG EK Credential Profile 2.x: PolicySecret(TPM_RH_ENDORSEMENT) as SHA-256 (policy A, low range)... */
#define EK_POLICY_A_SHA256                                                                          \
	{ 0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24, \
	  0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa }
/* ...and policy B as SHA-384 (high range: userWithAuth is set, so plain auth also works). */
#define EK_POLICY_B_SHA384                                                                          \
	{ 0xb2, 0x6e, 0x7d, 0x28, 0xd1, 0x1a, 0x50, 0xbc, 0x53, 0xd8, 0x82, 0xbc, 0xf5, 0xfd, 0x3a, 0x1a, \
	  0x07, 0x41, 0x48, 0xbb, 0x35, 0xd3, 0xb4, 0xe4, 0xcb, 0x1c, 0x0a, 0xd9, 0xbd, 0xe4, 0x19, 0xca, \
	  0xcb, 0x47, 0xba, 0x09, 0x69, 0x96, 0x46, 0x15, 0x0f, 0x9f, 0xc0, 0x00, 0xf3, 0xf8, 0x0e, 0x12 }
#define EK_ATTRS                                                                                 \
	(TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |      \
	 TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)

static const struct tpm_ek_profile ek_profiles[_TPM_EK_KIND_MAX] = {
	/* Template L-1: the unique field is 256 zero bytes, so the derived key is the certified one. */
	[TPM_EK_RSA2048] = { "rsa2048", "L-1", 0x01c00002, {
		.type = TPM2_ALG_RSA, .nameAlg = TPM2_ALG_SHA256, .objectAttributes = EK_ATTRS,
		.authPolicy = { 32, EK_POLICY_A_SHA256 },
		.parameters.rsaDetail = {
			.symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
			.scheme.scheme = TPM2_ALG_NULL, .keyBits = 2048,
		},
		.unique.rsa.size = 256,
	} },
	/* Template L-2: x and y of 32 zero bytes each. */
	[TPM_EK_ECC_P256] = { "ecc256", "L-2", 0x01c0000a, {
		.type = TPM2_ALG_ECC, .nameAlg = TPM2_ALG_SHA256, .objectAttributes = EK_ATTRS,
		.authPolicy = { 32, EK_POLICY_A_SHA256 },
		.parameters.eccDetail = {
			.symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
			.scheme.scheme = TPM2_ALG_NULL, .curveID = TPM2_ECC_NIST_P256,
			.kdf.scheme = TPM2_ALG_NULL,
		},
		.unique.ecc = { .x.size = 32, .y.size = 32 },
	} },
	/* Template H-3 (what swtpm_setup certifies as its ECC EK): empty unique. */
	[TPM_EK_ECC_P384] = { "ecc384", "H-3", 0x01c00016, {
		.type = TPM2_ALG_ECC, .nameAlg = TPM2_ALG_SHA384,
		.objectAttributes = EK_ATTRS | TPMA_OBJECT_USERWITHAUTH,
		.authPolicy = { 48, EK_POLICY_B_SHA384 },
		.parameters.eccDetail = {
			.symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 256, .mode.aes = TPM2_ALG_CFB },
			.scheme.scheme = TPM2_ALG_NULL, .curveID = TPM2_ECC_NIST_P384,
			.kdf.scheme = TPM2_ALG_NULL,
		},
	} },
};

const struct tpm_ek_profile *tpm_ek_profile(enum tpm_ek_kind kind)
{
	return kind < _TPM_EK_KIND_MAX ? &ek_profiles[kind] : NULL;
}

const char *tpm_ek_kind_name(enum tpm_ek_kind kind)
{
	return kind < _TPM_EK_KIND_MAX ? ek_profiles[kind].name : NULL;
}

int tpm_ek_kind_from_name(const char *s, enum tpm_ek_kind *ret)
{
	for (size_t i = 0; i < _TPM_EK_KIND_MAX; i++)
		if (streq(ek_profiles[i].name, s)) {
			*ret = (enum tpm_ek_kind)i;
			return 0;
		}
	return -EINVAL;
}

/* The template for this key type (RSA modulus size or ECC curve), and the key written at full length into it. */
static const struct tpm_ek_profile *ek_template_for(const TPMT_PUBLIC *p, TPMT_PUBLIC *ret, char *reason)
{
	for (size_t i = 0; i < _TPM_EK_KIND_MAX; i++) {
		const struct tpm_ek_profile *e = &ek_profiles[i];
		size_t fs = 0;

		if (e->area.type != p->type)
			continue;
		if (p->type == TPM2_ALG_RSA && e->area.parameters.rsaDetail.keyBits == p->parameters.rsaDetail.keyBits) {
			*ret = e->area;
			ret->unique.rsa = p->unique.rsa;
			if (p->unique.rsa.size == e->area.unique.rsa.size)
				return e;
			snprintf(reason, TPM_PUB_REASON_MAX, "an RSA modulus of %u bytes is not a %u-bit key",
				 p->unique.rsa.size, p->parameters.rsaDetail.keyBits);
			return NULL;
		}
		if (p->type == TPM2_ALG_ECC && e->area.parameters.eccDetail.curveID == p->parameters.eccDetail.curveID) {
			const TPMS_ECC_POINT *q = &p->unique.ecc;

			*ret = e->area;
			/* A TPM pads the coordinates to the field size; a short one is the same point. */
			(void)tpm_curve_info(p->parameters.eccDetail.curveID, &fs);
			if (q->x.size > fs || q->y.size > fs) {
				snprintf(reason, TPM_PUB_REASON_MAX, "ECC point coordinates of %u and %u bytes exceed the curve",
					 q->x.size, q->y.size);
				return NULL;
			}
			ret->unique.ecc = (TPMS_ECC_POINT){ .x.size = (uint16_t)fs, .y.size = (uint16_t)fs };
			memcpy(ret->unique.ecc.x.buffer + fs - q->x.size, q->x.buffer, q->x.size);
			memcpy(ret->unique.ecc.y.buffer + fs - q->y.size, q->y.buffer, q->y.size);
			return e;
		}
	}
	if (p->type == TPM2_ALG_RSA)
		snprintf(reason, TPM_PUB_REASON_MAX, "an RSA %u key is in none of the EK templates (rsa2048, ecc256, ecc384)",
			 p->parameters.rsaDetail.keyBits);
	else
		snprintf(reason, TPM_PUB_REASON_MAX,
			 "an ECC key on curve 0x%04x is in none of the EK templates (rsa2048, ecc256, ecc384)",
			 p->parameters.eccDetail.curveID);
	return NULL;
}

int tpm_ek_identity(const struct tpm_pub *ek, uint8_t ret[TPM_EK_ID_SIZE], char reason[TPM_PUB_REASON_MAX])
{
	const TPMT_PUBLIC *p = &ek->area;
	const struct tpm_ek_profile *e;
	TPMT_PUBLIC want, got;
	uint8_t a[sizeof(TPMT_PUBLIC)], b[sizeof(TPMT_PUBLIC)];
	char policy[2 * sizeof(p->authPolicy.buffer) + 1];
	size_t na = 0, nb = 0;

	e = ek_template_for(p, &want, reason);
	if (!e)
		return -EKEYREJECTED;
	got = *p;
	got.unique = want.unique;
	if (Tss2_MU_TPMT_PUBLIC_Marshal(&want, a, sizeof(a), &na) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPMT_PUBLIC_Marshal(&got, b, sizeof(b), &nb) != TSS2_RC_SUCCESS)
		return -EINVAL;
	if (na == nb && memcmp(a, b, na) == 0)
		return pcr_bank_digest(pcr_bank_by_alg(TPM2_ALG_SHA256), a, na, ret);
	if (p->nameAlg != want.nameAlg)
		snprintf(reason, TPM_PUB_REASON_MAX, "nameAlg 0x%04x is not 0x%04x (EK template %s, %s)", p->nameAlg,
			 want.nameAlg, e->template, e->name);
	else if (p->objectAttributes != want.objectAttributes)
		snprintf(reason, TPM_PUB_REASON_MAX, "objectAttributes 0x%08x are not 0x%08x (EK template %s, %s)",
			 p->objectAttributes, want.objectAttributes, e->template, e->name);
	else if (p->authPolicy.size != want.authPolicy.size ||
		 memcmp(p->authPolicy.buffer, want.authPolicy.buffer, want.authPolicy.size) != 0) {
		hex_encode(p->authPolicy.buffer, p->authPolicy.size, policy);
		snprintf(reason, TPM_PUB_REASON_MAX, "authPolicy '%.64s%s' is not the EK template %s's (%s)", policy,
			 p->authPolicy.size > 32 ? "..." : "", e->template, e->name);
	} else
		snprintf(reason, TPM_PUB_REASON_MAX,
			 "the symmetric, scheme, exponent or KDF parameters are not the EK template %s's (%s)", e->template,
			 e->name);
	return -EKEYREJECTED;
}

void tpm_name_hierarchy(TPM2_HANDLE hierarchy, TPM2B_NAME *ret)
{
	*ret = (TPM2B_NAME){
		.size = 4,
		.name = { hierarchy >> 24, (hierarchy >> 16) & 0xff, (hierarchy >> 8) & 0xff, hierarchy & 0xff },
	};
}

int tpm_name_qualify(const TPM2B_NAME *parent_qn, const TPM2B_NAME *name, TPM2B_NAME *ret)
{
	TPMI_ALG_HASH alg;
	TPM2B_NAME qn = { 0 };
	size_t size;
	int r;

	if (name->size < 2 || parent_qn->size > sizeof(parent_qn->name))
		return -EINVAL;
	alg = (TPMI_ALG_HASH)(name->name[0] << 8 | name->name[1]);
	r = digest_concat(alg, parent_qn->name, parent_qn->size, name->name, name->size, qn.name + 2, &size);
	if (r < 0)
		return r;
	qn.name[0] = name->name[0];
	qn.name[1] = name->name[1];
	qn.size = (uint16_t)(2 + size);
	*ret = qn;
	return 0;
}
