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
