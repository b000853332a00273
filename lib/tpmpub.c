/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <openssl/core_names.h>
#include <tss2/tss2_mu.h>

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
