/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench/keyref-sign URI N: what a node certificate's CA signature costs with the CA key URI
 * names (a file, the TPM, a token), through the server's own path: keyref_load_private once,
 * then per certificate keyref_sign_init and X509_sign_ctx over a node-like certificate, as
 * pki_issue signs. Each signature is verified with the public half; prints the median, min
 * and max per signature in ms. Not a test: bench/hwkeys.sh runs it for each kind in one run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "keyref.h"
#include "ossl.h"

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL, *pub = NULL, *node = EVP_EC_gen("P-256");
	_cleanup_(X509_freep) X509 *x = X509_new();
	char why[KEYREF_WHY_MAX];
	double *t;
	int n, bad = 0;

	if (argc != 3 || (n = atoi(argv[2])) < 1) {
		fprintf(stderr, "usage: keyref-sign URI N\n");
		return 2;
	}
	if (keyref_load_private(argv[1], &key, why, sizeof(why)) < 0 ||
	    keyref_load_public(argv[1], &pub, why, sizeof(why)) < 0) {
		fprintf(stderr, "keyref-sign: %s\n", why);
		return 1;
	}
	if (!node || !x || !(t = calloc((size_t)n, sizeof(*t))) || X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"node1", -1,
				       -1, 0) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 || X509_set_pubkey(x, node) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), 0) || !X509_gmtime_adj(X509_getm_notAfter(x), 600))
		return 1;
	for (int i = 0; i < n; i++) {
		_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
		double t0 = now_ms();

		/* A new serial each time: every signature is over another certificate, as at issuance. */
		ASN1_INTEGER_set(X509_get_serialNumber(x), i + 1);
		if (!md || keyref_sign_init(md, key) < 0 || X509_sign_ctx(x, md) <= 0) {
			fprintf(stderr, "keyref-sign: signature %d failed\n", i + 1);
			ERR_print_errors_fp(stderr);
			return 1;
		}
		t[i] = now_ms() - t0;
		bad += X509_verify(x, pub) != 1;
	}
	qsort(t, (size_t)n, sizeof(*t), cmp_double);
	printf("%d signatures, %d not verifying: median %.2f ms, min %.2f, max %.2f\n", n, bad, t[n / 2], t[0],
	       t[n - 1]);
	free(t);
	return bad ? 1 : 0;
}
