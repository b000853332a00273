/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "pcr.h"

/*
 * PCR banks computed in software from logs (firmware event log, then userspace CEL
 * records): what the TPM should hold if the logs are complete and true. A PCR that some
 * event extended without a digest for a bank has no known value in that bank; nor has one
 * extended in a bank the replay does not compute (a verifier computes the bank a quote covers:
 * the others' digests cannot be checked against anything, so their hashing would be wasted).
 */
struct pcr_replay {
	uint32_t banks;               /* bank indexes (pcr_bank_by_index) computed; PCR_BANKS_ALL */
	uint32_t extended[PCR_BANKS]; /* PCRs some event extended in this bank */
	uint32_t unknown[PCR_BANKS];  /* PCRs extended without this bank's digest, or not computed */
	size_t unknown_offset[PCR_BANKS][PCR_COUNT]; /* the first such event, for the message */
	uint8_t values[PCR_BANKS][PCR_COUNT][PCR_DIGEST_MAX];
};

/*
 * Every PCR at its reset value; PCR 0's last byte is the startup locality (0, 3 or 4). banks:
 * the bank indexes to compute, PCR_BANKS_ALL for every one.
 */
void pcr_replay_init(struct pcr_replay *r, uint32_t banks, uint8_t locality);
/* PCR 0 reset value with a locality learnt before anything extended it. */
void pcr_replay_set_locality(struct pcr_replay *r, uint8_t locality);

/* Extends pcr in bank (one r computes) with digest (bank->size bytes), hashing through h. */
int pcr_replay_extend(struct pcr_replay *r, struct pcr_hashes *h, const struct pcr_bank *bank, unsigned pcr,
		      const uint8_t *digest);
/* An event at offset extended pcr without giving bank's digest: its value becomes unknown. */
void pcr_replay_missing(struct pcr_replay *r, const struct pcr_bank *bank, unsigned pcr, size_t offset);

/*
 * One event of a log (at offset, for the messages) extending pcr with n digests, digests[i] in
 * banks[i]: each bank r computes is extended with its digest or, without one, becomes unknown,
 * as does every bank r does not compute. A bank this OpenSSL cannot hash fails (-EOPNOTSUPP)
 * only if r computes it; *ret_bad then names it.
 */
int pcr_replay_event(struct pcr_replay *r, struct pcr_hashes *h, unsigned pcr, size_t offset, unsigned n,
		     const struct pcr_bank *const banks[], const uint8_t *const digests[],
		     const struct pcr_bank **ret_bad);

/* PCRs extended in any bank. */
uint32_t pcr_replay_touched(const struct pcr_replay *r);
