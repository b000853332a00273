/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "macro.h"
#include "tpm.h"

#define EXIT_USAGE 2
/* keystrap handoff: attestation failed and [Attest] FailurePolicy=emergency. */
#define EXIT_EMERGENCY 3

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

/* keystrap attest (node/cli/attest.c): the handshake with keystrap-server, for attest and handoff. */
struct node_credentials;
struct attest_options {
	const char *server;      /* https:// URL of keystrap-server */
	const char *ca;          /* PEM file: the one CA trusted to sign the server's certificate */
	enum tpm_ek_kind ek_kind;
	const char *event_log;   /* firmware event log; NULL: the kernel's (none there: none sent) */
	const char *measure_log; /* keystrap's CEL log; NULL: $KEYSTRAP_MEASURE_LOG or the default */
	unsigned timeout;        /* seconds per request; 0: ATTEST_TIMEOUT_DEFAULT */
	unsigned attempts;       /* tries per request, with backoff and jitter; 0: ATTEST_RETRIES_DEFAULT + 1 */
};

/*
 * Attests this boot to o->server. On success the reply has been verified (the certificate is
 * for the key made here, under the pinned CA's chain; the secrets opened with this TPM), the
 * "attested" phase is measured into PCR 12, and *ret holds everything, secrets in secbufs.
 * Fails closed, logging one line: nothing half-filled is returned.
 */
int attest_run(const struct attest_options *o, struct node_credentials **ret);

/* Attests to cfg's [Attest] Server= with its CA=, Timeout= and Retries=, as attest_run (handoff.c). */
int handoff_attest(const struct keystrap_config *cfg, enum tpm_ek_kind kind, struct node_credentials **ret);

/* Prints usage and returns EXIT_USAGE, quoting what was wrong when bad != NULL. */
int usage_error(const char *usage, const char *fmt, ...) _printf_(2, 3);
