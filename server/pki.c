/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "ca-chain.h"
#include "csr.h"
#include "encode.h"
#include "fileio.h"
#include "keyref.h"
#include "log.h"
#include "ossl.h"
#include "pki.h"

/*
 * EK certificates chain-verified and matched to an EK, by SHA-256 of the certificate DER: a
 * node presents the same certificate at every boot. An entry vouches only for that exact
 * certificate with that exact EK public area (ek_hash), inside the validity period of every
 * certificate in its chain; the trusted CAs are fixed when the server starts. Nothing about
 * approval, revocation or policy is in here: those are checked on every request.
 */
#define EK_CACHE_WAYS 4
#define EK_CACHE_SETS 1024

struct ek_cache_entry {
	uint8_t cert[32];
	char ek_hash[EK_HASH_HEX + 1];
	int64_t not_before, not_after; /* the chain's: latest notBefore, earliest notAfter */
	uint64_t used;                 /* 0: empty */
};

struct pki {
	X509_STORE *ek_roots;
	STACK_OF(X509) *chain; /* the issuing CA first, then its issuers */
	X509 *ca;              /* borrowed: chain's first */
	size_t n_previous;     /* CAs of an unfinished rotation, in the bundle until ca retire */
	EVP_PKEY *ca_key;
	char *ca_pem;          /* the bundle: chain, then the previous CAs */
	EVP_MD *sha256;
	/* The node certificate's extensions every certificate shares, made once. */
	X509_EXTENSION *fixed_ext[4];
	struct ek_cache_entry *ek_cache;
	uint64_t ek_cache_clock;
	/* The last CRL made, and what it was made from (pki_crl). */
	struct {
		uint8_t *der;
		size_t der_size;
		char *pem;
		int64_t version[2]; /* store_revoked_version's */
		int64_t lifetime;
		struct pki_crl_info info;
	} crl;
};

void pki_free(struct pki *p)
{
	if (!p)
		return;
	X509_STORE_free(p->ek_roots);
	sk_X509_pop_free(p->chain, X509_free);
	EVP_PKEY_free(p->ca_key);
	free(p->ca_pem);
	EVP_MD_free(p->sha256);
	for (size_t i = 0; i < ELEMENTSOF(p->fixed_ext); i++)
		X509_EXTENSION_free(p->fixed_ext[i]);
	free(p->ek_cache);
	OPENSSL_free(p->crl.der);
	free(p->crl.pem);
	free(p);
}

static int reason_set(char *reason, const char *what, const char *detail)
{
	snprintf(reason, ATTEST_REASON_MAX, "%s%s", what, detail);
	return -EKEYREJECTED;
}

static X509_EXTENSION *ext_make(X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;

	X509V3_set_ctx(&v3, issuer, NULL, NULL, NULL, 0);
	return X509V3_EXT_conf_nid(NULL, &v3, nid, value);
}

static int pem_of(X509 *x, char **ret)
{
	BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *mem;
	int r = -ENOMEM;

	if (bio && PEM_write_bio_X509(bio, x) == 1) {
		BIO_get_mem_ptr(bio, &mem);
		*ret = strndup(mem->data, mem->length);
		r = *ret ? 0 : -ENOMEM;
	}
	BIO_free(bio);
	return r;
}

/*
 * The CAs a rotation replaced (ca rotate moves them here; ca retire empties it): in the bundle
 * nodes and their consumers receive, so certificates either CA issued verify during the overlap.
 * No file: no rotation under way.
 */
static int previous_load(const struct server_config *c, char **bundle, size_t *ret_n)
{
	_cleanup_chain_ STACK_OF(X509) *prev = NULL;
	char why[PATH_MAX + 256];
	int r = c->ca_previous ? ca_chain_read(c->ca_previous, &prev, why, sizeof(why)) : -ENOENT;

	if (r == -ENOENT) {
		*ret_n = 0;
		return 0;
	}
	if (r < 0)
		return log_error_errno(r, "cannot load the previous CAs: %s", why);
	for (int i = 0; i < sk_X509_num(prev); i++)
		if (X509_check_ca(sk_X509_value(prev, i)) != 1) {
			ERR_clear_error();
			return log_error_errno(-EINVAL, "'%s': certificate %d is not a CA certificate", c->ca_previous, i + 1);
		}
	*ret_n = (size_t)sk_X509_num(prev);
	return ca_chain_pem_append(prev, bundle);
}

int pki_load(const struct server_config *c, struct pki **ret)
{
	struct pki *p = calloc(1, sizeof(*p));
	char why[KEYREF_WHY_MAX], pending[PATH_MAX + 8];
	int r = -EINVAL;

	if (!p || !(p->ek_roots = X509_STORE_new()) ||
	    !(p->ek_cache = calloc(EK_CACHE_SETS * EK_CACHE_WAYS, sizeof(*p->ek_cache))) ||
	    !(p->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) {
		pki_free(p);
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->n_ek_ca; i++)
		if (X509_STORE_load_file(p->ek_roots, c->ek_ca[i]) != 1) {
			r = log_error_errno(r, "cannot load EK CA certificate '%s'", c->ek_ca[i]);
			goto fail;
		}
	if (ca_chain_read(c->ca_certificate, &p->chain, why, sizeof(why)) < 0 ||
	    ca_chain_check(c->ca_certificate, p->chain, why, sizeof(why)) < 0) {
		r = log_error_errno(r, "cannot load CA certificate: %s", why);
		goto fail;
	}
	p->ca = sk_X509_value(p->chain, 0);
	/* A file (owner-only: whoever can read it can mint node certificates), the TPM or a token (keyref.h). */
	if (keyref_load_private(c->ca_key, &p->ca_key, why, sizeof(why)) < 0) {
		r = log_error_errno(r, "CA key %s", why);
		goto fail;
	}
	if (X509_check_private_key(p->ca, p->ca_key) != 1) {
		const char *file = keyref_file(c->ca_key);

		keyref_display(c->ca_key, why, sizeof(why));
		snprintf(pending, sizeof(pending), "%s.new", file ? file : "");
		r = log_error_errno(r, "CA key '%s' is not the key of '%s''s first certificate%s", why, c->ca_certificate,
				    file && access(pending, F_OK) == 0
					    ? " (an interrupted ca rotate left it: run it again)"
					    : "");
		goto fail;
	}
	p->fixed_ext[0] = ext_make(p->ca, NID_basic_constraints, "critical,CA:FALSE");
	p->fixed_ext[1] = ext_make(p->ca, NID_key_usage, "critical,digitalSignature");
	p->fixed_ext[2] = ext_make(p->ca, NID_ext_key_usage, "clientAuth");
	p->fixed_ext[3] = ext_make(p->ca, NID_authority_key_identifier, "keyid:always");
	for (size_t i = 0; i < ELEMENTSOF(p->fixed_ext); i++)
		if (!p->fixed_ext[i]) {
			r = log_error_errno(r, "CA certificate '%s' cannot issue node certificates (no key identifier?)",
					    c->ca_certificate);
			goto fail;
		}
	if ((r = ca_chain_pem_append(p->chain, &p->ca_pem)) < 0 || (r = previous_load(c, &p->ca_pem, &p->n_previous)) < 0)
		goto fail;
	*ret = p;
	return 0;
fail:
	ERR_clear_error();
	pki_free(p);
	return r;
}

static struct ek_cache_entry *ek_cache_set(struct pki *p, const uint8_t cert[32])
{
	return p->ek_cache + ((size_t)(cert[0] | cert[1] << 8) % EK_CACHE_SETS) * EK_CACHE_WAYS;
}

static bool ek_cache_hit(struct pki *p, const uint8_t cert[32], const char *ek_hash, int64_t now)
{
	struct ek_cache_entry *e = ek_cache_set(p, cert);

	for (size_t i = 0; i < EK_CACHE_WAYS; i++)
		if (e[i].used && memcmp(e[i].cert, cert, 32) == 0 && streq(e[i].ek_hash, ek_hash) &&
		    now >= e[i].not_before && now <= e[i].not_after) {
			e[i].used = ++p->ek_cache_clock;
			return true;
		}
	return false;
}

/* The chain just verified: remembered in the set's least recently used way. */
static void ek_cache_put(struct pki *p, const uint8_t cert[32], const char *ek_hash, X509_STORE_CTX *ctx)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
	struct ek_cache_entry *e = ek_cache_set(p, cert), *victim = e, n = { .not_before = INT64_MIN, .not_after = INT64_MAX };

	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);
		int64_t b = cert_time_unix(X509_get0_notBefore(x)), a = cert_time_unix(X509_get0_notAfter(x));

		/* Unparsable (0) or not after 1970: such a chain is verified every time. */
		if (b <= 0 || a <= 0)
			return;
		n.not_before = b > n.not_before ? b : n.not_before;
		n.not_after = a < n.not_after ? a : n.not_after;
	}
	if (sk_X509_num(chain) <= 0)
		return;
	for (size_t i = 1; i < EK_CACHE_WAYS; i++)
		if (e[i].used < victim->used)
			victim = &e[i];
	memcpy(n.cert, cert, 32);
	snprintf(n.ek_hash, sizeof(n.ek_hash), "%s", ek_hash);
	n.used = ++p->ek_cache_clock;
	*victim = n;
}

/* SHA-256 of the EK's TPMT_PUBLIC as sent, in hex: the exact public area a cache entry vouches for. */
static int ek_digest(struct pki *p, const struct tpm_pub *ek, char ret[EK_HASH_HEX + 1])
{
	uint8_t buf[sizeof(TPM2B_PUBLIC)], d[32];
	size_t size;

	if (tpm_pub_marshal(ek, buf, sizeof(buf), &size) < 0 || EVP_Digest(buf + 2, size - 2, d, NULL, p->sha256, NULL) != 1)
		return -EIO;
	hex_encode(d, sizeof(d), ret);
	return 0;
}

int pki_ek_cert_check(struct pki *p, const uint8_t *der, size_t size, const struct tpm_pub *ek, char *reason)
{
	_cleanup_(X509_freep) X509 *x = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	const uint8_t *q = der;
	uint8_t digest[32];
	char ek_hash[EK_HASH_HEX + 1];
	X509_STORE_CTX *ctx;
	int ok, err, r;

	if (EVP_Digest(der, size, digest, NULL, p->sha256, NULL) != 1 || ek_digest(p, ek, ek_hash) < 0)
		return -EIO;
	if (ek_cache_hit(p, digest, ek_hash, (int64_t)time(NULL)))
		return 0;
	x = d2i_X509(NULL, &q, (long)size);
	if (!x || q != der + size) {
		ERR_clear_error();
		return reason_set(reason, "the EK certificate is not one DER X.509 certificate", "");
	}
	ctx = X509_STORE_CTX_new();
	if (!ctx || X509_STORE_CTX_init(ctx, p->ek_roots, x, NULL) != 1) {
		X509_STORE_CTX_free(ctx);
		return -ENOMEM;
	}
	ok = X509_verify_cert(ctx);
	err = X509_STORE_CTX_get_error(ctx);
	if (ok != 1) {
		X509_STORE_CTX_free(ctx);
		ERR_clear_error();
		return reason_set(reason, "the EK certificate does not chain to a trusted manufacturer CA: ",
				  X509_verify_cert_error_string(err));
	}
	r = tpm_pub_to_evp(ek, &key);
	if (r >= 0 && (!X509_get0_pubkey(x) || EVP_PKEY_eq(key, X509_get0_pubkey(x)) != 1))
		r = -EKEYREJECTED;
	if (r >= 0)
		ek_cache_put(p, digest, ek_hash, ctx);
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	if (r < 0)
		return reason_set(reason, "the EK certificate does not certify ek_pub", "");
	return 0;
}

int pki_csr_key(struct pki *p, const char *pem, uint8_t **ret_spki, size_t *ret_spki_size, char *reason)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
	BIO *bio = BIO_new_mem_buf(pem, -1);
	char *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	long size = 0;
	struct csr c;
	int r = -EBADMSG;

	if (!bio)
		return -ENOMEM;
	/* The PEM armour as PEM_read_bio_X509_REQ takes it: either label, no headers. */
	if (PEM_read_bio(bio, &name, &header, &der, &size) == 1 && !*header &&
	    (streq(name, PEM_STRING_X509_REQ) || streq(name, PEM_STRING_X509_REQ_OLD)))
		r = csr_parse_p256(der, (size_t)size, &c);
	BIO_free(bio);
	OPENSSL_free(name);
	OPENSSL_free(header);
	ERR_clear_error();
	if (r == -EBADMSG) {
		snprintf(reason, ATTEST_REASON_MAX, "the CSR is not a PEM PKCS#10 request");
		goto out;
	}
	if (r == -EOPNOTSUPP) {
		snprintf(reason, ATTEST_REASON_MAX, "the CSR is not signed with ecdsa-with-SHA256");
		r = -EKEYREJECTED;
		goto out;
	}
	if (r < 0 || (r = evp_ec_public("prime256v1", c.point, CSR_P256_POINT_SIZE, &key)) < 0) {
		snprintf(reason, ATTEST_REASON_MAX, "the CSR's key is not ECC P-256");
		r = -EKEYREJECTED;
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestVerifyInit(md, NULL, p->sha256, NULL, key) != 1 ||
	    EVP_DigestVerify(md, c.sig, c.sig_size, c.info, c.info_size) != 1) {
		ERR_clear_error();
		snprintf(reason, ATTEST_REASON_MAX, "the CSR's signature does not verify");
		r = -EKEYREJECTED;
		goto out;
	}
	*ret_spki = malloc(c.spki_size);
	if (!*ret_spki) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(*ret_spki, c.spki, c.spki_size);
	*ret_spki_size = c.spki_size;
	r = 0;
out:
	OPENSSL_free(der);
	return r;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!e)
		return -EINVAL;
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok == 1 ? 0 : -ENOMEM;
}

/* The certificate's key from the SPKI pki_csr_key returned, as bytes: no key object, no encoder. */
static int set_p256_key(X509 *x, const uint8_t *spki, size_t spki_size)
{
	uint8_t *point;

	if (spki_size < CSR_P256_POINT_SIZE)
		return -EINVAL;
	point = OPENSSL_memdup(spki + spki_size - CSR_P256_POINT_SIZE, CSR_P256_POINT_SIZE);
	if (!point)
		return -ENOMEM;
	if (X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
				   OBJ_nid2obj(NID_X9_62_prime256v1), point, CSR_P256_POINT_SIZE) != 1) {
		OPENSSL_free(point);
		return -ENOMEM;
	}
	return 0;
}

int pki_issue(struct pki *p, const uint8_t *spki, size_t spki_size, const char *node_id, int64_t lifetime,
	      char **ret_pem, char ret_serial[41], int64_t *ret_not_before, int64_t *ret_not_after)
{
	_cleanup_(X509_freep) X509 *x = X509_new();
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	uint8_t serial[20];
	char san[8 + ATTEST_NODE_ID_MAX + 1];
	time_t now = time(NULL);
	int r = -EIO;

	if (!x)
		return -ENOMEM;
	/* A certificate issued outside the CA's own validity verifies nowhere: this server's clock is wrong. */
	if (X509_cmp_time(X509_get0_notBefore(p->ca), &now) >= 0 || X509_cmp_time(X509_get0_notAfter(p->ca), &now) <= 0)
		return -ETIME;
	/* 159 random bits, positive: unique without coordination between servers. */
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		return -EIO;
	serial[0] &= 0x7f;
	serial[0] |= 0x01;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	snprintf(san, sizeof(san), "DNS:%s", node_id);
	if (!bn || X509_set_version(x, X509_VERSION_3) != 1 || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    !X509_time_adj_ex(X509_getm_notBefore(x), 0, -ATTEST_CLOCK_SKEW_MAX, &now) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), 0, (long)lifetime, &now) ||
	    X509_set_issuer_name(x, X509_get_subject_name(p->ca)) != 1 ||
	    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)node_id, -1,
				       -1, 0) != 1)
		goto out;
	if ((r = set_p256_key(x, spki, spki_size)) < 0)
		goto out;
	r = -ENOMEM;
	for (size_t i = 0; i < 3; i++)
		if (X509_add_ext(x, p->fixed_ext[i], -1) != 1)
			goto out;
	if ((r = add_ext(x, p->ca, NID_subject_alt_name, san)) < 0 ||
	    (r = add_ext(x, p->ca, NID_subject_key_identifier, "hash")) < 0)
		goto out;
	r = -ENOMEM;
	if (X509_add_ext(x, p->fixed_ext[3], -1) != 1)
		goto out;
	r = -EIO;
	/* In the key's own library context: a TPM's key signs in the TPM, a token's on the token. */
	if (!(md = EVP_MD_CTX_new()) || keyref_sign_init(md, p->ca_key) < 0 || X509_sign_ctx(x, md) <= 0)
		goto out;
	if ((r = pem_of(x, ret_pem)) < 0)
		goto out;
	hex_encode(serial, sizeof(serial), ret_serial);
	*ret_not_before = (int64_t)now - ATTEST_CLOCK_SKEW_MAX;
	*ret_not_after = (int64_t)now + lifetime;
	return 0;
out:
	ERR_clear_error();
	return r;
}

STACK_OF(X509) *pki_chain(struct pki *p)
{
	return p->chain;
}

void pki_describe(struct pki *p, char *buf, size_t size)
{
	char fp[CA_FINGERPRINT_HEX + 1], subject[256];

	ca_fingerprint(p->ca, fp);
	ca_subject(p->ca, subject, sizeof(subject));
	snprintf(buf, size, "CA %.16s (%s), chain of %d, %zu previous", fp, subject, sk_X509_num(p->chain),
		 p->n_previous);
}

int pki_ca_pem(struct pki *p, char **ret)
{
	*ret = strdup(p->ca_pem);
	return *ret ? 0 : -ENOMEM;
}

OSSL_DEFINE_FREEP(X509_CRL, X509_CRL_free)
OSSL_DEFINE_FREEP(ASN1_INTEGER, ASN1_INTEGER_free)

/* What one transaction reads for a CRL: the revoked set's version, its certificates, the number. */
struct crl_build {
	X509_CRL *crl;
	int64_t now, version[2], number, entries;
};

static int crl_entry_add(const char *serial, int64_t revoked_us, void *userdata)
{
	struct crl_build *b = userdata;
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	X509_REVOKED *rev = X509_REVOKED_new();
	ASN1_INTEGER *sn = NULL;
	ASN1_TIME *t = NULL;

	/* A serial is 40 hex digits as pki_issue wrote it; anything else in the store is not ours. */
	if (!rev || strlen(serial) == 0 || strlen(serial) > 40 || strspn(serial, "0123456789abcdefABCDEF") != strlen(serial) ||
	    BN_hex2bn(&bn, serial) != (int)strlen(serial) || !(sn = BN_to_ASN1_INTEGER(bn, NULL)) ||
	    X509_REVOKED_set_serialNumber(rev, sn) != 1 || !(t = ASN1_TIME_set(NULL, (time_t)(revoked_us / 1000000))) ||
	    X509_REVOKED_set_revocationDate(rev, t) != 1 || X509_CRL_add0_revoked(b->crl, rev) != 1) {
		ASN1_INTEGER_free(sn);
		ASN1_TIME_free(t);
		X509_REVOKED_free(rev);
		return -EBADMSG;
	}
	ASN1_INTEGER_free(sn);
	ASN1_TIME_free(t);
	b->entries++;
	return 0;
}

static int crl_read(struct store *s, struct crl_build *b)
{
	int r;

	/* Until a consumer whose clock is as far behind as a node's may be stops accepting it too. */
	if ((r = store_revoked_version(s, b->version)) < 0 ||
	    (r = store_revoked_foreach(s, b->now - ATTEST_CLOCK_SKEW_MAX, crl_entry_add, b)) < 0)
		return r;
	return store_crl_number_next(s, &b->number);
}

/* The CRL's own fields and extensions, then the signature. */
static int crl_sign(struct pki *p, struct crl_build *b, int64_t lifetime)
{
	_cleanup_(ASN1_INTEGER_freep) ASN1_INTEGER *num = ASN1_INTEGER_new();
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
	ASN1_TIME *from = ASN1_TIME_set(NULL, (time_t)(b->now - ATTEST_CLOCK_SKEW_MAX));
	ASN1_TIME *to = ASN1_TIME_set(NULL, (time_t)(b->now + lifetime));
	X509V3_CTX v3;
	X509_EXTENSION *akid = NULL;
	int ok;

	X509V3_set_ctx(&v3, p->ca, NULL, NULL, b->crl, 0);
	ok = num && from && to && ASN1_INTEGER_set_int64(num, b->number) == 1 &&
	     X509_CRL_set_version(b->crl, X509_CRL_VERSION_2) == 1 &&
	     X509_CRL_set_issuer_name(b->crl, X509_get_subject_name(p->ca)) == 1 &&
	     X509_CRL_set1_lastUpdate(b->crl, from) == 1 && X509_CRL_set1_nextUpdate(b->crl, to) == 1 &&
	     X509_CRL_sort(b->crl) == 1 && X509_CRL_add1_ext_i2d(b->crl, NID_crl_number, num, 0, 0) == 1 &&
	     (akid = X509V3_EXT_conf_nid(NULL, &v3, NID_authority_key_identifier, "keyid:always")) &&
	     X509_CRL_add_ext(b->crl, akid, -1) == 1 && md && keyref_sign_init(md, p->ca_key) == 0 &&
	     X509_CRL_sign_ctx(b->crl, md) > 0;
	X509_EXTENSION_free(akid);
	ASN1_TIME_free(from);
	ASN1_TIME_free(to);
	ERR_clear_error();
	return ok ? 0 : -EIO;
}

static int crl_encode(struct pki *p, X509_CRL *crl)
{
	unsigned char *der = NULL;
	BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *mem;
	char *pem = NULL;
	int n = i2d_X509_CRL(crl, &der);

	/* The PEM armours the DER just made: encoding 10,000 entries once is enough. */
	if (n > 0 && bio && PEM_write_bio(bio, PEM_STRING_X509_CRL, "", der, n) > 0) {
		BIO_get_mem_ptr(bio, &mem);
		pem = strndup(mem->data, mem->length);
	}
	BIO_free(bio);
	ERR_clear_error();
	if (n <= 0 || !pem) {
		OPENSSL_free(der);
		free(pem);
		return -ENOMEM;
	}
	OPENSSL_free(p->crl.der);
	free(p->crl.pem);
	p->crl.der = der;
	p->crl.der_size = (size_t)n;
	p->crl.pem = pem;
	return 0;
}

int pki_crl(struct pki *p, struct store *s, int64_t lifetime, bool pem, const uint8_t **ret, size_t *ret_size,
	    struct pki_crl_info *ret_info, char *why, size_t why_size)
{
	_cleanup_(X509_CRL_freep) X509_CRL *crl = NULL;
	struct crl_build b = { .now = (int64_t)time(NULL) };
	int64_t version[2];
	char subject[256];
	int r;

	/* Consumers refuse a CRL from a CA whose keyUsage does not allow signing one. */
	if ((X509_get_extension_flags(p->ca) & EXFLAG_KUSAGE) && !(X509_get_key_usage(p->ca) & KU_CRL_SIGN)) {
		ca_subject(p->ca, subject, sizeof(subject));
		snprintf(why, why_size, "the CA (%s) may not sign CRLs: its keyUsage has no cRLSign", subject);
		return -EKEYREJECTED;
	}
	if ((r = store_revoked_version(s, version)) < 0) {
		snprintf(why, why_size, "cannot read the revoked nodes: %s", strerror(-r));
		return r;
	}
	if (!p->crl.der || p->crl.lifetime != lifetime || memcmp(version, p->crl.version, sizeof(version)) != 0 ||
	    b.now >= p->crl.info.this_update + ATTEST_CLOCK_SKEW_MAX + lifetime / 2 || b.now < p->crl.info.this_update) {
		if (!(b.crl = crl = X509_CRL_new()))
			return -ENOMEM;
		/* One transaction: the number is spent on exactly the set read with it. */
		if ((r = store_begin(s)) >= 0 && (r = crl_read(s, &b)) >= 0)
			r = store_commit(s);
		if (r < 0) {
			store_rollback(s);
			snprintf(why, why_size, "cannot read the revoked certificates: %s",
				 r == -EBADMSG ? "the store holds a serial that is not hex" : strerror(-r));
			return r;
		}
		if ((r = crl_sign(p, &b, lifetime)) < 0 || (r = crl_encode(p, crl)) < 0) {
			snprintf(why, why_size, "cannot sign the CRL: %s", strerror(-r));
			return r;
		}
		memcpy(p->crl.version, b.version, sizeof(b.version));
		p->crl.lifetime = lifetime;
		p->crl.info = (struct pki_crl_info){ .number = b.number, .entries = b.entries,
						     .this_update = b.now - ATTEST_CLOCK_SKEW_MAX,
						     .next_update = b.now + lifetime };
	}
	*ret = pem ? (const uint8_t *)p->crl.pem : p->crl.der;
	*ret_size = pem ? strlen(p->crl.pem) : p->crl.der_size;
	if (ret_info)
		*ret_info = p->crl.info;
	return 0;
}
