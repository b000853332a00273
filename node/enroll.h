/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pcr.h"
#include "secbuf.h"

struct crypt_device;

/*
 * Seals a new disk key under spec (PCRs without a given value take the TPM's current one; spec
 * is completed in place) and adds its keyslot and token to cd, authorised by existing (what
 * existing_what names: "key file" or "passphrase"). Every failure is logged in one line naming
 * path and saying what was left behind; ret_* are written only on success.
 */
int enroll_volume(struct crypt_device *cd, const char *path, const struct secbuf *existing, const char *existing_what,
		  struct pcr_spec *spec, uint16_t alg, bool srk, int *ret_slot, int *ret_token);

/*
 * enroll --replace: enroll_replace_check, before anything is written, lists the systemd-tpm2
 * tokens there are (*ret_old, a bitmask) and refuses (-EBUSY) when one cannot go with its
 * keyslots; enroll_replace, once the new keyslot and token are committed, removes them, each
 * with its keyslots (*ret_keyslots), keyslots first. A kill at any point leaves the old token
 * or the new one, never a keyslot without its token. One line on failure, naming path.
 */
int enroll_replace_check(struct crypt_device *cd, const char *path, uint32_t *ret_old);
int enroll_replace(struct crypt_device *cd, const char *path, int slot, int token, uint32_t old,
		   uint32_t *ret_keyslots);

/*
 * enroll --recovery-key: a fresh recovery key in systemd-cryptenroll's form (token_recovery_key)
 * as the passphrase of a new keyslot, with a systemd-recovery token bound to it, committed as
 * enroll_volume commits (a cut leaves what luks_repair removes). *ret_key is the key, for the
 * caller to show once.
 */
int enroll_recovery(struct crypt_device *cd, const char *path, const struct secbuf *existing,
		    const char *existing_what, struct secbuf **ret_key, int *ret_slot, int *ret_token);
