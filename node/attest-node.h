/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <openssl/evp.h>

#include "attest-msg.h"
#include "tpm.h"
#include "tpmpub.h"

/*
 * The node's TPM side of the handshake, without the network: keystrap attest drives it over
 * HTTPS; tests drive it step by step. On failure *ret_what names the step that failed.
 */

/* Reads the EK certificate, derives the EK and creates an AK (ak_unique NULL: a fresh one). */
int attest_node_start(struct tpm *t, enum tpm_ek_kind kind, const uint8_t *ak_unique, ESYS_TR *ret_ek,
		      ESYS_TR *ret_ak, struct attest_start *ret, const char **ret_what);

/*
 * The EK's identity as the server's registry keys it (tpm_ek_identity), in hex: what an
 * operator approves. Derives the EK (as attest does) and flushes it.
 */
int attest_node_ek_hash(struct tpm *t, enum tpm_ek_kind kind, char ret[2 * TPM_EK_ID_SIZE + 1]);

/*
 * Activates the challenge's credential with ek and ak, makes the node key (P-256, private half
 * in OpenSSL's secure heap once CRYPTO_secure_malloc_init ran) and its CSR, quotes the requested
 * PCRs with quote_ak on quote_tpm (normally t and ak) and fills in the finish message.
 */
int attest_node_answer(struct tpm *t, ESYS_TR ek, ESYS_TR ak, const struct attest_challenge *ch,
		       struct tpm *quote_tpm, ESYS_TR quote_ak, EVP_PKEY **ret_key, struct attest_finish *ret,
		       const char **ret_what);

/*
 * Opens the result's payload: ActivateCredential with the same ek and ak recovers the payload
 * key (-EKEYREJECTED: not this TPM's), which decrypts (-EBADMSG: tampered) the secrets.
 */
struct node_secret;
int attest_node_open(struct tpm *t, ESYS_TR ek, ESYS_TR ak, const char *session, const struct attest_payload *p,
		     struct node_secret **ret, size_t *ret_n, const char **ret_what);
