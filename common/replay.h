/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "pcr.h"

/*
 * PCR banks computed in software from logs (firmware event log, then userspace CEL
 * records): what the TPM should hold if the logs are complete and true. A PCR that some
 * event extended without a digest for a bank has no known value in that bank.
 */
struct pcr_replay {
	uint32_t extended[PCR_BANKS]; /* PCRs some event extended in this bank */
	uint32_t unknown[PCR_BANKS];  /* PCRs an event extended without this bank's digest */
	size_t unknown_offset[PCR_BANKS][PCR_COUNT]; /* the first such event, for the message */
	uint8_t values[PCR_BANKS][PCR_COUNT][PCR_DIGEST_MAX];
};

/* Every PCR at its reset value; PCR 0's last byte is the startup locality (0, 3 or 4). */
void pcr_replay_init(struct pcr_replay *r, uint8_t locality);
/* PCR 0 reset value with a locality learnt before anything extended it. */
void pcr_replay_set_locality(struct pcr_replay *r, uint8_t locality);

/* Extends pcr in bank with digest (bank->size bytes). */
int pcr_replay_extend(struct pcr_replay *r, const struct pcr_bank *bank, unsigned pcr,
		      const uint8_t *digest);
/* An event at offset extended pcr without giving bank's digest: its value becomes unknown. */
void pcr_replay_missing(struct pcr_replay *r, const struct pcr_bank *bank, unsigned pcr, size_t offset);

/* PCRs extended in any bank. */
uint32_t pcr_replay_touched(const struct pcr_replay *r);
