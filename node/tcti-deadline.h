/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <tss2/tss2_tcti.h>

/* RSA key generation on a discrete TPM takes tens of seconds: CreatePrimary, Create and
 * CreateLoaded get this many times the deadline of every other command. */
#define TCTI_DEADLINE_KEYGEN_FACTOR 10

/*
 * The TCTI conf names (loaded through tctildr), behind one that bounds every exchange with
 * the TPM, whatever that TCTI does with a timeout (the swtpm and mssim TCTIs of tpm2-tss 3.2
 * ignore it, have no poll handles, and the swtpm one talks to the TPM while it loads): the
 * load and each command with its response happen on a thread of their own, given at most
 * timeout_ms. A command that misses its deadline leaves its thread behind, blocked in the
 * TCTI, which then belongs to that thread; every later exchange fails at once.
 * -ETIMEDOUT: the TCTI did not load in time; -ENODEV: tctildr failed with *ret_rc.
 */
int tcti_deadline_open(const char *conf, unsigned timeout_ms, TSS2_TCTI_CONTEXT **ret, TSS2_RC *ret_rc);
/* Finalizes the TCTI too, unless a thread that missed its deadline still holds it. */
void tcti_deadline_free(TSS2_TCTI_CONTEXT *ctx);

/* The command that missed its deadline and the deadline it had; false while none has. */
bool tcti_deadline_expired(TSS2_TCTI_CONTEXT *ctx, uint32_t *ret_cc, unsigned *ret_ms);
