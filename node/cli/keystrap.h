/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
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

/* PCR 15: disk keys are sealed to its boot value, and the lock moves it. */
#define LOCK_PCR 15
/* PCR 12: everything else keystrap measures (its configuration, the other phases). */
#define MEASURE_PCR 12

struct crypt_device;
/* Loads a LUKS2 header or logs a one-line reason naming the device. */
int luks_load(const char *path, struct crypt_device **ret);
/* luks_repair, saying in a line what it removed (or, dry_run, would remove: *ret_tokens). */
int luks_repair_logged(struct crypt_device *cd, const char *path, bool dry_run, uint32_t *ret_tokens);

/* Opens the TPM or logs a one-line reason naming the TCTI. */
int tpm_connect(struct tpm **ret);

/* The one-line reason for a failed TPM operation, for errors tpm_* return. */
const char *tpm_failure_reason(int err);

/* Extends PCR 15 so nothing sealed against its boot value can be unsealed again. */
int lock_volumes(struct tpm *t);

/*
 * Measures "keystrap:PHASE" (enter-initrd, volumes-unlocked, attested, leave-initrd) into
 * its PCR and appends it to the measurement log. t may be NULL: a connection is made.
 */
int measure_phase(struct tpm *t, const char *phase);
/* The measurement log: path (NULL: $KEYSTRAP_MEASURE_LOG or the default) for what follows. */
void measure_log_use(const char *path);
const char *measure_log_path(void);

/*
 * The one way to read keystrap.conf: reads the file once, parses it strictly, measures those
 * bytes into PCR 12 (once per boot) and only then hands the result out. t may be NULL.
 */
int config_load(struct tpm *t, const char *path, struct keystrap_config **ret);

/* Strictly parses path and applies the no-secrets rule, without measuring; for installers. */
int config_check(const char *path);

/* Prints usage and returns EXIT_USAGE, quoting what was wrong when bad != NULL. */
int usage_error(const char *usage, const char *fmt, ...) _printf_(2, 3);

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

/* keystrap handoff (node/cli/handoff.c), shared with keystrap verify. */
/* The PCRs recorded at handoff and compared by verify: sha256 0-15, what policy covers. */
#define PCR_SNAPSHOT_MASK 0xffffu
#define HANDOFF_PCRS_MAX 1200
/* "sha256:0=HEX,1=HEX,...,15=HEX" of the TPM's current values. */
int pcr_snapshot(char *buf, size_t size);
/* Loads (and measures) keystrap.conf; -EINVAL (logged) without [Attest] Server= and CA=. */
int handoff_config(const char *path, struct keystrap_config **ret);
/* The keyring's status facts (root: through its user keyring). -ENOKEY without a handoff. */
struct handoff_status;
int handoff_status_read(struct handoff_status *ret);
/* Attests to cfg's [Attest] Server= with its CA=, Timeout= and Retries=, as attest_run. */
int handoff_attest(const struct keystrap_config *cfg, enum tpm_ek_kind kind, struct node_credentials **ret);
