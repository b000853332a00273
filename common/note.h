/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/types.h>

#include "merkle.h"

/*
 * C2SP signed notes (https://c2sp.org/signed-note), and the tlog-checkpoint text they carry
 * (https://c2sp.org/tlog-checkpoint): what the audit log's checkpoints are, so that the Go
 * note package and every checkpoint witness read them as they are. Two signature types:
 *
 * - 0x01 Ed25519: a verifier key is "NAME+KEYID+BASE64(0x01 || public key)", a signer key
 *   "PRIVATE+KEY+NAME+KEYID+BASE64(0x01 || seed)"; KEYID is the first 4 bytes of
 *   SHA-256(NAME || "\n" || 0x01 || public key), in hex.
 * - 0x02 ECDSA with SHA-256 (transparency-dev/formats' note verifier, Rekor's log key): a
 *   verifier key is "NAME+KEYID+BASE64(0x02 || DER SubjectPublicKeyInfo)" on P-256, P-384 or
 *   P-521, KEYID the first 4 bytes of SHA-256(the DER) alone; a signature line carries KEYID ||
 *   the DER ECDSA signature of SHA-256(text). Its signer is a key in a TPM or on a token (the
 *   server's log key in hardware, where Ed25519 is not to be had): no signer text.
 */
#define NOTE_NAME_MAX 128
#define NOTE_MAX 8192
#define NOTE_ED25519 0x01
#define NOTE_ECDSA 0x02
/* A P-521 SubjectPublicKeyInfo is 158 bytes, the largest key held. */
#define NOTE_PUB_MAX 160
/* Enough for any key's text: a name, "+", 8 hex digits, "+", base64 of 1 + NOTE_PUB_MAX bytes. */
#define NOTE_KEY_MAX (NOTE_NAME_MAX + 240)

struct note_verifier {
	char name[NOTE_NAME_MAX + 1];
	uint32_t id;
	uint8_t type;    /* NOTE_ED25519 or NOTE_ECDSA */
	size_t key_size; /* 32 (the raw Ed25519 key) or the DER SubjectPublicKeyInfo's */
	uint8_t key[NOTE_PUB_MAX];
};

struct note_signer;

/* why: one line naming what is wrong. */
int note_verifier_parse(const char *vkey, struct note_verifier *ret, char *why, size_t why_size);
/* The signer key's text is secret: read it into a secbuf and pass its bytes. */
int note_signer_parse(const char *skey, size_t size, struct note_signer **ret, char *why, size_t why_size);
/*
 * An ECDSA signer (0x02) named name whose key is key (an EC key on P-256, P-384 or P-521: a
 * handle into a TPM or token, or any EVP_PKEY), of which it takes a reference. sign_init sets
 * up a SHA-256 digest-sign in the key's own library context (NULL: the default one). The key
 * signs once here and the signature is checked, so a key that cannot sign is refused now.
 */
int note_signer_from_pkey(const char *name, EVP_PKEY *key, int (*sign_init)(EVP_MD_CTX *ctx, EVP_PKEY *key),
			  struct note_signer **ret, char *why, size_t why_size);
/* Whether two verifiers are of the same key (type and key bytes; names aside). */
bool note_verifier_same_key(const struct note_verifier *a, const struct note_verifier *b);
void note_signer_free(struct note_signer *s);
static inline void note_signer_freep(struct note_signer **s)
{
	note_signer_free(*s);
}
const struct note_verifier *note_signer_verifier(const struct note_signer *s);
/* The verifier key's text (for pinning): ret holds at least NOTE_KEY_MAX bytes. */
void note_verifier_format(const struct note_verifier *v, char *ret);
struct secbuf;
/* A new key: the signer text (secret) and the verifier text. */
int note_key_generate(const char *name, struct secbuf **ret_skey, char ret_vkey[NOTE_KEY_MAX], char *why,
		      size_t why_size);

/* text (ending in "\n", no blank line) signed: text, a blank line, one signature line. */
int note_sign(const struct note_signer *s, const char *text, char **ret);
/* ... by each of n signers (at most 16), one line each, in order: a log key's rotation. */
int note_sign_all(const struct note_signer *const *signers, size_t n, const char *text, char **ret);
/*
 * 0 when note carries a valid signature by v: *ret_text_size is then the size of its text.
 * -EBADMSG: not a note; -ENOKEY: no signature by this key; -EKEYREJECTED: one that does not
 * verify. why says which.
 */
int note_open(const char *note, size_t size, const struct note_verifier *v, size_t *ret_text_size, char *why,
	      size_t why_size);

struct checkpoint {
	char origin[NOTE_NAME_MAX + 1];
	uint64_t size;
	merkle_hash root;
	int64_t time; /* Unix seconds, from the "time" extension line; 0 when absent */
};

/* origin, size, base64 root, then "time N". malloc'ed. */
int checkpoint_format(const struct checkpoint *c, char **ret);
/* A checkpoint's text (the note's, unsigned part). -EBADMSG with why. */
int checkpoint_parse(const char *text, size_t size, struct checkpoint *ret, char *why, size_t why_size);
/* note_open then checkpoint_parse, and the origin must be the key's name. */
int checkpoint_open(const char *note, size_t size, const struct note_verifier *v, struct checkpoint *ret,
		    char *why, size_t why_size);
