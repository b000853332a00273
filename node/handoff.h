/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "attest.h"
#include "config.h"
#include "keyring.h"
#include "node-credentials.h"

/*
 * The keyring half of keystrap handoff, shared by the command and its test driver
 * (tests/lib/keyring-put.c): resolves [Handoff] Owner=/Group=, writes the status facts and
 * stores the credentials in the "keystrap" keyring of keyring_parent().
 */

/*
 * Owner=/Group= as configured: a numeric id, or a name resolved through NSS (an initrd may have
 * no such entry: -ESRCH). NULL or "": nobody. With Owner= and no Group=, no group may read.
 */
int handoff_owner(const char *owner, const char *group, struct keyring_owner *ret);

/* Stores c for o; pcrs ("sha256:N=HEX,...") may be NULL. Returns what keyring_store returns. */
int handoff_store(const struct node_credentials *c, const struct keyring_owner *o, const char *pcrs, int64_t now,
		  int32_t *ret_id);

struct handoff_status;

/*
 * The server answered that this node is revoked (ATTEST_FAILED_REVOKED): the keyring st was read
 * from is replaced, in one link, by one that holds only st marked revoked (revoked_at = now, a
 * new generation), for the same owner, until the credentials would have expired. keystrap get
 * then finds no certificate, key or secret, and says why. -ESTALE: they have expired already.
 */
int handoff_revoke(const struct handoff_status *st, int64_t now);

/* The one-line reason for a handoff_store error. */
const char *handoff_reason(int r);

/* The steps of keystrap handoff before the keyring (handoff-run.c), shared with keystrap verify. */
/* The PCRs recorded at handoff and compared by verify: sha256 0-15, what policy covers. */
#define PCR_SNAPSHOT_MASK 0xffffu
#define HANDOFF_PCRS_MAX 1200
/* "sha256:0=HEX,1=HEX,...,15=HEX" of the TPM's current values. */
int pcr_snapshot(char *buf, size_t size);
/* Loads (and measures) keystrap.conf; -EINVAL (logged) without [Attest] Server= and CA=. */
int handoff_config(const char *path, struct keystrap_config **ret);
/* The keyring's status facts (root: through its user keyring). -ENOKEY without a handoff. */
int handoff_status_read(struct handoff_status *ret);
/* ... and replaced, as keystrap verify keeps the checkpoint its attestation was proved against. */
int handoff_status_write(const struct handoff_status *s);

/*
 * Attests to cfg's [Attest] Server= with its CA=, Timeout=, Retries= and LogKey=, as
 * attest_run; checkpoint: the one the node holds (witness.h), NULL: none.
 */
int handoff_attest(const struct keystrap_config *cfg, enum tpm_ek_kind kind, const char *checkpoint,
		   struct node_credentials **ret, enum attest_failure *failure);
