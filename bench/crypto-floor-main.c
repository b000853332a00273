/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * build/bench/crypto-floor: the crypto floor of bench/crypto-floor.c on its own, each operation
 * and one attestation's sum with no log; what make bench-server's load generator measures
 * before every load, without a server.
 */
#include <stdio.h>
#include <openssl/crypto.h>

#include "crypto-floor.h"

int main(void)
{
	struct crypto_floor f;

	crypto_floor_measure(&f);
	printf("OpenSSL %s, thread CPU per call in the fastest of 15 batches, the operations in turn\n", OpenSSL_version(OPENSSL_VERSION_STRING));
	printf("ECDSA P-256 verify          %8.3f ms\n", 1e3 * f.verify);
	printf("ECDSA P-256 sign            %8.3f ms\n", 1e3 * f.sign);
	printf("MakeCredential, ECDH        %8.3f ms\n", 1e3 * f.ecdh);
	printf("MakeCredential, KDFs/AES/HMAC %6.3f ms\n", 1e3 * f.cred_sym);
	printf("TLS 1.3 server handshake    %8.3f ms (X25519 and one ECDSA signature)\n", 1e3 * f.tls);
	printf("SHA-256 PCR extend          %8.3f us\n", 1e6 * f.extend);
	printf("AES-256-GCM                 %8.3f ns/byte\n", 1e9 * f.gcm_byte);
	printf("one attestation, no log     %8.3f ms (2 verifications, 2 MakeCredentials, 1 signature)\n",
	       1e3 * crypto_floor_handshake(&f, 0, 0, 0, 0));
	return 0;
}
