/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "attest-msg.h"
#include "cel.h"
#include "eventlog.h"
#include "payload.h"
#include "pcr.h"
#include "policy.h"
#include "store.h"
#include "tpmpub.h"

/*
 * What handshake_finish checks besides the quote, and what it seals, kept apart from the
 * protocol steps: the logs' replay against the quoted PCRs, the events a policy allows, and
 * the secret payload only the node's TPM can open.
 */

/* The logs of one finish, replayed; per PCR the digests (quoted bank) of the events, in order. */
struct evidence {
	struct eventlog *firmware;
	struct cel cel;
	struct pcr_replay replay;
	uint8_t (*events[PCR_COUNT])[PCR_DIGEST_MAX];
	size_t n_events[PCR_COUNT];
};
void evidence_done(struct evidence *e);

/*
 * Replays the firmware event log, then the CEL records, in m's bank, and requires every quoted
 * PCR to equal its replayed value. -EBADMSG (a log does not parse; the reason names the byte
 * offset) or -EPERM (the reason names the PCR), with reason filled in. Only m's bank is
 * computed: in ret->replay every other bank's extended PCRs are unknown.
 */
int evidence_replay(const struct attest_finish *m, struct evidence *ret, char reason[ATTEST_REASON_MAX]);
/*
 * The replay alone, in the banks given (bank indexes, as pcr_replay's), with nothing compared:
 * what a node with m's logs would quote in them (soft-node.c).
 */
int evidence_logs_replay(const struct attest_finish *m, uint32_t banks, struct evidence *ret,
			 char reason[ATTEST_REASON_MAX]);

/*
 * The boot state m quoted (its logs replayed into e) against p: every reference value, then
 * every event of an event-checked PCR. 0: p accepts it. 1: refused; reason names each PCR that
 * differs (quoted and wanted value) and each event p does not allow, in full digests, and
 * *ret_refused is what policy draft needs from it (malloc'ed JSON in the policy's own terms:
 * "pcr_bank", "reference_pcrs" with every quoted value p pins, "allowed_events" with the
 * digests p does not allow, each once, at most POLICY_EVENTS_MAX in all). -EXDEV: p checks
 * another bank than m's, the one e was replayed in (handshake_finish refuses that first).
 */
int evidence_judge(const struct policy *p, const struct attest_finish *m, const struct evidence *e,
		   char reason[ATTEST_REASON_MAX], char **ret_refused);

/* One PCR a refusal's reason names: its quoted value against the policy's, or an event it does not allow. */
struct evidence_named {
	unsigned pcr;
	long long policy;
	long event;                            /* -1: the value, with wants; else the event's index */
	char bank[16];
	char is[2 * PCR_DIGEST_MAX + 1];       /* the quoted value, or the event's digest */
	char wants[2 * PCR_DIGEST_MAX + 1];    /* the policy's value; "" for an event */
};
/*
 * Reads evidence_judge's reason back (the dashboard's PCR drift, from audit records): the next
 * PCR named at or after *pos, which moves past it. 1 found, 0 none left. What is not exactly
 * one of judge's items (any other text, a digest that is not hex) is skipped.
 */
int evidence_reason_next(const char **pos, struct evidence_named *ret);

/*
 * A payload's key: fresh, and wrapped with MakeCredential to ek and ak_name (the ECDH or
 * RSA-OAEP that is most of sealing's CPU). Pure CPU, so a finish makes it on a worker thread
 * beside its verification; key is mlocked and wiped by seal_key_done (NULL key: none made).
 */
struct seal_key {
	struct secbuf *key;
	TPM2B_ID_OBJECT blob;
	TPM2B_ENCRYPTED_SECRET seed;
};
int evidence_seal_key(const struct tpm_pub *ek, const TPM2B_NAME *ak_name, struct seal_key *ret);
void seal_key_done(struct seal_key *k);

/*
 * Seals the secrets named (values from the store) for this TPM: AES-256-GCM with AAD session
 * under key, evidence_seal_key's for this ek and ak_name (made here when key or key->key is
 * NULL), the wrapped key beside the ciphertext. The key and every
 * value are wiped on each path. -ENOENT: a named secret is not in the store; -EBADMSG: its row
 * does not decrypt (altered or moved); -EKEYREJECTED: it is wrapped by a KEK the server does not
 * hold (a rotation whose new KEK is not in place here yet). reason says which secret. extra:
 * items sealed besides them (the disk shares released), owned by the caller.
 */
int evidence_seal(struct store *s, char (*const names)[65], size_t n, const struct payload_item *extra, size_t n_extra,
		  const struct tpm_pub *ek, const TPM2B_NAME *ak_name, struct seal_key *key, const char *session,
		  struct attest_payload *ret, char reason[ATTEST_REASON_MAX]);
