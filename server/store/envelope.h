/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "secbuf.h"

/*
 * Envelope encryption of what the store keeps secret. Each secret version is sealed with a data
 * key of its own (AES-256-GCM, random 96-bit IV, the record's identity as associated data);
 * the data key is wrapped by the key-encryption key (KEK), which is never in the database. A
 * copy of the database alone is ciphertext and wrapped keys.
 *
 * The KEK is named the way the configuration's "kek" names it (keyref.h): a file of 32 random
 * bytes ("PATH" or "file:PATH", owner-only), or an EC P-256 key in the server's TPM
 * ("handle:") or on a PKCS#11 token ("pkcs11:"), which wraps by ECDH (envelope.c) with the key
 * never in this process.
 */

#define DATA_KEY_SIZE 32
#define KEK_FILE_SIZE 32
/* SHA-256 HMAC of a fixed label under the KEK, first 16 bytes, in hex: names a KEK without revealing it. */
#define KEK_ID_HEX 32
/* IV ‖ ciphertext ‖ tag */
#define ENVELOPE_OVERHEAD (12 + 16)

struct kek;

/*
 * Loads the KEK that name designates. On failure, why holds one line naming the KEK (a PIN in
 * it as "***") and what is wrong with it (missing, readable by group or others, not 32 bytes,
 * the provider's or the engine's reason, a key that cannot derive, a scheme not supported).
 */
int kek_load(const char *name, struct kek **ret, char *why, size_t why_size);
void kek_free(struct kek *k);
static inline void kek_freep(struct kek **k)
{
	kek_free(*k);
}
#define _cleanup_kek_ _cleanup_(kek_freep)

/* The name as configured, a pin-value= in it shown as "***": what messages quote. */
const char *kek_name(const struct kek *k);
const char *kek_id(const struct kek *k);
/* The file the KEK lives in, or NULL when it is not a file (a key in hardware). */
const char *kek_path(const struct kek *k);
/* The file a KEK name designates ("PATH", "file:PATH"), or NULL for a URI of another scheme (keyref_file). */
const char *kek_name_file(const char *name);

/*
 * Loads the KEK again from its name (another process rotated the store to a new KEK and put it
 * in place): k is the new key on success and unchanged on failure (why says what failed).
 */
int kek_reload(struct kek *k, char *why, size_t why_size);

/* A data key wrapped under the KEK, bound to aad; ret malloc'ed (not secret without the KEK). */
int kek_wrap(struct kek *k, const char *aad, const struct secbuf *data_key, uint8_t **ret, size_t *ret_size);
/* -EBADMSG: not wrapped by this KEK for this aad (another KEK, another record, altered). */
int kek_unwrap(struct kek *k, const char *aad, const uint8_t *wrapped, size_t size, struct secbuf **ret);

/*
 * Creates a KEK file (32 bytes from the CSPRNG, mode 0600, fsynced with its directory);
 * -EEXIST when path exists, untouched.
 */
int kek_file_create(const char *path);

/* A fresh data key. */
int data_key_new(struct secbuf **ret);

/* AES-256-GCM under key: IV ‖ ciphertext ‖ tag, malloc'ed. */
int envelope_seal(const struct secbuf *key, const char *aad, const struct secbuf *plain, uint8_t **ret,
		  size_t *ret_size);
/* -EBADMSG: the tag does not verify (another key, another aad, altered or truncated). */
int envelope_open(const struct secbuf *key, const char *aad, const uint8_t *sealed, size_t size,
		  struct secbuf **ret);
