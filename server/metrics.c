/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "metrics.h"

static const int codes[METRICS_CODES - 1] = { 200, 400, 403, 404, 405, 413, 429, 500, 503 };
static const char *const endpoints[_EP_MAX] = { "/v1/attest/start", "/v1/attest/finish", "/healthz", "/metrics",
						"other" };
/* Seconds: a handshake step is a few ms; the tail shows store stalls. */
static const double buckets[METRICS_BUCKETS] = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
						 0.05,   0.1,   0.25,  0.5,   1,    5 };
static const char *const decisions[3] = { "allow", "deny", "error" };

void metrics_request(struct metrics *m, enum endpoint ep, int status, int64_t usec)
{
	double s = (double)usec / 1e6;
	size_t c = 0, b = 0;

	while (c < ELEMENTSOF(codes) && codes[c] != status)
		c++;
	m->requests[ep][c]++;
	while (b < METRICS_BUCKETS && s > buckets[b])
		b++;
	m->latency[ep][b]++;
	m->latency_sum[ep] += s;
	if (ep == EP_START || ep == EP_FINISH)
		m->handshakes[ep][status == 200 ? 0 : status == 500 ? 2 : 1]++;
}

int metrics_format(const struct metrics *m, char **ret, size_t *ret_size)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	if (!f)
		return -ENOMEM;
	fputs("# HELP keystrap_http_requests_total HTTP requests answered, by endpoint and status.\n"
	      "# TYPE keystrap_http_requests_total counter\n", f);
	for (int e = 0; e < _EP_MAX; e++)
		for (int c = 0; c < METRICS_CODES; c++)
			if (m->requests[e][c] || c == 0)
				fprintf(f, "keystrap_http_requests_total{endpoint=\"%s\",code=\"%s%.0d\"} %" PRIu64 "\n",
					endpoints[e], c < METRICS_CODES - 1 ? "" : "other",
					c < METRICS_CODES - 1 ? codes[c] : 0, m->requests[e][c]);
	fputs("# HELP keystrap_handshakes_total Attestation decisions, by step.\n"
	      "# TYPE keystrap_handshakes_total counter\n", f);
	for (int s = 0; s < 2; s++)
		for (int d = 0; d < 3; d++)
			fprintf(f, "keystrap_handshakes_total{step=\"%s\",decision=\"%s\"} %" PRIu64 "\n",
				s == EP_START ? "start" : "finish", decisions[d], m->handshakes[s][d]);
	fprintf(f, "# HELP keystrap_rate_limited_total Requests refused with 429 by the per-peer rate limit.\n"
		   "# TYPE keystrap_rate_limited_total counter\nkeystrap_rate_limited_total %" PRIu64 "\n",
		m->rate_limited);
	fprintf(f, "# HELP keystrap_audit_records_total Audit records appended (committed or not yet).\n"
		   "# TYPE keystrap_audit_records_total counter\nkeystrap_audit_records_total %" PRIu64 "\n",
		m->audit_records);
	fprintf(f, "# HELP keystrap_store_commits_total Store transactions committed; each carries a batch of requests.\n"
		   "# TYPE keystrap_store_commits_total counter\nkeystrap_store_commits_total %" PRIu64 "\n"
		   "# HELP keystrap_store_commit_failures_total Store transactions that failed (their requests got 503).\n"
		   "# TYPE keystrap_store_commit_failures_total counter\nkeystrap_store_commit_failures_total %" PRIu64 "\n",
		m->commits, m->commit_failures);
	if (m->nodes_known) {
		fputs("# HELP keystrap_nodes Nodes in the registry, by state (counted every second).\n"
		      "# TYPE keystrap_nodes gauge\n", f);
		for (int s = 0; s < _NODE_STATE_MAX; s++)
			fprintf(f, "keystrap_nodes{state=\"%s\"} %" PRId64 "\n", node_state_name(s), m->nodes[s]);
	}
	fputs("# HELP keystrap_request_duration_seconds Time from a request's arrival to its reply, by endpoint.\n"
	      "# TYPE keystrap_request_duration_seconds histogram\n", f);
	for (int e = 0; e < _EP_MAX; e++) {
		uint64_t n = 0;

		for (int b = 0; b <= METRICS_BUCKETS; b++) {
			n += m->latency[e][b];
			if (b < METRICS_BUCKETS)
				fprintf(f, "keystrap_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %" PRIu64 "\n",
					endpoints[e], buckets[b], n);
			else
				fprintf(f, "keystrap_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
					endpoints[e], n);
		}
		fprintf(f, "keystrap_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n", endpoints[e], m->latency_sum[e]);
		fprintf(f, "keystrap_request_duration_seconds_count{endpoint=\"%s\"} %" PRIu64 "\n", endpoints[e], n);
	}
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	*ret = text;
	*ret_size = size;
	return 0;
}
