/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

#include "pcr.h"
#include "tpmpub.h"

/*
 * Verifying a TPM2_Quote (pure code: the server and the fuzzers use it; no I/O). The quote is the
 * TPMS_ATTEST the TPM signed plus its TPMT_SIGNATURE, both as received, i.e. untrusted.
 */

#define QUOTE_REASON_MAX 192

struct quote_expect {
	/* The AK the node presented; its name is what the MakeCredential challenge was bound to. */
	const struct tpm_pub *ak;
	/*
	 * The qualified names the AK's parent may have: the quote's signer must be the AK under one
	 * of them. None (n_ak_parents 0): a primary in the endorsement hierarchy (tpm_ak_create).
	 */
	const TPM2B_NAME *ak_parents;
	size_t n_ak_parents;
	/* The qualifying data the verifier asked the TPM to sign (nonce-derived). */
	const uint8_t *extra_data;
	size_t extra_data_size;
	/* The PCR selection the verifier asked for: one bank, a non-empty mask. */
	const struct pcr_bank *bank;
	uint32_t mask;
	/* The PCR values the node reported, indexed by PCR number (only those in mask are read). */
	const uint8_t (*pcr_values)[PCR_DIGEST_MAX];
};

/* A TPM2B_ATTEST (as ESAPI returns it) to the TPMS_ATTEST bytes inside: -EBADMSG unless exact. */
int quote_attest_unwrap(const uint8_t *buf, size_t size, const uint8_t **ret, size_t *ret_size);

/*
 * Checks, in order: the AK is a restricted signing key; attest is a well-formed TPMS_ATTEST with
 * magic TPM_GENERATED_VALUE and type TPM_ST_ATTEST_QUOTE; the signature is well formed; the
 * signer's qualified name is the AK's under one of the parents; the signature verifies with the AK over the attest bytes;
 * extraData is the expected one; the quoted PCR selection is exactly the requested one; the PCR
 * digest is the hash of the reported PCR values. 0 on success, with *ret_attest (optional) the
 * parsed quote (clock, resetCount, restartCount, firmwareVersion for the caller's own checks).
 * On failure: -EBADMSG (malformed), -EKEYREJECTED (key or signature), -EPERM (nonce or PCRs),
 * and a one-line reason in reason[QUOTE_REASON_MAX].
 */
int quote_verify(const struct quote_expect *e, const uint8_t *attest, size_t attest_size,
		 const uint8_t *sig, size_t sig_size, TPMS_ATTEST *ret_attest, char *reason);
