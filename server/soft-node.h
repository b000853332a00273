/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "attest-msg.h"
#include "payload.h"
#include "replay.h"
#include "tpmpub.h"

/*
 * A node whose TPM is software, as far as keystrap-server can tell: an ECC P-256 EK (the TCG
 * EK template's public area, a certificate from an EK CA the operator trusts), a restricted
 * ECDSA AK with a TPM's attributes, TPM2_ActivateCredential done as the TPM does it (ECDH +
 * KDFe seed, KDFa keys, outer HMAC checked, AES-CFB) and TPM2_Quote's TPMS_ATTEST marshalled
 * and signed by the AK, over the PCR values its logs replay to: a firmware event log and a CEL
 * measurement log of a real machine's (soft_node_set_logs), or none, and then zeros.
 * The messages are the protocol's own (common/attest-msg.c). What keystrap-server probe
 * attests with (server/admin/probe.c), and each simulated node of bench/server-load.c.
 * OpenSSL and tss2-mu only: no TPM, no ESAPI.
 */

struct soft_node {
	EVP_PKEY *ek, *ak, *key; /* key: the node key its CSR is for */
	struct tpm_pub ek_pub, ak_pub;
	uint8_t ek_pub_raw[sizeof(TPM2B_PUBLIC)]; /* marshalled, as the finish repeats it */
	size_t ek_pub_raw_size;
	char *start_json; /* the start message, made once */
	char csr[ATTEST_CSR_MAX + 1];
	uint8_t *spki;
	size_t spki_size;
	char ek_hash[65]; /* the registry's key: SHA-256 of the marshalled TPMT_PUBLIC, hex */
	uint8_t *event_log; /* sent with every finish; NULL: none */
	size_t event_log_size;
	char *cel_log;
	size_t cel_log_size;
	struct pcr_replay replay; /* what the logs replay to in every bank: the same logs every time */
};

/* A certificate for the P-256 key ek signed by ca/ca_key, valid from a minute ago for days days, DER. */
int soft_node_ek_cert(EVP_PKEY *ek, X509 *ca, EVP_PKEY *ca_key, int days, uint8_t *der, size_t max, size_t *ret_size);

/*
 * A node with the EK ek (a P-256 private key; referenced, not taken) and its certificate (DER),
 * a fresh AK and node key. -EINVAL when ek is not P-256.
 */
int soft_node_new(EVP_PKEY *ek, const uint8_t *ek_cert, size_t ek_cert_size, struct soft_node **ret);
void soft_node_free(struct soft_node *n);
static inline void soft_node_freep(struct soft_node **n)
{
	soft_node_free(*n);
}

/*
 * The finish message answering the challenge json (as the server sent it): the credential
 * activated (-EKEYREJECTED when its HMAC does not verify, as TPM_RC_INTEGRITY), the quote made.
 * -EBADMSG when json is not a challenge for this node. witness: the finish asks for the log's
 * checkpoint and proofs, from log_size (the checkpoint it holds; 0: none) on.
 */
int soft_node_answer(const struct soft_node *n, const char *json, size_t size, bool witness, uint64_t log_size,
		     char **ret);

/*
 * The secrets a result's payload holds for this node (session: the attestation's), opened as
 * the node's TPM would: ActivateCredential for the payload key, AES-256-GCM, the strict decode.
 */
int soft_node_open(const struct soft_node *n, const char *session, const struct attest_payload *p,
		   struct node_secret **ret, size_t *ret_n);

/*
 * The logs every finish carries from now on (copied; either may be empty): a TCG firmware event
 * log and keystrap's CEL-JSON measurement log. -EBADMSG when one does not parse as the server
 * parses it.
 */
int soft_node_set_logs(struct soft_node *n, const uint8_t *event_log, size_t event_log_size, const char *cel_log,
		       size_t cel_log_size);
