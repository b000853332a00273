/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * The one kind of PKCS#10 request keystrap nodes send (ECDSA P-256 key, ecdsa-with-SHA256
 * signature), read straight from its DER. OpenSSL 3's X509_REQ parser runs the provider
 * decoder machinery for the key on every request, which cost the server more than the
 * signature check; this reads the few fields the server uses and nothing else.
 */
#define CSR_P256_POINT_SIZE 65 /* 0x04 || x || y */

struct csr {
	const uint8_t *info; /* CertificationRequestInfo, DER: what the signature covers */
	size_t info_size;
	const uint8_t *spki; /* SubjectPublicKeyInfo, DER, in its one canonical P-256 form */
	size_t spki_size;
	const uint8_t *point; /* inside spki: CSR_P256_POINT_SIZE bytes, uncompressed */
	const uint8_t *sig;   /* ECDSA-Sig-Value, DER (its strictness is the verifier's) */
	size_t sig_size;
};

/*
 * Points ret into der. -EBADMSG: not one DER PKCS#10 request (version 1, nothing left over);
 * -EKEYREJECTED: the key is not an uncompressed ECC P-256 point; -EOPNOTSUPP: the signature
 * algorithm is not ecdsa-with-SHA256. Nothing is verified here: not the point, not the signature.
 */
int csr_parse_p256(const uint8_t *der, size_t size, struct csr *ret);
