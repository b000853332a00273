/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/*
 * The crypto floor of bench/server-load.c: what the cryptographic operations one attestation
 * needs cost with OpenSSL on this machine, for the key types of the load (every key ECC P-256:
 * EK, AK, node key, CA, TLS; TLS 1.3 with X25519 and AES-256-GCM, what curl and the server
 * agree on). Thread CPU time per call in the fastest of several batches, each operation through the EVP
 * calls a server would make with its keys already loaded.
 */
struct crypto_floor {
	double verify;   /* ECDSA P-256 verification of a SHA-256 digest */
	double sign;     /* ECDSA P-256 signature */
	double ecdh;     /* MakeCredential's asymmetric part: an ephemeral P-256 key and its ECDH with the EK */
	double cred_sym; /* MakeCredential's symmetric part: KDFe, two KDFa blocks, AES-128-CFB, the outer HMAC */
	double tls;      /* a full TLS 1.3 handshake's server side: X25519 key and derive, one ECDSA signature */
	double extend;   /* one PCR extend in sha256: SHA-256 of the PCR and the event's digest */
	double gcm_byte; /* AES-256-GCM, per byte of TLS record */
};

/* Measures every figure of f, seconds. */
void crypto_floor_measure(struct crypto_floor *f);

/*
 * f as one line in path (every figure, seconds, exactly), and back: make bench-server measures
 * once and every load of the run is put against the same floor. Load: 0, or -EINVAL when path
 * does not hold one.
 */
int crypto_floor_save(const struct crypto_floor *f, const char *path);
int crypto_floor_load(struct crypto_floor *f, const char *path);

/*
 * The floor of one attestation, seconds: two verifications (the quote, the CSR) and
 * ek_verifies of an EK certificate (the server verifies one once per EK and keeps the result,
 * pki.c), two MakeCredentials (the challenge, the payload), one certificate signature, extends
 * PCR extends of the logs' replay, bytes of TLS records (both ways) and tls_per_handshake full
 * TLS handshakes (connections opened per attestation).
 */
double crypto_floor_handshake(const struct crypto_floor *f, double ek_verifies, double extends, double bytes,
			      double tls_per_handshake);
