/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pcr.h"
#include "secbuf.h"
#include "tpm.h"

struct crypt_device;

/*
 * The PCR values the strict tokens were tried against, per bank: what a boot like this one
 * shows at the strict attempt, before attest measures "attested" into PCR 12. reseal seals to
 * these, not to what the PCRs hold by the time the attested token opened the volume.
 */
struct reseal_pcrs {
	uint32_t read[PCR_BANKS];
	uint8_t values[PCR_BANKS][PCR_COUNT][PCR_DIGEST_MAX];
};

/* Adds the current values of mask in bank to p (those already there are kept). */
int reseal_pcrs_read(struct reseal_pcrs *p, struct tpm *t, const struct pcr_bank *bank, uint32_t mask);

/*
 * After the volume opened with opened_with (the attested token's passphrase) because the
 * systemd-tpm2 tokens in stale no longer unsealed: for each of them, a fresh key sealed through
 * t (NULL: a connection of its own) to the same bank and PCRs, PCR 15 at the value the token
 * binds (zero when it records none), every other PCR at its value in seen (NULL, or a PCR not
 * in it: the TPM's value now), with the same parent (SRK or primary algorithm). Its keyslot and
 * token are committed as enroll's are, and only then does the stale token go with its keyslot
 * (enroll_replace). A kill at any point leaves the stale token bound to its keyslot or the new
 * one bound to its own (or both), never a keyslot without its token; what luks_repair removes
 * at most: a pending record, a keystrap token bound to no keyslot.
 *
 * Tokens that cannot be resealed are skipped with one line: a signed-policy or PIN token, one
 * that binds no PCR, one whose keyslot another token shares. Prints one line per token
 * resealed. A failure is one line (what was left, as enroll says it); the stale token stays and
 * the tokens after it wait for the next boot, since cd no longer matches the disk.
 * dry_run: writes nothing, one line per token that would be resealed.
 */
int reseal_strict(struct tpm *t, struct crypt_device *cd, const char *path, const struct secbuf *opened_with,
		  uint32_t stale, const struct reseal_pcrs *seen, bool dry_run);

/*
 * unlock_options.attested for keystrap unlock: reseal_strict of u->stale to u->seen, authorised
 * by u->passphrase, before the lock (u->dry_run: says what it would reseal).
 */
struct unlock_attested;
int reseal_attested(const struct unlock_attested *u, void *userdata);
