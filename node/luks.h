/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <libcryptsetup.h>

#include "macro.h"
#include "secbuf.h"

static inline void crypt_freep(struct crypt_device **cd)
{
	crypt_free(*cd);
}
#define _cleanup_crypt_ _cleanup_(crypt_freep)

/* Resolves "UUID=…" or a path; *ret is a path the caller frees. */
int luks_resolve(const char *spec, char **ret);

/* Loads a LUKS2 header; -ENOENT if path is missing, -EPROTONOSUPPORT for LUKS1, -EINVAL for
 * anything else. */
int luks_open(const char *path, struct crypt_device **ret);

/*
 * Adds a keyslot for passphrase (authorised by existing) with minimal PBKDF2, and the token
 * make_token(slot) builds, bound to it. Crash-safe in three header commits, each fsynced:
 *   1. a pending record, token T {"type":"keystrap-pending","keystrap-keyslot":"N"};
 *   2. keyslot N, with keystrap's PBKDF2 parameters;
 *   3. token T replaced by the real token, bound to N.
 * Until 3 lands, every keyslot this adds is named by a pending record, which luks_repair
 * resolves. A failure after the first write is undone here; *leftover says what of it could
 * not be. Refusals write nothing: -EACCES, existing opens
 * no keyslot; -EMLINK, all keyslots in use; -ENOBUFS, all 32 token slots in use. -E2BIG: the
 * header has no room left (JSON or keyslots area). A failed write returns its cause (-ENOSPC, -EIO, ...).
 * cd no longer matches the disk after a failure.
 */
enum luks_leftover {
	LUKS_LEFT_NOTHING,  /* nothing was written, or all of it was undone */
	LUKS_LEFT_PENDING,  /* a pending record (with its keyslot), for the next luks_repair */
	LUKS_LEFT_ENROLLED, /* the last commit landed after all: keyslot and token work */
};
int luks_enroll(struct crypt_device *cd, const struct secbuf *existing, const struct secbuf *passphrase,
		int (*make_token)(int slot, void *userdata, char **ret_json), void *userdata,
		int *ret_slot, int *ret_token, enum luks_leftover *leftover);

/*
 * Removes what an interrupted enroll left: each pending record, with the keyslot it names when
 * that keyslot still looks as enroll leaves it (keystrap's PBKDF2, bound to no token, not the
 * last keyslot), and each keystrap systemd-tpm2 token bound to no keyslot. Then finishes a
 * reseal cut short after its new token landed: a systemd-tpm2 token whose blob digest a keystrap
 * token bound to a keyslot in use names as keystrap-replaces goes, with its keyslots
 * (luks_remove_token, so never a shared, a person's or the last keyslot). Nothing else is
 * touched, so no keyslot a human or another tool can use is removed. dry_run: only report.
 */
struct luks_repaired {
	uint32_t keyslots; /* bitmasks of what was (or would be) removed: keyslots, */
	uint32_t pending;  /* pending records, */
	uint32_t unbound;  /* keystrap tokens bound to no keyslot, */
	uint32_t replaced; /* tokens a reseal replaced (their keyslots are not in keyslots) */
};
int luks_repair(struct crypt_device *cd, bool dry_run, struct luks_repaired *ret);

/* Iterates the tokens of type type: returns the next token id > after, or -ENOENT. */
int luks_next_token(struct crypt_device *cd, int after, const char *type, const char **ret_json);
/* ... of type systemd-tpm2. */
int luks_next_tpm2_token(struct crypt_device *cd, int after, const char **ret_json);

/* The volume's LUKS2 UUID as the protocol and the attested token carry it: lowercase 8-4-4-4-12; -EINVAL if none. */
int luks_uuid(struct crypt_device *cd, char ret[static 37]);

bool luks_keyslot_in_use(struct crypt_device *cd, int slot);

/* name == NULL: only verify the passphrase opens slot (dry run). */
int luks_activate(struct crypt_device *cd, const char *name, int slot, const struct secbuf *passphrase);

/*
 * Who can open the volume: every keyslot in use, and those bound to a TPM token
 * (token_type_is_tpm). The rest are presumed a person's: a passphrase, a key file, a
 * recovery key.
 */
struct luks_keyslots {
	uint32_t active;
	uint32_t tpm;
};
void luks_keyslots_get(struct crypt_device *cd, struct luks_keyslots *ret);

/*
 * What removing a token takes with it (every keyslot bound to it), and whether it may: never
 * a keyslot another token is bound to too, never the last keyslot bound to no TPM token, never
 * the last keyslot. -ENOENT: no such token. Writes nothing.
 */
enum luks_refusal {
	LUKS_REMOVE_OK,
	LUKS_REMOVE_SHARED,     /* keyslot is bound to token other too */
	LUKS_REMOVE_LAST_HUMAN, /* keyslot is the last one a person can use */
	LUKS_REMOVE_LAST,       /* keyslot is the last one */
};
struct luks_removal {
	uint32_t keyslots;
	char type[48]; /* the token's type, cut to fit */
	bool tpm;      /* a TPM token (token_type_is_tpm) */
	enum luks_refusal refusal;
	int keyslot;   /* the keyslot the refusal is about */
	int other;
};
int luks_removal_plan(struct crypt_device *cd, int token, struct luks_removal *ret);

/*
 * Removes token and its keyslots in one header commit per keyslot and one for the token, each
 * fsynced, keyslots first: a cut short run leaves the token bound to fewer keyslots, never a
 * keyslot without its token. -EPERM for what luks_removal_plan refuses, nothing written; a
 * failed write returns its cause and cd no longer matches the disk.
 */
int luks_remove_token(struct crypt_device *cd, int token);
