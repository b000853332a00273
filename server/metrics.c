/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "metrics.h"
#include "ossl.h"

static const int codes[METRICS_CODES - 1] = { 200, 400, 403, 404, 405, 413, 429, 500, 503 };
static const char *const endpoints[_EP_MAX] = { "/v1/attest/start", "/v1/attest/finish", "/healthz", "/readyz",
						"/metrics", "other" };
/* Seconds: a handshake step is a few ms; the tail shows store stalls. */
static const double buckets[METRICS_BUCKETS] = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
						 0.05,   0.1,   0.25,  0.5,   1,    5 };
static const char *const decisions[3] = { "allow", "deny", "error" };
static const char *const refusals[_REFUSAL_MAX] = {
	[REFUSAL_MALFORMED] = "malformed",
	[REFUSAL_REQUEST] = "request",
	[REFUSAL_IDENTITY] = "identity",
	[REFUSAL_ENROLLMENT_REQUESTED] = "enrollment-requested",
	[REFUSAL_NOT_APPROVED] = "not-approved",
	[REFUSAL_ENROLLMENT_CLOSED] = "enrollment-closed",
	[REFUSAL_REVOKED] = "revoked",
	[REFUSAL_SESSION] = "session",
	[REFUSAL_EVIDENCE] = "evidence",
	[REFUSAL_POLICY_MISSING] = "policy-missing",
	[REFUSAL_POLICY_UNTRUSTED] = "policy-untrusted",
	[REFUSAL_POLICY_EXPIRED] = "policy-expired",
	[REFUSAL_RATE_LIMITED] = "rate-limited",
	[REFUSAL_OVERLOADED] = "overloaded",
	[REFUSAL_STORE] = "store",
	[REFUSAL_INTERNAL] = "internal",
};
const char *refusal_name(enum refusal r)
{
	return r > REFUSAL_NONE && r < _REFUSAL_MAX ? refusals[r] : "other";
}

static const char *const ages[_NODE_AGE_MAX] = { "1h", "1d", "7d", "30d", "older", "never" };

/* The class of a refusal that named none: its status's. */
static enum refusal refusal_of(int status)
{
	switch (status) {
	case 400:
	case 413:
		return REFUSAL_MALFORMED;
	case 403:
		return REFUSAL_IDENTITY;
	case 404:
	case 405:
		return REFUSAL_REQUEST;
	case 429:
		return REFUSAL_RATE_LIMITED;
	case 503:
		return REFUSAL_STORE;
	default:
		return REFUSAL_INTERNAL;
	}
}

void metrics_request(struct metrics *m, enum endpoint ep, int status, int64_t usec, enum refusal why)
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
	if ((ep == EP_START || ep == EP_FINISH) && status != 200)
		m->refusals[why != REFUSAL_NONE && why < _REFUSAL_MAX ? why : refusal_of(status)]++;
}

void metrics_certificates(struct metrics *m, struct pki *pki, SSL_CTX *ssl)
{
	STACK_OF(X509) *chain = pki_chain(pki);
	X509 *tls = SSL_CTX_get0_certificate(ssl);

	m->n_ca = 0;
	for (int i = 0; i < sk_X509_num(chain) && m->n_ca < CA_CHAIN_MAX; i++)
		m->ca_not_after[m->n_ca++] = cert_time_unix(X509_get0_notAfter(sk_X509_value(chain, i)));
	m->tls_not_after = tls ? cert_time_unix(X509_get0_notAfter(tls)) : 0;
}

void metrics_observe(struct metrics *m, struct server *srv, bool store_failing, int64_t now_us)
{
	const struct policy *p;
	char why[ATTEST_REASON_MAX];
	int r = policy_cache_current(&srv->policy, srv->store, srv->config, now_us, &p, why);

	m->ready = r >= 0 && !store_failing;
	if (r < 0 && r != -ENOENT && r != -EKEYREJECTED && r != -EBADMSG && r != -ETIME)
		return; /* the store did not answer: what it said last stands */
	m->policy_loaded = r != -ENOENT;
	m->policy_version = m->policy_loaded ? srv->policy.version : 0;
	/* Expired is still trusted (signed and valid): the expiry gauge says the rest. */
	m->policy_trusted = m->policy_loaded && srv->policy.policy;
	m->policy_expires_us = m->policy_trusted ? srv->policy.policy->expires_us : 0;
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* What describes the server rather than its traffic: build, readiness, policy, certificates, audit. */
static void format_state(const struct metrics *m, FILE *f)
{
	family(f, "keystrap_build_info", "gauge", "The running keystrap-server's version (always 1).");
	fprintf(f, "keystrap_build_info{version=\"%s\"} 1\n", KEYSTRAP_VERSION);
	family(f, "keystrap_ready", "gauge", "1 when a node could be admitted now (what /readyz answers), else 0.");
	fprintf(f, "keystrap_ready %d\n", m->ready);
	family(f, "keystrap_policy_version", "gauge", "Version of the newest stored policy; 0: none loaded.");
	fprintf(f, "keystrap_policy_version %" PRId64 "\n", m->policy_version);
	family(f, "keystrap_policy_trusted", "gauge",
	       "1 when that policy is valid and signed by policy_threshold operator keys, else 0.");
	fprintf(f, "keystrap_policy_trusted %d\n", m->policy_trusted);
	if (m->policy_trusted) {
		family(f, "keystrap_policy_expiry_timestamp_seconds", "gauge",
		       "When the trusted policy expires (Unix seconds); past it every node is refused.");
		fprintf(f, "keystrap_policy_expiry_timestamp_seconds %" PRId64 "\n", m->policy_expires_us / 1000000);
	}
	if (m->n_ca) {
		family(f, "keystrap_ca_certificate_expiry_timestamp_seconds", "gauge",
		       "notAfter of the CA chain node certificates are issued from (Unix seconds); "
		       "depth 0 is the issuing CA.");
		for (size_t i = 0; i < m->n_ca; i++)
			fprintf(f, "keystrap_ca_certificate_expiry_timestamp_seconds{depth=\"%zu\"} %" PRId64 "\n", i,
				m->ca_not_after[i]);
	}
	if (m->tls_not_after) {
		family(f, "keystrap_tls_certificate_expiry_timestamp_seconds", "gauge",
		       "notAfter of the server's TLS certificate (Unix seconds).");
		fprintf(f, "keystrap_tls_certificate_expiry_timestamp_seconds %" PRId64 "\n", m->tls_not_after);
	}
	if (m->audit_checked) {
		family(f, "keystrap_audit_verified", "gauge",
		       "1 when the audit log verified at the last check, 0 when it did not.");
		fprintf(f, "keystrap_audit_verified %d\n", m->audit_verified);
		family(f, "keystrap_audit_verified_timestamp_seconds", "gauge",
		       "When the audit log was last checked (Unix seconds).");
		fprintf(f, "keystrap_audit_verified_timestamp_seconds %" PRId64 "\n", m->audit_checked_us / 1000000);
		family(f, "keystrap_audit_check_duration_seconds", "gauge",
		       "How long that check took (requests wait meanwhile; the next is 1000 times as far, "
		       "at least 5 minutes).");
		fprintf(f, "keystrap_audit_check_duration_seconds %.6f\n", (double)m->audit_check_us / 1e6);
	}
}

int metrics_format(const struct metrics *m, char **ret, size_t *ret_size)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	if (!f)
		return -ENOMEM;
	format_state(m, f);
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
	family(f, "keystrap_refusals_total", "counter", "Attestation requests turned away, by the class of the reason.");
	for (int r = REFUSAL_NONE + 1; r < _REFUSAL_MAX; r++)
		fprintf(f, "keystrap_refusals_total{reason=\"%s\"} %" PRIu64 "\n", refusals[r], m->refusals[r]);
	fprintf(f, "# HELP keystrap_rate_limited_total Requests refused with 429 by the per-peer rate limit.\n"
		   "# TYPE keystrap_rate_limited_total counter\nkeystrap_rate_limited_total %" PRIu64 "\n",
		m->rate_limited);
	fprintf(f, "# HELP keystrap_overload_refused_total Starts answered 503 because the event loop or the workers were "
		   "behind.\n"
		   "# TYPE keystrap_overload_refused_total counter\nkeystrap_overload_refused_total %" PRIu64 "\n"
		   "# HELP keystrap_event_loop_lag_seconds How late the event loop's last timer ran: the queue in time.\n"
		   "# TYPE keystrap_event_loop_lag_seconds gauge\nkeystrap_event_loop_lag_seconds %.6f\n"
		   "# HELP keystrap_workers_queue_wait_seconds How long the oldest job waiting for a worker thread had "
		   "waited.\n"
		   "# TYPE keystrap_workers_queue_wait_seconds gauge\nkeystrap_workers_queue_wait_seconds %.6f\n",
		m->overload_refused, (double)m->loop_lag_us / 1e6, (double)m->workers_wait_us / 1e6);
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
			fprintf(f, "keystrap_nodes{state=\"%s\"} %" PRId64 "\n", node_state_name(s), m->nodes.state[s]);
		family(f, "keystrap_nodes_last_attested", "gauge",
		       "Approved nodes by the age of their last attestation: under 1h, 1d, 7d, 30d, older, never.");
		for (int a = 0; a < _NODE_AGE_MAX; a++)
			fprintf(f, "keystrap_nodes_last_attested{age=\"%s\"} %" PRId64 "\n", ages[a], m->nodes.attested[a]);
		family(f, "keystrap_nodes_renewal_overdue", "gauge",
		       "Approved nodes whose last certificate expired before they attested again.");
		fprintf(f, "keystrap_nodes_renewal_overdue %" PRId64 "\n", m->nodes.overdue);
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
