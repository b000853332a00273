/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
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
 * Adds a keyslot for passphrase (authorised by existing) with minimal PBKDF2, then writes
 * token_json bound to it. Either both land or neither does. token_json must name the
 * keyslot: it is built by make_token(slot) once the slot number is known. -ENOSPC: all 32
 * token slots are taken.
 */
int luks_enroll(struct crypt_device *cd, const struct secbuf *existing, const struct secbuf *passphrase,
		int (*make_token)(int slot, void *userdata, char **ret_json), void *userdata,
		int *ret_slot, int *ret_token);

/* Iterates systemd-tpm2 tokens: returns the next token id > after, or -ENOENT. */
int luks_next_tpm2_token(struct crypt_device *cd, int after, const char **ret_json);

bool luks_keyslot_in_use(struct crypt_device *cd, int slot);

/* name == NULL: only verify the passphrase opens slot (dry run). */
int luks_activate(struct crypt_device *cd, const char *name, int slot, const struct secbuf *passphrase);
