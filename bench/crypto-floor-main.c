/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * build/bench/crypto-floor [FILE]: the crypto floor of bench/crypto-floor.c, each operation and
 * one attestation's sum with no log. Three passes a second apart, each operation's fastest;
 * FILE, when given, receives them for server-load --floor (make bench-server puts every load
 * of a run against this one floor).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "crypto-floor.h"

#define PASSES 3

static double min(double a, double b)
{
	return a < b ? a : b;
}

int main(int argc, char **argv)
{
	struct crypto_floor f, g;

	if (argc > 2) {
		fprintf(stderr, "usage: crypto-floor [FILE]\n");
		return 2;
	}
	crypto_floor_measure(&f);
	for (int i = 1; i < PASSES; i++) {
		sleep(1);
		crypto_floor_measure(&g);
		f = (struct crypto_floor){ min(f.verify, g.verify), min(f.sign, g.sign),	 min(f.ecdh, g.ecdh),
					   min(f.cred_sym, g.cred_sym), min(f.tls, g.tls),	 min(f.extend, g.extend),
					   min(f.gcm_byte, g.gcm_byte) };
	}
	printf("OpenSSL %s, thread CPU per call, each operation's fastest of 15 batches in %d passes\n",
	       OpenSSL_version(OPENSSL_VERSION_STRING), PASSES);
	printf("ECDSA P-256 verify             %8.3f ms\n", 1e3 * f.verify);
	printf("ECDSA P-256 sign               %8.3f ms\n", 1e3 * f.sign);
	printf("MakeCredential, ECDH           %8.3f ms\n", 1e3 * f.ecdh);
	printf("MakeCredential, KDFs/AES/HMAC  %8.3f ms\n", 1e3 * f.cred_sym);
	printf("TLS 1.3 server handshake       %8.3f ms (X25519 and one ECDSA signature)\n", 1e3 * f.tls);
	printf("SHA-256 PCR extend             %8.3f us\n", 1e6 * f.extend);
	printf("AES-256-GCM                    %8.3f ns/byte\n", 1e9 * f.gcm_byte);
	printf("one attestation, no log        %8.3f ms (2 verifications, 2 MakeCredentials, 1 signature)\n",
	       1e3 * crypto_floor_handshake(&f, 0, 0, 0, 0));
	if (argc == 2 && crypto_floor_save(&f, argv[1]) < 0) {
		fprintf(stderr, "crypto-floor: cannot write '%s': %s\n", argv[1], strerror(errno));
		return 1;
	}
	return 0;
}
