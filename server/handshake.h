/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "attest-msg.h"
#include "pki.h"
#include "policy-cache.h"
#include "refusal.h"
#include "server-config.h"
#include "store.h"

/*
 * The group of probe nodes (keystrap-server probe, node approve --probe): a synthetic identity
 * that attests like any node but is never released a secret, whatever the policy lists for it.
 */
#define NODE_GROUP_PROBE "probe"

/* What the attestation endpoints work with: no HTTP here, only bodies in and replies out. */
struct server {
	const struct server_config *config;
	struct store *store;
	struct pki *pki;
	/*
	 * The cap on pending enrollment requests (0: none), and how many the registry holds: serve.c
	 * counts them from the store; node_admit adds each one it records, so a flood of new EKs
	 * cannot grow the registry past the cap between two counts.
	 */
	int64_t enroll_max, enroll_pending;
	struct policy_cache policy; /* zero-initialised; policy_cache_done when the server stops */
};

/*
 * One endpoint's answer and what the audit record says about it. status 200 comes with body
 * (JSON, malloc'ed); any other status with reason, which is also the error body's text.
 */
struct reply {
	int status;
	char *body;
	const char *action;
	char ek_hash[EK_HASH_HEX + 1];
	char node_id[NODE_ID_MAX + 1];
	char reason[ATTEST_REASON_MAX];
	/* A boot state the policy refused: what policy draft needs of it (evidence_judge's JSON,
	 * malloc'ed), which the caller stores with the audit record, and the policy's version. */
	char *refused;
	int64_t refused_policy;
	int64_t retry_after; /* seconds a 503 tells the node to wait; 0: the server's default */
	enum refusal refusal; /* a refusal's class (metrics); REFUSAL_NONE: the status's */
	/* A 200 to a witnessing finish: the caller adds the log's proofs once the record is in it. */
	bool witness;
	uint64_t witness_size; /* the size of the checkpoint the node holds; 0: none */
};

/*
 * Both return 0 with *r filled in; both run inside the caller's store transaction: their registry and nonce writes and the
 * caller's audit record of the reply commit together, before the reply is sent.
 */
int handshake_start(struct server *s, const char *peer, const char *body, size_t size, struct reply *r);
int handshake_finish(struct server *s, const char *peer, const char *body, size_t size, struct reply *r);

/*
 * handshake_start in its three steps, the middle one for a worker thread (workers.h). prepare,
 * on the store's thread inside its transaction, parses, checks the EK, its certificate and the
 * AK, admits the node (an unknown EK's enrollment request is written here) and reads the policy
 * in force: *ret is NULL when the reply is decided (r holds it), else the work to pass on.
 * verify draws the session, nonce and activation secret and makes the credential: pure CPU, it
 * reads and writes only w. complete, on the store's thread inside a transaction, stores the
 * nonce and formats the challenge, or takes verify's refusal; r is then as handshake_start
 * leaves it. The caller frees w with start_work_free, which wipes it.
 */
struct start_work;
int handshake_start_prepare(struct server *s, const char *peer, const char *body, size_t size, struct reply *r,
			    struct start_work **ret);
void handshake_start_verify(struct start_work *w);
int handshake_start_complete(struct server *s, struct start_work *w, struct reply *r);
void start_work_free(struct start_work *w);

/*
 * handshake_finish in its three steps, for a caller that runs the middle one on a worker thread
 * (workers.h). prepare, on the store's thread inside its transaction, parses and reads the
 * session's nonce: *ret is NULL when the body did not parse (r holds the refusal), else the work
 * to pass on. verify is pure CPU (proof, CSR, quote, log replay): it reads only w and the
 * server's pki, which must outlive it, and writes only w. complete, back on the store's thread
 * inside a transaction (not necessarily prepare's), checks the registry and policy as they are
 * then, judges the evidence, spends the nonce with a conditional write (so of two finishes of
 * one session verified at once one is refused) and does the writes; r is then as
 * handshake_finish leaves it. The caller frees w.
 */
struct finish_work;
int handshake_finish_prepare(struct server *s, const char *body, size_t size, struct reply *r,
			     struct finish_work **ret);
void handshake_finish_verify(struct finish_work *w);
int handshake_finish_complete(struct server *s, const char *peer, struct finish_work *w, struct reply *r);
void finish_work_free(struct finish_work *w);
