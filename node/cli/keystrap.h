/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "attest.h"
#include "config.h"
#include "macro.h"
#include "tpm.h"

#define EXIT_USAGE 2

/* The firmware event log the kernel exposes, and the most keystrap reads of any log. */
#define FIRMWARE_LOG "/sys/kernel/security/tpm0/binary_bios_measurements"
#define FIRMWARE_LOG_MAX (16u << 20)
/* keystrap handoff: attestation failed and [Attest] FailurePolicy=emergency. */
#define EXIT_EMERGENCY 3
/* keystrap attest and handoff: no answer from the server within the time budget, or only busy ones. */
#define EXIT_UNREACHABLE 4
/* keystrap attest and handoff: the server answered and refused (HTTP 4xx or 500: policy, registry). */
#define EXIT_REFUSED 5

int cmd_enroll(int argc, char **argv);
int cmd_unlock(int argc, char **argv);
int cmd_lock(int argc, char **argv);
int cmd_eventlog(int argc, char **argv);
int cmd_measure(int argc, char **argv);
int cmd_attest(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_handoff(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_wipe(int argc, char **argv);
int cmd_predict(int argc, char **argv);

/* The exit status of a failed attestation (node/attest.h): 1, EXIT_UNREACHABLE or EXIT_REFUSED. */
static inline int attest_exit_status(enum attest_failure f)
{
	return f == ATTEST_FAILED_UNREACHABLE                                ? EXIT_UNREACHABLE :
	       f == ATTEST_FAILED_REFUSED || f == ATTEST_FAILED_REVOKED ? EXIT_REFUSED :
									      1;
}

/* A decimal option value in [min, max], nothing around it; -EINVAL otherwise. */
int parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret);

struct eventlog;
/* Reads and parses a firmware event log; logs one line naming path and returns -errno if it cannot. */
int read_event_log(const char *path, uint8_t **ret_data, struct eventlog **ret_log);

/* Prints usage and returns EXIT_USAGE, quoting what was wrong when bad != NULL. */
int usage_error(const char *usage, const char *fmt, ...) _printf_(2, 3);
