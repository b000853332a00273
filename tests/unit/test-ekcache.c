/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * server/pki.c's memory of verified EK certificates: an entry vouches for one certificate
 * with one EK, inside its chain's validity only; anything else is checked in full.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include "../../server/pki.c"
#include "tap.h"

static EVP_PKEY *keygen(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* A certificate for key signed by issuer_key (self-signed when issuer is NULL), valid from..to seconds from now. */
static X509 *cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *cn, long from, long to)
{
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *e;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)random());
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, issuer ? "critical,CA:FALSE" : "critical,CA:TRUE");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier, "hash");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	if (!issuer) {
		e = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	X509_sign(x, issuer_key, EVP_sha256());
	return x;
}

/* The EK as a TPM would describe it: ECC P-256, AES-128-CFB, SHA-256 name. */
static int ek_pub(EVP_PKEY *key, struct tpm_pub *ret)
{
	TPM2B_PUBLIC p = { 0 };
	uint8_t point[65];
	size_t n = 0;

	if (EVP_PKEY_get_octet_string_param(key, "encoded-pub-key", point, sizeof(point), &n) != 1 || n != 65)
		return -EIO;
	p.publicArea.type = TPM2_ALG_ECC;
	p.publicArea.nameAlg = TPM2_ALG_SHA256;
	p.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_DECRYPT |
					TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SENSITIVEDATAORIGIN;
	p.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
	p.publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128;
	p.publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
	p.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
	p.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	p.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	p.publicArea.unique.ecc.x.size = p.publicArea.unique.ecc.y.size = 32;
	memcpy(p.publicArea.unique.ecc.x.buffer, point + 1, 32);
	memcpy(p.publicArea.unique.ecc.y.buffer, point + 33, 32);
	return tpm_pub_from_tss(&p, ret);
}

static void write_pem(const char *path, X509 *x, EVP_PKEY *key)
{
	FILE *f = fopen(path, "we");

	if (x)
		PEM_write_X509(f, x);
	else
		PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
}

static int der_of(X509 *x, uint8_t **ret)
{
	return i2d_X509(x, ret);
}

int main(void)
{
	char dir[] = "/tmp/test-ekcache-XXXXXX", root_path[64], key_path[64];
	EVP_PKEY *root_key = keygen(), *ek1_key = keygen(), *ek2_key = keygen();
	X509 *root, *ek1, *ek2;
	struct server_config c = { 0 };
	struct tpm_pub ek1_pub, ek2_pub;
	struct pki *p = NULL;
	uint8_t *der1 = NULL, *der2 = NULL, digest[32];
	char reason[ATTEST_REASON_MAX], h1[EK_HASH_HEX + 1], h2[EK_HASH_HEX + 1];
	int n1, n2;
	int64_t now = (int64_t)time(NULL);

	/* The root for a day; the EK certificates from an hour ago for two hours, same subject. */
	root = cert(root_key, NULL, root_key, "ek-root", -86400, 86400);
	ek1 = cert(ek1_key, root, root_key, "ek", -3600, 7200);
	ek2 = cert(ek2_key, root, root_key, "ek", -3600, 7200);
	n1 = der_of(ek1, &der1);
	n2 = der_of(ek2, &der2);
	/* As keystrap-server does: pki_load refuses a CA key that group or others can read. */
	umask(077);
	if (!mkdtemp(dir))
		return 1;
	snprintf(root_path, sizeof(root_path), "%s/root.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/root.key", dir);
	write_pem(root_path, root, NULL);
	write_pem(key_path, NULL, root_key);
	c.ek_ca[0] = root_path;
	c.n_ek_ca = 1;
	c.ca_certificate = root_path;
	c.ca_key = key_path;

	CHECK(pki_load(&c, &p) == 0 && ek_pub(ek1_key, &ek1_pub) == 0 && ek_pub(ek2_key, &ek2_pub) == 0,
	      "a pki with one EK root; two EKs with certificates of the same subject");
	CHECK(pki_ek_cert_check(p, der1, (size_t)n1, &ek1_pub, reason) == 0, "EK 1 with its certificate passes");
	EVP_Digest(der1, (size_t)n1, digest, NULL, EVP_sha256(), NULL);
	ek_digest(p, &ek1_pub, h1);
	ek_digest(p, &ek2_pub, h2);
	CHECK(ek_cache_hit(p, digest, h1, now), "and is remembered for EK 1");
	CHECK(!ek_cache_hit(p, digest, h2, now), "not for another EK");
	CHECK(!ek_cache_hit(p, digest, h1, now + 7200 + 60), "not after the certificate's notAfter");
	CHECK(!ek_cache_hit(p, digest, h1, now - 3600 - 60), "not before its notBefore");
	CHECK(pki_ek_cert_check(p, der2, (size_t)n2, &ek1_pub, reason) == -EKEYREJECTED &&
		      streq(reason, "the EK certificate does not certify ek_pub"),
	      "EK 2's certificate (same subject, same root) for EK 1: refused");
	CHECK(pki_ek_cert_check(p, der1, (size_t)n1, &ek2_pub, reason) == -EKEYREJECTED,
	      "EK 1's remembered certificate presented with EK 2: refused");
	der1[n1 - 1] ^= 1;
	CHECK(pki_ek_cert_check(p, der1, (size_t)n1, &ek1_pub, reason) == -EKEYREJECTED,
	      "the remembered certificate with one bit of its signature flipped: checked in full, refused");

	pki_free(p);
	unlink(root_path);
	unlink(key_path);
	rmdir(dir);
	X509_free(root);
	X509_free(ek1);
	X509_free(ek2);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(ek1_key);
	EVP_PKEY_free(ek2_key);
	OPENSSL_free(der1);
	OPENSSL_free(der2);
	return TAP_DONE();
}
