/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpm.h"

/* Opening the node's two devices, each with the one-line reason a boot log needs. */

struct crypt_device;
/* Loads a LUKS2 header or logs a one-line reason naming the device. */
int luks_load(const char *path, struct crypt_device **ret);
/* luks_repair, saying in a line what it removed (or, dry_run, would remove: *ret_tokens). */
int luks_repair_logged(struct crypt_device *cd, const char *path, bool dry_run, uint32_t *ret_tokens);
/*
 * What every command that writes a header starts with: resolves device (a path or UUID=…),
 * loads its header and removes what an interrupted run left (*ret_tokens: the tokens that
 * went), each failure logged in one line. The caller frees *ret_path and *ret_cd.
 */
int luks_load_repaired(const char *device, char **ret_path, struct crypt_device **ret_cd, uint32_t *ret_tokens);

/* "keyslot 1" or "keyslots 1,3" (what: "keyslot", "token", ...); "" for none. */
void format_slots(const char *what, uint32_t mask, char *buf, size_t size);

/* Opens the TPM or logs a one-line reason naming the TCTI. */
int tpm_connect(struct tpm **ret);

/* The one-line reason for a failed TPM operation, for errors tpm_* return. */
const char *tpm_failure_reason(int err);
