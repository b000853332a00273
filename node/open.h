/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "tpm.h"

/* Opening the node's two devices, each with the one-line reason a boot log needs. */

struct crypt_device;
/* Loads a LUKS2 header or logs a one-line reason naming the device. */
int luks_load(const char *path, struct crypt_device **ret);
/* luks_repair, saying in a line what it removed (or, dry_run, would remove: *ret_tokens). */
int luks_repair_logged(struct crypt_device *cd, const char *path, bool dry_run, uint32_t *ret_tokens);

/* Opens the TPM or logs a one-line reason naming the TCTI. */
int tpm_connect(struct tpm **ret);

/* The one-line reason for a failed TPM operation, for errors tpm_* return. */
const char *tpm_failure_reason(int err);
