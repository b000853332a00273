/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "ca-chain.h"
#include "handshake.h"
#include "pki.h"
#include "refusal.h"
#include "store.h"

/*
 * What GET /metrics exposes (Prometheus text format 0.0.4): counts and timings only. No label
 * carries anything a request sent (no EK hash, node id, peer address or path as given), so the
 * label sets are fixed and the page stays the same size however many nodes talk to the server:
 * refusals by class (refusal.h), nodes by state and by age, CA certificates by depth in the chain.
 */
enum endpoint { EP_START, EP_FINISH, EP_HEALTHZ, EP_READYZ, EP_METRICS, EP_OTHER, _EP_MAX };
/* Answered to GET (and HEAD) without an audit record. */
#define ENDPOINT_IS_PROBE(ep) ((ep) == EP_HEALTHZ || (ep) == EP_READYZ || (ep) == EP_METRICS)

#define METRICS_CODES 10  /* 200 400 403 404 405 413 429 500 503, and any other */
#define METRICS_BUCKETS 12

struct metrics {
	uint64_t requests[_EP_MAX][METRICS_CODES];
	uint64_t latency[_EP_MAX][METRICS_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
	double latency_sum[_EP_MAX];
	uint64_t handshakes[2][3];     /* [start|finish][allow|deny|error] */
	uint64_t refusals[_REFUSAL_MAX]; /* attestation requests answered other than 200, by class */
	uint64_t rate_limited;
	uint64_t overload_refused;     /* starts answered 503 because the event loop or the workers were behind */
	int64_t loop_lag_us;           /* how far behind the event loop was at its last look */
	int64_t workers_wait_us;       /* how long the oldest job waiting for a worker had waited then */
	uint64_t audit_records;
	uint64_t commits, commit_failures;
	/* The registry, counted every second (on_tick). */
	bool nodes_known;
	struct node_census nodes;
	/* The certificates in force, read at start and at each reload (metrics_certificates):
	 * notAfter, Unix seconds; ca[0] the issuing CA, then its issuers. */
	size_t n_ca;
	int64_t ca_not_after[CA_CHAIN_MAX], tls_not_after;
	/* audit_verify_status's last answer (audit-status.h), once there is one, and when. */
	bool audit_checked, audit_verified;
	int64_t audit_checked_us, audit_check_us; /* when, and how long it took */
	/* The policy and readiness at the scrape (metrics_observe). */
	bool policy_loaded, policy_trusted, ready;
	int64_t policy_version, policy_expires_us;
};

/* The refusal class's label ("policy-expired", ...). */
const char *refusal_name(enum refusal r);
/* A request answered: why is the refusal's class (REFUSAL_NONE: the status's) when it is one. */
void metrics_request(struct metrics *m, enum endpoint ep, int status, int64_t usec, enum refusal why);
/* notAfter of the CA chain pki issues from and of the TLS certificate ssl serves. */
void metrics_certificates(struct metrics *m, struct pki *pki, SSL_CTX *ssl);
/*
 * The policy gauges as a handshake would find the policy now, and keystrap_ready: a trusted
 * policy in force and a store not failing (store_failing, health.h). Reads the policy row.
 */
void metrics_observe(struct metrics *m, struct server *srv, bool store_failing, int64_t now_us);
/* The exposition text, malloc'ed. */
int metrics_format(const struct metrics *m, char **ret, size_t *ret_size);
