/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "node-credentials.h"
#include "secbuf.h"
#include "tpm.h"

/*
 * The attestation flow, for keystrap attest, handoff, renewal and verify: the TPM side
 * (node/attest-node.c) carried to keystrap-server by common/https.c.
 *
 *   start:  EK certificate, EK public, a fresh AK (this boot only)  → session, nonce,
 *           MakeCredential challenge bound to the AK's name, the PCRs to quote
 *   finish: proof of ActivateCredential, TPM2_Quote with extraData = H(nonce || proof ||
 *           CSR key), the PCR values, a CSR for a P-256 key made here → the certificate
 *
 * One time budget bounds the whole of it: each request gets at most `timeout` seconds, and all
 * of them, with the pauses between, at most `timeout` × `attempts`.
 */

/* Why an attestation failed, as keystrap's exit status tells it (keystrap-attest(8), EXIT STATUS). */
enum attest_failure {
	ATTEST_FAILED_LOCAL,       /* this node: its TPM, logs or clock, the CA, an answer that does not verify */
	ATTEST_FAILED_UNREACHABLE, /* no answer within the time budget, or only busy ones (408, 429, 502-504) */
	ATTEST_FAILED_REFUSED,     /* the server answered and refused: any other HTTP status but 200 */
	ATTEST_FAILED_REVOKED,     /* refused, 403 ATTEST_REVOKED_REASON: the server has revoked this node */
};

struct attest_options {
	const char *server;      /* https:// URL of keystrap-server */
	const char *ca;          /* PEM file: the one CA trusted to sign the server's certificate */
	enum tpm_ek_kind ek_kind;
	const char *event_log;   /* firmware event log; NULL: the kernel's (none there: none sent) */
	const char *measure_log; /* keystrap's CEL log; NULL: $KEYSTRAP_MEASURE_LOG or the default */
	unsigned timeout;        /* seconds per request; 0: ATTEST_TIMEOUT_DEFAULT */
	unsigned attempts;       /* tries in all (start again included); 0: ATTEST_RETRIES_DEFAULT + 1 */
	const char *log_key;     /* the server's audit log key: the node witnesses the log (witness.h); NULL: not */
	const char *checkpoint;  /* the checkpoint note the node holds from its last attestation; NULL: none */
	struct tpm *tpm;         /* the TPM connection to use (unlock holds one already); NULL: attest_run's own */
	/* disk_share_put (enroll --attested): share_srv for volume, stored once the attestation passed */
	const char *share_volume;
	const struct secbuf *share;
	/* disk_shares_get (unlock): volumes whose shares the payload brings back, as disk.UUID secrets */
	const char *const *shares_get;
	size_t n_shares_get;
};

/* [Attest] Server=, CA=, Timeout=, Retries= and LogKey= of keystrap.conf as options, with kind; the rest zero. */
struct keystrap_config;
void attest_options_from_config(const struct keystrap_config *cfg, enum tpm_ek_kind kind, struct attest_options *ret);

/*
 * Attests this boot to o->server. On success the reply has been verified (the certificate is
 * for the key made here, under the pinned CA's chain; the secrets opened with this TPM), the
 * "attested" phase is measured into PCR 12, and *ret holds everything, secrets in secbufs.
 * Fails closed, logging one line: nothing half-filled is returned, and *failure (when not
 * NULL) says which kind of failure.
 *
 * Retried, within the budget and o->attempts: a start the server did not answer or answered
 * busy, after its Retry-After when it sent one; a finish answered busy starts again from a new
 * challenge (its nonce may be gone). A finish the server may have received is not repeated.
 */
int attest_run(const struct attest_options *o, struct node_credentials **ret, enum attest_failure *failure);
