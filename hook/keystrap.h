/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "tpm.h"

#define EXIT_USAGE 2

int cmd_enroll(int argc, char **argv);
int cmd_unlock(int argc, char **argv);
int cmd_lock(int argc, char **argv);
int cmd_eventlog(int argc, char **argv);

struct crypt_device;
/* Loads a LUKS2 header or logs a one-line reason naming the device. */
int luks_load(const char *path, struct crypt_device **ret);

/* Opens the TPM or logs a one-line reason naming the TCTI. */
int tpm_connect(struct tpm **ret);

/* The one-line reason for a failed TPM operation, for errors tpm_* return. */
const char *tpm_failure_reason(int err);

/* Extends PCR 15 so nothing sealed against its boot value can be unsealed again. */
int lock_volumes(struct tpm *t);

/* Prints usage and returns EXIT_USAGE, quoting what was wrong when bad != NULL. */
int usage_error(const char *usage, const char *fmt, ...) _printf_(2, 3);
