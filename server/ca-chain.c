/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca-chain.h"
#include "encode.h"
#include "fileio.h"
#include "macro.h"

int ca_chain_read(const char *path, STACK_OF(X509) **ret, char *why, size_t why_size)
{
	_cleanup_free_ uint8_t *text = NULL;
	STACK_OF(X509) *chain = NULL;
	size_t size;
	BIO *bio;
	int r = read_file(path, CA_FILE_MAX, &text, &size);

	if (r < 0) {
		snprintf(why, why_size, "cannot read '%s': %s", path, r == -EFBIG ? "larger than 64 KiB" : strerror(-r));
		return r;
	}
	if (!(bio = BIO_new_mem_buf(text, (int)size)) || !(chain = sk_X509_new_null())) {
		BIO_free(bio);
		return -ENOMEM;
	}
	for (;;) {
		char *name = NULL, *header = NULL;
		unsigned char *der = NULL;
		const unsigned char *q;
		long len = 0;
		X509 *x = NULL;

		if (PEM_read_bio(bio, &name, &header, &der, &len) != 1)
			break;
		q = der;
		if (streq(name, PEM_STRING_X509) && !*header)
			x = d2i_X509(NULL, &q, len);
		if (x && q != der + len)
			X509_free(TAKE_PTR(x));
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(der);
		if (!x || sk_X509_num(chain) == CA_CHAIN_MAX || sk_X509_push(chain, x) <= 0) {
			snprintf(why, why_size, "'%s' holds something other than up to %d PEM certificates", path,
				 CA_CHAIN_MAX);
			X509_free(x);
			r = -EBADMSG;
			goto out;
		}
	}
	if (sk_X509_num(chain) == 0) {
		snprintf(why, why_size, "'%s' holds no PEM certificate", path);
		r = -EBADMSG;
		goto out;
	}
	*ret = TAKE_PTR(chain);
	r = 0;
out:
	ERR_clear_error();
	BIO_free(bio);
	sk_X509_pop_free(chain, X509_free);
	return r;
}

void ca_subject(X509 *x, char *buf, size_t size)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n = 0;

	if (b && X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB) >= 0)
		n = BIO_read(b, buf, (int)size - 1);
	buf[n > 0 ? n : 0] = 0;
	BIO_free(b);
}

int ca_chain_check(const char *path, STACK_OF(X509) *chain, char *why, size_t why_size)
{
	char a[256], b[256];

	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i), *up = i + 1 < sk_X509_num(chain) ? sk_X509_value(chain, i + 1) : NULL;

		ca_subject(x, a, sizeof(a));
		if (X509_check_ca(x) != 1) {
			snprintf(why, why_size, "'%s': certificate %d (%s) is not a CA certificate (basicConstraints CA:TRUE)",
				 path, i + 1, a);
			ERR_clear_error();
			return -EINVAL;
		}
		if (up && (X509_check_issued(up, x) != X509_V_OK || X509_verify(x, X509_get0_pubkey(up)) != 1)) {
			ca_subject(up, b, sizeof(b));
			snprintf(why, why_size,
				 "'%s' is out of order: certificate %d (%s) did not issue certificate %d (%s); the chain runs "
				 "from the issuing CA to the root",
				 path, i + 2, b, i + 1, a);
			ERR_clear_error();
			return -EINVAL;
		}
	}
	return 0;
}

static void hex_sha256(const unsigned char *p, int n, char ret[CA_FINGERPRINT_HEX + 1])
{
	uint8_t d[32];

	if (n <= 0 || EVP_Digest(p, (size_t)n, d, NULL, EVP_sha256(), NULL) != 1)
		memset(d, 0, sizeof(d));
	hex_encode(d, sizeof(d), ret);
}

void ca_fingerprint(X509 *x, char ret[CA_FINGERPRINT_HEX + 1])
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);

	hex_sha256(der, n, ret);
	OPENSSL_free(der);
}

void ca_key_fingerprint(X509 *x, char ret[CA_FINGERPRINT_HEX + 1])
{
	unsigned char *der = NULL;
	int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);

	hex_sha256(der, n, ret);
	OPENSSL_free(der);
}

int ca_chain_pem_append(STACK_OF(X509) *chain, char **buf)
{
	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);
		BIO *bio;
		BUF_MEM *mem;
		char *n;
		size_t had = *buf ? strlen(*buf) : 0;

		bio = BIO_new(BIO_s_mem());
		if (!bio || PEM_write_bio_X509(bio, x) != 1) {
			BIO_free(bio);
			return -ENOMEM;
		}
		BIO_get_mem_ptr(bio, &mem);
		/* The same certificate twice in a bundle is noise to every tool that reads it. */
		if (had && memmem(*buf, had, mem->data, mem->length)) {
			BIO_free(bio);
			continue;
		}
		n = realloc(*buf, had + mem->length + 1);
		if (!n) {
			BIO_free(bio);
			return -ENOMEM;
		}
		memcpy(n + had, mem->data, mem->length);
		n[had + mem->length] = 0;
		*buf = n;
		BIO_free(bio);
	}
	return 0;
}
