/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcr.h"
#include "secbuf.h"

#define TOKEN_TYPE_TPM2 "systemd-tpm2"
/* What keystrap enroll writes before the keyslot it is about to add: see luks_enroll. */
#define TOKEN_TYPE_PENDING "keystrap-pending"
/* systemd-cryptenroll --recovery-key's token: it only marks its keyslot as a recovery key. */
#define TOKEN_TYPE_RECOVERY "systemd-recovery"
/*
 * keystrap enroll --attested's token: its keyslot's passphrase needs the share sealed in this
 * TPM and the share keystrap-server releases to an attestation it accepts
 * (token_attested_passphrase). systemd does not know the type and leaves it alone.
 */
#define TOKEN_TYPE_ATTESTED "keystrap-attested"
#define TOKEN_SHARE_SIZE 32
#define TOKEN_SERVER_MAX 255
#define TOKEN_ATTESTED_INFO "keystrap attested keyslot "
#define TOKEN_JSON_MAX 16384
#define TOKEN_BLOB_MAX 4096
#define TOKEN_SRK_MAX 1024
#define TOKEN_PUBKEY_MAX 4096

/*
 * A LUKS2 "systemd-tpm2" token in the schema systemd 252 reads and writes. Everything in
 * it is public (the blob is wrapped by the TPM). keystrap adds "keystrap-pcr-values", the
 * expected digest of each bound PCR, so a policy failure can name the PCR that differs;
 * systemd ignores keys it does not know.
 */
struct tpm2_token {
	int keyslot;
	uint32_t pcr_mask;
	const struct pcr_bank *bank;
	uint16_t primary_alg; /* TPM2_ALG_ECC or TPM2_ALG_RSA */
	uint8_t blob[TOKEN_BLOB_MAX];
	size_t blob_size;
	uint8_t policy_hash[32];
	bool pin;
	/* tpm2_pubkey (PEM) and tpm2_pubkey_pcrs: PolicyAuthorize by that key over those PCRs */
	uint8_t pubkey[TOKEN_PUBKEY_MAX];
	size_t pubkey_size;
	uint32_t pubkey_pcr_mask;
	uint32_t values_mask; /* PCRs listed in keystrap-pcr-values */
	uint8_t values[PCR_COUNT][PCR_DIGEST_MAX];
	uint8_t srk[TOKEN_SRK_MAX]; /* serialized ESYS_TR of the parent, systemd >= 254 */
	size_t srk_size;
	/* keystrap-replaces: the token_blob_digest of the stale token a reseal wrote this one for
	 * (written, never parsed: luks_repair reads it with token_replaces) */
	bool replaces_set;
	uint8_t replaces[32];
};

/*
 * A keystrap-attested token: the sealed share_tpm with its PCR policy, in the fields a
 * systemd-tpm2 token keeps them in (tpm2-blob, tpm2-pcrs, tpm2-pcr-bank, tpm2-primary-alg,
 * tpm2-policy-hash, keystrap-pcr-values for every bound PCR, tpm2_srk when sealed under the
 * SRK; no tpm2-pin), the server that holds share_srv ("keystrap-server") and the volume's
 * LUKS2 UUID ("volume"). Everything in it is public.
 */
struct attested_token {
	struct tpm2_token tpm;
	char server[TOKEN_SERVER_MAX + 1];
	char volume[37];
};

/*
 * Strict RFC 8259 (no trailing commas, comments or single quotes), one object of at most max
 * bytes, nothing after it; NULL otherwise. The caller puts the result.
 */
struct json_object;
struct json_object *json_parse_object(const char *json, size_t len, size_t max);

/* Parses untrusted header JSON; on error *ret_reason says what was wrong (static string). */
int token_parse(const char *json, size_t len, struct tpm2_token *ret, const char **ret_reason);

/* Serializes; the caller frees *ret. */
int token_format(const struct tpm2_token *t, char **ret);

/*
 * The keystrap-attested token, parsed strictly: keystrap's own type, so a field it does not
 * know, a missing one or one of another type is refused (*ret_reason: static string).
 */
int token_attested_parse(const char *json, size_t len, struct attested_token *ret, const char **ret_reason);
int token_attested_format(const struct attested_token *a, char **ret);

/*
 * The attested keyslot's passphrase: token_passphrase's encoding (base64) of
 * HKDF-SHA256(ikm = share_tpm || share_srv, no salt, info = "keystrap attested keyslot " + volume,
 * 32 bytes). Both shares are TOKEN_SHARE_SIZE bytes; -EINVAL otherwise, or for a volume that is
 * not a canonical LUKS2 UUID.
 */
int token_attested_passphrase(const struct secbuf *share_tpm, const struct secbuf *share_srv, const char *volume,
			      struct secbuf **ret);

/* {"type":"keystrap-pending","keyslots":[],"keystrap-keyslot":"N"}; the caller frees *ret. */
int token_pending_format(int keyslot, char **ret);

/* {"type":"systemd-recovery","keyslots":["N"]}, as systemd-cryptenroll writes it; the caller frees *ret. */
int token_recovery_format(int keyslot, char **ret);

/*
 * Whether a token of this type releases its keyslot's key through the TPM: systemd-tpm2, or
 * one of keystrap's own types. A keyslot bound to no such token is presumed a person's (a
 * passphrase, a key file, a recovery key).
 */
bool token_type_is_tpm(const char *type);

enum token_kind {
	TOKEN_OTHER,            /* not keystrap's, or not readable as such: never touched */
	TOKEN_PENDING,          /* an enroll's record of the keyslot it adds; *ret_keyslot or -1 */
	TOKEN_KEYSTRAP,         /* a systemd-tpm2 token keystrap wrote, bound to *ret_keyslot */
	TOKEN_KEYSTRAP_UNBOUND, /* ... bound to no keyslot: its keyslot is gone */
};
/* Sorts untrusted header JSON for luks_repair; *ret_keyslot is written for PENDING and KEYSTRAP. */
enum token_kind token_classify(const char *json, size_t len, int *ret_keyslot);

/*
 * What names a systemd-tpm2 token whatever its keyslots: SHA-256 of its decoded tpm2-blob (a
 * sealed object, unique to it). -EINVAL for anything else. token_replaces reads a token's
 * keystrap-replaces, the digest of the token it replaced (-ENOENT: none, -EINVAL: malformed).
 */
int token_blob_digest(const char *json, size_t len, uint8_t ret[32]);
int token_replaces(const char *json, size_t len, uint8_t ret[32]);

/*
 * The LUKS passphrase of a systemd-tpm2 token's keyslot: base64 of the unsealed key, as
 * systemd-cryptsetup derives it. enroll and unlock both go through here.
 */
int token_passphrase(const struct secbuf *key, struct secbuf **ret);

/*
 * A recovery key in systemd-cryptenroll's form, which is also its keyslot's passphrase: the
 * RECOVERY_KEY_BYTES random bytes, high nibble first, in the modhex alphabet
 * (cbdefghijklnrtuv), a dash after every 8 characters but the last. *ret is NUL-terminated,
 * its size the RECOVERY_KEY_LENGTH characters.
 */
#define RECOVERY_KEY_BYTES 32
#define RECOVERY_KEY_LENGTH (RECOVERY_KEY_BYTES * 2 + RECOVERY_KEY_BYTES / 4 - 1)
int token_recovery_key(const struct secbuf *random, struct secbuf **ret);
