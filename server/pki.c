/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "encode.h"
#include "log.h"
#include "ossl.h"
#include "pki.h"

struct pki {
	X509_STORE *ek_roots;
	X509 *ca;
	EVP_PKEY *ca_key;
};

void pki_free(struct pki *p)
{
	if (!p)
		return;
	X509_STORE_free(p->ek_roots);
	X509_free(p->ca);
	EVP_PKEY_free(p->ca_key);
	free(p);
}

static int reason_set(char *reason, const char *what, const char *detail)
{
	snprintf(reason, ATTEST_REASON_MAX, "%s%s", what, detail);
	return -EKEYREJECTED;
}

static X509 *read_cert(const char *path)
{
	FILE *f = fopen(path, "re");
	X509 *x;

	if (!f)
		return NULL;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

int pki_load(const struct server_config *c, struct pki **ret)
{
	struct pki *p = calloc(1, sizeof(*p));
	FILE *f;
	int r = -EINVAL;

	if (!p || !(p->ek_roots = X509_STORE_new())) {
		pki_free(p);
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->n_ek_ca; i++)
		if (X509_STORE_load_file(p->ek_roots, c->ek_ca[i]) != 1) {
			r = log_error_errno(r, "cannot load EK CA certificate '%s'", c->ek_ca[i]);
			goto fail;
		}
	if (!(p->ca = read_cert(c->ca_certificate))) {
		r = log_error_errno(r, "cannot load CA certificate '%s'", c->ca_certificate);
		goto fail;
	}
	f = fopen(c->ca_key, "re");
	if (f) {
		p->ca_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (!p->ca_key || X509_check_private_key(p->ca, p->ca_key) != 1) {
		r = log_error_errno(r, "cannot load CA key '%s', or it is not the CA certificate's key", c->ca_key);
		goto fail;
	}
	*ret = p;
	return 0;
fail:
	ERR_clear_error();
	pki_free(p);
	return r;
}

int pki_ek_cert_verify(struct pki *p, const uint8_t *der, size_t size, char *reason)
{
	_cleanup_(X509_freep) X509 *x = NULL;
	const uint8_t *q = der;
	X509_STORE_CTX *ctx;
	int ok, err;

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
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	if (ok != 1)
		return reason_set(reason, "the EK certificate does not chain to a trusted manufacturer CA: ",
				  X509_verify_cert_error_string(err));
	return 0;
}

int pki_csr_key(const char *pem, EVP_PKEY **ret_key, uint8_t **ret_spki, size_t *ret_spki_size, char *reason)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	X509_REQ *req;
	BIO *bio = BIO_new_mem_buf(pem, -1);
	uint8_t *spki = NULL;
	char group[32];
	int n;

	if (!bio)
		return -ENOMEM;
	req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!req) {
		ERR_clear_error();
		snprintf(reason, ATTEST_REASON_MAX, "the CSR is not a PEM PKCS#10 request");
		return -EBADMSG;
	}
	key = X509_REQ_get_pubkey(req);
	n = key ? X509_REQ_verify(req, key) : 0;
	X509_REQ_free(req);
	ERR_clear_error();
	if (n != 1) {
		snprintf(reason, ATTEST_REASON_MAX, "the CSR's signature does not verify");
		return -EKEYREJECTED;
	}
	if (!EVP_PKEY_is_a(key, "EC") || EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), NULL) != 1 ||
	    !streq(group, "prime256v1")) {
		snprintf(reason, ATTEST_REASON_MAX, "the CSR's key is not ECC P-256");
		return -EKEYREJECTED;
	}
	n = i2d_PUBKEY(key, &spki);
	if (n <= 0)
		return -ENOMEM;
	*ret_spki = spki;
	*ret_spki_size = (size_t)n;
	*ret_key = TAKE_PTR(key);
	return 0;
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

int pki_issue(struct pki *p, EVP_PKEY *key, const char *node_id, int64_t lifetime, char **ret_pem,
	      char ret_serial[41])
{
	_cleanup_(X509_freep) X509 *x = X509_new();
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	uint8_t serial[20];
	char san[8 + ATTEST_NODE_ID_MAX + 1];
	BIO *bio;
	BUF_MEM *mem;
	int r = -EIO;

	if (!x)
		return -ENOMEM;
	/* 159 random bits, positive: unique without coordination between servers. */
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		return -EIO;
	serial[0] &= 0x7f;
	serial[0] |= 0x01;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	snprintf(san, sizeof(san), "DNS:%s", node_id);
	if (!bn || X509_set_version(x, X509_VERSION_3) != 1 || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -60) || !X509_gmtime_adj(X509_getm_notAfter(x), (long)lifetime) ||
	    X509_set_issuer_name(x, X509_get_subject_name(p->ca)) != 1 ||
	    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)node_id, -1,
				       -1, 0) != 1 ||
	    X509_set_pubkey(x, key) != 1)
		goto out;
	if ((r = add_ext(x, p->ca, NID_basic_constraints, "critical,CA:FALSE")) < 0 ||
	    (r = add_ext(x, p->ca, NID_key_usage, "critical,digitalSignature")) < 0 ||
	    (r = add_ext(x, p->ca, NID_ext_key_usage, "clientAuth")) < 0 ||
	    (r = add_ext(x, p->ca, NID_subject_alt_name, san)) < 0 ||
	    (r = add_ext(x, p->ca, NID_subject_key_identifier, "hash")) < 0 ||
	    (r = add_ext(x, p->ca, NID_authority_key_identifier, "keyid:always")) < 0)
		goto out;
	r = -EIO;
	if (X509_sign(x, p->ca_key, EVP_sha256()) <= 0)
		goto out;
	bio = BIO_new(BIO_s_mem());
	if (!bio || PEM_write_bio_X509(bio, x) != 1) {
		BIO_free(bio);
		goto out;
	}
	BIO_get_mem_ptr(bio, &mem);
	*ret_pem = strndup(mem->data, mem->length);
	BIO_free(bio);
	if (!*ret_pem)
		return -ENOMEM;
	hex_encode(serial, sizeof(serial), ret_serial);
	return 0;
out:
	ERR_clear_error();
	return r;
}

int pki_ca_pem(struct pki *p, char **ret)
{
	BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *mem;
	int r = -ENOMEM;

	if (bio && PEM_write_bio_X509(bio, p->ca) == 1) {
		BIO_get_mem_ptr(bio, &mem);
		*ret = strndup(mem->data, mem->length);
		r = *ret ? 0 : -ENOMEM;
	}
	BIO_free(bio);
	return r;
}

int pki_pem_not_after(const char *pem, int64_t *ret)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	_cleanup_(X509_freep) X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	struct tm tm;

	BIO_free(bio);
	if (!x || ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		return -EBADMSG;
	*ret = (int64_t)timegm(&tm);
	return 0;
}
