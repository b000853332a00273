/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* _cleanup_ helpers for the OpenSSL objects the attestation code holds. */
#include <stdint.h>
#include <time.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "macro.h"

#define OSSL_DEFINE_FREEP(type, fn)                 \
	static inline void fn##p(type **p)          \
	{                                           \
		fn(*p);                             \
	}

OSSL_DEFINE_FREEP(EVP_PKEY, EVP_PKEY_free)
OSSL_DEFINE_FREEP(EVP_PKEY_CTX, EVP_PKEY_CTX_free)
OSSL_DEFINE_FREEP(EVP_MD_CTX, EVP_MD_CTX_free)
OSSL_DEFINE_FREEP(EVP_MAC, EVP_MAC_free)
OSSL_DEFINE_FREEP(EVP_MAC_CTX, EVP_MAC_CTX_free)
OSSL_DEFINE_FREEP(EVP_CIPHER_CTX, EVP_CIPHER_CTX_free)
OSSL_DEFINE_FREEP(BIGNUM, BN_free)
OSSL_DEFINE_FREEP(OSSL_PARAM_BLD, OSSL_PARAM_BLD_free)
OSSL_DEFINE_FREEP(OSSL_PARAM, OSSL_PARAM_free)
OSSL_DEFINE_FREEP(X509, X509_free)

/* An ASN1_TIME (a certificate's validity) as Unix seconds; 0 when a is NULL or unparsable. */
static inline int64_t cert_time_unix(const ASN1_TIME *a)
{
	struct tm tm;

	return a && ASN1_TIME_to_tm(a, &tm) == 1 ? (int64_t)timegm(&tm) : 0;
}
