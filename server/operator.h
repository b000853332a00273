/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "macro.h"

/*
 * Operator keys: the n public keys of the people who together decide what a node must boot.
 * A policy counts as signed by a key when a detached signature over its exact bytes verifies
 * under it, made with standard tools:
 *   openssl dgst -sha256 -sign op.key -out policy.json.sig policy.json        (ECDSA, RSA)
 *   openssl pkeyutl -sign -rawin -inkey op.key -in policy.json -out policy.json.sig (Ed25519)
 */

#define OPERATOR_KEYS_MAX 16
#define SIGNATURE_MAX 1024 /* an RSA-8192 signature; ECDSA and Ed25519 are far smaller */
#define FINGERPRINT_HEX 64

struct operator_key {
	char *path;
	EVP_PKEY *pkey;
	char fingerprint[FINGERPRINT_HEX + 1]; /* SHA-256 of the SubjectPublicKeyInfo DER, hex */
};

struct operator_keys {
	size_t n;
	struct operator_key key[OPERATOR_KEYS_MAX];
};

/* PEM public keys: ECDSA (P-256 or larger), RSA (2048 bits or more), Ed25519. Logs naming the file. */
int operator_keys_load(char *const *paths, size_t n, struct operator_keys **ret);
void operator_keys_free(struct operator_keys *k);

/* Which configured key sig over data verifies under: its index, or -ENOKEY. */
int operator_key_find(const struct operator_keys *k, const void *data, size_t size, const uint8_t *sig,
		      size_t sig_size);

/* A signature that verified, as stored beside the policy. */
struct policy_signature {
	size_t key; /* index into operator_keys */
	uint8_t sig[SIGNATURE_MAX];
	size_t size;
};

/* The stored form: [{"key": FINGERPRINT, "sig": BASE64}, ...]; malloc'ed. */
int policy_signatures_format(const struct operator_keys *k, const struct policy_signature *sigs, size_t n,
			     char **ret);

/*
 * Re-verification of what the store holds: the set of configured keys (bit i: key i) with a
 * valid signature over text among the stored ones. Signatures by keys no longer configured
 * count for nothing. -EBADMSG when signatures is not the stored form.
 */
int policy_signers(const struct operator_keys *k, const char *text, size_t size, const char *signatures,
		   uint32_t *ret_signers);
