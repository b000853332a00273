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
