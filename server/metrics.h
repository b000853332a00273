/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/*
 * What GET /metrics exposes (Prometheus text format 0.0.4): counts and timings only. No label
 * carries anything a request sent (no EK hash, node id, peer address or path as given), so the
 * label sets are fixed and the page stays the same size however many nodes talk to the server.
 */
enum endpoint { EP_START, EP_FINISH, EP_HEALTHZ, EP_METRICS, EP_OTHER, _EP_MAX };

#define METRICS_CODES 10  /* 200 400 403 404 405 413 429 500 503, and any other */
#define METRICS_BUCKETS 12

struct metrics {
	uint64_t requests[_EP_MAX][METRICS_CODES];
	uint64_t latency[_EP_MAX][METRICS_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
	double latency_sum[_EP_MAX];
	uint64_t handshakes[2][3];     /* [start|finish][allow|deny|error] */
	uint64_t rate_limited;
	uint64_t audit_records;
	uint64_t commits, commit_failures;
	bool nodes_known;
	int64_t nodes[_NODE_STATE_MAX];
};

void metrics_request(struct metrics *m, enum endpoint ep, int status, int64_t usec);
/* The exposition text, malloc'ed. */
int metrics_format(const struct metrics *m, char **ret, size_t *ret_size);
