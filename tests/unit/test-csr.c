/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* server/verify/csr.c: the PKCS#10 requests OpenSSL writes are read exactly; anything else is refused. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "csr.h"
#include "ossl.h"
#include "tap.h"

/* A DER request for key signed with md, as a node (node/attest-node.c) makes it. */
static int make(EVP_PKEY *key, const EVP_MD *md, uint8_t **ret)
{
	X509_REQ *req = X509_REQ_new();
	int n = -1;

	if (req && X509_REQ_set_version(req, 0) == 1 &&
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
				       (const unsigned char *)"node", -1, -1, 0) == 1 &&
	    X509_REQ_set_pubkey(req, key) == 1 && X509_REQ_sign(req, key, md) > 0)
		n = i2d_X509_REQ(req, ret);
	X509_REQ_free(req);
	return n;
}

static bool signature_verifies(EVP_PKEY *key, const struct csr *c)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();

	return md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	       EVP_DigestVerify(md, c->sig, c->sig_size, c->info, c->info_size) == 1;
}

int main(void)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	uint8_t *der = NULL, *other = NULL, *spki = NULL, point[CSR_P256_POINT_SIZE], buf[1024];
	size_t point_size = 0;
	struct csr c = {};
	int n, m, s;

	n = make(key, EVP_sha256(), &der);
	s = i2d_PUBKEY(key, &spki);
	EVP_PKEY_get_octet_string_param(key, "encoded-pub-key", point, sizeof(point), &point_size);
	CHECK(n > 0 && csr_parse_p256(der, (size_t)n, &c) == 0, "OpenSSL's P-256/SHA-256 request parses");
	CHECK(c.spki_size == (size_t)s && memcmp(c.spki, spki, (size_t)s) == 0,
	      "its SubjectPublicKeyInfo is the key's DER, byte for byte");
	CHECK(point_size == CSR_P256_POINT_SIZE && memcmp(c.point, point, point_size) == 0, "the point is the key's");
	CHECK(signature_verifies(key, &c), "the signature verifies over the span found as CertificationRequestInfo");

	memcpy(buf, der, (size_t)n);
	buf[n] = 0;
	CHECK(csr_parse_p256(buf, (size_t)n + 1, &c) == -EBADMSG, "a byte after the request: refused");
	m = 0;
	for (int i = 0; i < n; i++)
		m += csr_parse_p256(der, (size_t)i, &c) == -EBADMSG;
	CHECK(m == n, "every truncation: refused as malformed");
	memcpy(buf, der, (size_t)n);
	buf[0] = 0x31;
	CHECK(csr_parse_p256(buf, (size_t)n, &c) == -EBADMSG, "a SET where the SEQUENCE belongs: refused");
	/* The outer length in long form, one octet more than needed. */
	buf[0] = 0x30;
	buf[1] = 0x83;
	buf[2] = 0;
	CHECK(der[1] == 0x81 && csr_parse_p256(buf, (size_t)n, &c) == -EBADMSG,
	      "a length not in its shortest form: refused");
	memcpy(buf, der, (size_t)n);
	buf[7] = 1; /* version: der is 30 81 xx 30 81 xx 02 01 00 */
	CHECK(der[5] == 0x02 && csr_parse_p256(buf, (size_t)n, &c) == -EBADMSG, "version 2: refused");

	OPENSSL_free(other);
	other = NULL;
	m = make(key, EVP_sha384(), &other);
	CHECK(m > 0 && csr_parse_p256(other, (size_t)m, &c) == -EOPNOTSUPP, "signed with SHA-384: not ours");
	OPENSSL_free(other);
	other = NULL;
	m = make(p384, EVP_sha256(), &other);
	CHECK(m > 0 && csr_parse_p256(other, (size_t)m, &c) == -EKEYREJECTED, "a P-384 key: refused");
	OPENSSL_free(other);
	other = NULL;
	m = make(rsa, EVP_sha256(), &other);
	CHECK(m > 0 && csr_parse_p256(other, (size_t)m, &c) == -EKEYREJECTED, "an RSA key: refused");
	OPENSSL_free(other);
	OPENSSL_free(der);
	OPENSSL_free(spki);
	return TAP_DONE();
}
