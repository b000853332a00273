/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secbuf.h"

/*
 * The secret payload of an attestation result (issue 5): the node group's secrets, serialised
 * as a sequence of [u8 name length][name][u16 value length, big-endian][value] and sealed with
 * AES-256-GCM under a fresh key that only the node's TPM can recover (the server wraps it with
 * MakeCredential; see attest-msg.h). Pure code: every secret byte stays in a secbuf.
 */

#define PAYLOAD_KEY_SIZE 32

/* One secret as the node holds it after opening the payload. */
#define NODE_SECRET_NAME_MAX 64

/*
 * The one rule for a secret's name, wherever one is typed, sent, stored or put in a keyring
 * (node groups follow it too, with their own max): 1..max characters of [A-Za-z0-9._-], not
 * starting with '.' (a hidden file to whoever writes secrets to files) or '-' (read as an
 * option by keystrap get and keystrap-server secret). s need not be NUL-terminated: n bytes.
 */
bool keystrap_name_valid(const char *s, size_t n, size_t max);
/* keystrap_name_valid for a NUL-terminated secret name, max NODE_SECRET_NAME_MAX. */
bool secret_name_valid(const char *s);

struct node_secret {
	char name[NODE_SECRET_NAME_MAX + 1];
	struct secbuf *value;
};


struct payload_item {
	const char *name;          /* secret_name_valid */
	const struct secbuf *value; /* at most 65535 bytes */
};

/* Serialises n items; -EINVAL names a bad item's index via *ret_bad. */
int payload_encode(const struct payload_item *items, size_t n, struct secbuf **ret, size_t *ret_bad);
/* Strict inverse of payload_encode: distinct valid names, nothing left over; -EBADMSG otherwise. */
int payload_decode(const uint8_t *p, size_t size, struct node_secret **ret, size_t *ret_n);

/* ciphertext (plain->size + tag) malloc'ed; iv drawn at random. */
int payload_encrypt(const uint8_t key[PAYLOAD_KEY_SIZE], const char *aad, const struct secbuf *plain,
		    uint8_t iv[12], uint8_t **ret, size_t *ret_size);
/* -EBADMSG: the tag does not verify (tampered, or another key). */
int payload_decrypt(const uint8_t key[PAYLOAD_KEY_SIZE], const char *aad, const uint8_t iv[12],
		    const uint8_t *ciphertext, size_t size, struct secbuf **ret);

/* Frees n secrets (wiping their values) and the array. */
void node_secrets_free(struct node_secret *s, size_t n);
