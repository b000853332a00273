/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server serve: HTTPS (TLS 1.3 only, OpenSSL 3) through libevent's evhttp with
 * bufferevent_openssl. One event loop on one thread owns the connections and the store: a
 * request is decided and recorded in the open batch (one store transaction), and its reply
 * leaves once that has committed durably, so never before its audit record is on disk. The
 * pure CPU of an attestation runs on worker threads (workers.h), between its reads and its
 * writes, which both happen here: a start's credential, a finish's verification.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <systemd/sd-daemon.h>

#include "audit-status.h"
#include "checkpoint.h"
#include "connlimit.h"
#include "deadline.h"
#include "fileio.h"
#include "handshake.h"
#include "health.h"
#include "keyref.h"
#include "log-key.h"
#include "log-proof.h"
#include "log.h"
#include "dashboard.h"
#include "metrics.h"
#include "note.h"
#include "operator.h"
#include "ratelimit.h"
#include "serve.h"
#include "server-config.h"
#include "tls-tickets.h"
#include "workers.h"

/* logfmt: key=value, values with spaces or quotes quoted, control characters escaped. */
static void put_value(FILE *f, const char *v)
{
	bool quote = !*v || strpbrk(v, " \"=\\") != NULL;

	if (quote)
		fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	if (quote)
		fputc('"', f);
}

/* One line per event on stderr (the journal when run as a service): time, level, then pairs;
 * held, when not 0, says how many lines of this kind slog_limited held back before it. The line
 * is put together in memory and written with one write(2): stderr is unbuffered, and a
 * character at a time it was an eighth of the server's CPU (two lines per attestation). */
static void vslog(const char *level, const char *event, uint64_t held, va_list ap)
{
	_cleanup_free_ char *line = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&line, &len), *f = mem ? mem : stderr;
	char ts[40];
	struct timespec now;
	struct tm tm;
	const char *k;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	flockfile(stderr);
	fprintf(f, "time=%s.%06ldZ level=%s event=%s", ts, now.tv_nsec / 1000, level, event);
	while ((k = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);

		if (!v || !*v)
			continue;
		fprintf(f, " %s=", k);
		put_value(f, v);
	}
	if (held)
		fprintf(f, " held_back=%llu", (unsigned long long)held);
	fputc('\n', f);
	if (mem && fclose(mem) == 0)
		fwrite(line, 1, len, stderr);
	funlockfile(stderr);
}

static void slog(const char *level, const char *event, ...)
{
	va_list ap;

	va_start(ap, event);
	vslog(level, event, 0, ap);
	va_end(ap);
}

/* For failures that can repeat as fast as a peer can make them: one line a second per kind
 * (lim), the next one counting those held back. */
static void slog_limited(struct log_limit *lim, const char *level, const char *event, ...)
{
	uint64_t held;
	va_list ap;

	if (!log_limit_pass(lim, now_usec(), &held))
		return;
	va_start(ap, event);
	vslog(level, event, held, ap);
	va_end(ap);
}

/* Nothing is answered before the audit record of the answer is durable: audited requests wait
 * in the open batch (one store transaction) until it commits. */
struct pending {
	struct evhttp_request *req;
	enum endpoint ep;
	int64_t start_us, retry_after;
	char peer[80];
	struct reply r;
	size_t ticket; /* its audit record in the batch's queue (store_audit_add) */
	struct attest_log *log; /* a witnessing 200: its record's leaf, proved at the commit */
};

#define BATCH_MAX 512
#define BATCH_MAX_US 10000 /* a batch older than this commits even while requests keep coming */
/* Committed batches waiting for their sync; beyond that the loop syncs one itself. */
#define SYNC_QUEUE 64
/* Starts and finishes each worker may have waiting or running; beyond that, they are worked on
 * the loop thread and further starts get the overload 503. Enough to keep them busy across a batch. */
#define WORKERS_QUEUE_PER_THREAD 32
/* Descriptors kept free beside the connections: the store (SQLite's -wal and -shm, temporary
 * files, a PostgreSQL reconnect), files read while serving. */
#define FD_RESERVE 32
/* How often the event loop's lag is looked at: a timer among the connections' events. */
#define LAG_PERIOD_US 20000
/* After accept() failed (EMFILE, ENFILE, ENOBUFS...) or no connection object could be made. */
#define ACCEPT_BACKOFF_US 100000

struct daemon;

/*
 * One accepted connection, made before its socket exists (the spare, see conn_prepare): the
 * TLS bufferevent handed to evhttp, and one timer that first learns the peer's address (evhttp
 * gives the socket to the bufferevent only after its callback returns), then bounds the time
 * to a whole request. It lives as long as its SSL (freed with the socket): conn_ex_free.
 */
struct conn {
	struct daemon *d;
	struct bufferevent *bev;
	struct event *timer;
	uint8_t addr[CONNLIMIT_ADDR_SIZE];
	bool counted, attached;
	LIST_ENTRY(conn) link;
};

static struct conn *conn_of(struct evhttp_request *req);
static void conn_arm(struct conn *c);

struct daemon {
	struct server srv;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	SSL_CTX *ssl;
	struct tls_tickets *tickets; /* every SSL_CTX's, across reloads */
	struct ratelimit *limit;
	struct connlimit *conns;
	struct evconnlistener *listener;
	struct conn *spare;  /* the next connection's objects: accepting is off while there is none */
	LIST_HEAD(, conn) all; /* every conn, the spare included */
	bool accepting, backing_off, stopping;
	struct event *commit_ev, *tick_ev, *backoff_ev;
	struct metrics m;
	struct dashboard *dash; /* the admin listener's pages, when admin_listen names one */
	struct health health;
	int64_t audit_due_us; /* the next audit_check */
	bool batch_open;
	int64_t batch_start_us;
	size_t n_pending;
	struct pending pending[BATCH_MAX];
	struct workers *workers; /* starts' and finishes' cryptography (workers); NULL: on this thread */
	/* Each committed batch's fdatasync, in order, before its replies (store_defer_sync); NULL:
	 * commits are durable on return. */
	struct workers *syncer;
	char *sync_path;
	int sync_error; /* a sync that failed: the server stops, what is on disk unknown */
	const char *config_path;
	struct server_config *config; /* srv.config, which a reload replaces in place */
	uint64_t checkpoint_published; /* the size of the newest checkpoint logged */
	/* Overload: the loop's lag, as a timer every LAG_PERIOD_US finds it (CLOCK_MONOTONIC µs). */
	struct event *lag_ev;
	int64_t lag_due_us;
	uint64_t overload_unrecorded; /* 503s since the last overload record */
	int64_t overload_recorded_us;
};

static void send_body(struct evhttp_request *req, int status, const char *type, const char *body, size_t size,
		      int64_t retry_after)
{
	struct evbuffer *out = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct conn *c = conn_of(req);
	char ra[24];

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (retry_after > 0) {
		snprintf(ra, sizeof(ra), "%lld", (long long)retry_after);
		evhttp_add_header(h, "Retry-After", ra);
	}
	if (status == 405)
		evhttp_add_header(h, "Allow", strstr(evhttp_request_get_uri(req), "/v1/attest/") ? "POST" : "GET");
	if (out)
		evbuffer_add(out, body, size);
	/* The reply, then the next request on the connection, each have request_timeout. */
	if (c)
		conn_arm(c);
	/* libevent 2.1 has no phrase for 429. */
	evhttp_send_reply(req, status, status == 429 ? "Too Many Requests" : NULL, out);
	evbuffer_free(out);
}

static void send_json(struct evhttp_request *req, int status, const char *body, int64_t retry_after)
{
	send_body(req, status, "application/json", body, strlen(body), retry_after);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200:
		return "allow";
	case 500:
		return "error";
	default:
		return "deny";
	}
}

static enum endpoint endpoint_of(const char *path)
{
	if (streq(path, "/v1/attest/start"))
		return EP_START;
	if (streq(path, "/v1/attest/finish"))
		return EP_FINISH;
	if (streq(path, "/healthz"))
		return EP_HEALTHZ;
	if (streq(path, "/readyz"))
		return EP_READYZ;
	if (streq(path, "/metrics"))
		return EP_METRICS;
	return EP_OTHER;
}

static void peer_of(struct evhttp_request *req, char *buf, size_t size, char *addr_buf, size_t addr_size)
{
	char *addr = NULL;
	ev_uint16_t port = 0;

	evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
	snprintf(buf, size, "%s:%u", addr ? addr : "?", port);
	snprintf(addr_buf, addr_size, "%s", addr ? addr : "?");
}

/*
 * A reply leaves as several TLS records; with Nagle's algorithm the later ones wait for the
 * client's delayed ACK (40 ms on Linux). libevent leaves accepted sockets as they come.
 */
static void nodelay(struct evhttp_request *req)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
	int one = 1;

	if (fd >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A store outage is logged once when it begins and once when it ends, not once per request. */
static void health_logged(struct daemon *d, bool was_failing)
{
	char after[24];

	if (!was_failing && d->health.store_failing)
		slog("error", "store-unavailable", "reason", d->health.store_reason, NULL);
	else if (was_failing && !d->health.store_failing) {
		snprintf(after, sizeof(after), "%.1fs", (double)(now_usec() - d->health.failing_since_us) / 1e6);
		slog("info", "store-available", "after", after, NULL);
	}
}

static void health_note(struct daemon *d, int err, const char *what)
{
	bool was = d->health.store_failing;

	health_store_result(&d->health, err, what, now_usec());
	health_logged(d, was);
}

/* Replies and logs one request of a batch: status 503 instead when the batch was not recorded. */
static void finish_pending(struct daemon *d, struct pending *p, bool recorded)
{
	static const char *const paths[_EP_MAX] = { [EP_START] = "/v1/attest/start", [EP_FINISH] = "/v1/attest/finish",
						    [EP_HEALTHZ] = "/healthz", [EP_READYZ] = "/readyz",
						    [EP_METRICS] = "/metrics",
						    [EP_OTHER] = "other" };
	_cleanup_free_ char *err_body = NULL;
	const char *body;
	char status_s[8], dur[24];
	int64_t us;

	free(p->r.refused);
	p->r.refused = NULL;
	if (!recorded) {
		free(p->log);
		p->log = NULL;
		free(p->r.body);
		p->r.body = NULL;
		p->r.status = 503;
		p->retry_after = 1;
		snprintf(p->r.reason, sizeof(p->r.reason), "store unavailable: the decision could not be recorded");
	}
	if (p->r.status == 200 && p->log && attest_result_add_log(&p->r.body, p->log) < 0)
		log_error("cannot add the log's proofs to the reply to %s", p->peer);
	free(p->log);
	p->log = NULL;
	if (p->r.status == 200)
		body = p->r.body;
	else {
		if (attest_error_format(p->r.reason, &err_body) < 0)
			err_body = strdup("{\"error\":\"out of memory\"}");
		body = err_body ? err_body : "{}";
	}
	/* The last use of p->req: a client gone while its request waited for the commit has it
	 * detached, and sending the reply frees it there and then. */
	send_json(p->req, p->r.status, body, p->retry_after);
	p->req = NULL;
	us = now_usec() - p->start_us;
	metrics_request(&d->m, p->ep, p->r.status, us, recorded ? p->r.refusal : REFUSAL_STORE);
	snprintf(status_s, sizeof(status_s), "%d", p->r.status);
	snprintf(dur, sizeof(dur), "%lld", (long long)us);
	/* Unrecorded: the store outage's own line says so, once for all of them. */
	if (recorded)
		slog(p->r.status == 500 ? "error" : "info", "request", "peer", p->peer, "path", paths[p->ep], "status",
		     status_s, "action", p->r.action, "decision", status_text(p->r.status), "ek", p->r.ek_hash,
		     "node", p->r.node_id, "us", dur, "reason", p->r.reason, NULL);
	free(p->r.body);
	p->r.body = NULL;
}

/*
 * The log's proofs for every witnessing reply of the batch, against one checkpoint signed in
 * it. A reply that cannot have them goes without: its node refuses it and says so.
 */
static void witness_batch(struct daemon *d)
{
	_cleanup_free_ char *note = NULL;
	uint64_t size = 0;
	bool any = false;
	int k = 0;

	for (size_t i = 0; i < d->n_pending; i++)
		any = any || d->pending[i].log;
	if (!any)
		return;
	if (!store_log_signer(d->srv.store) || (k = witness_checkpoint(d->srv.store, &note, &size)) < 0) {
		if (store_log_signer(d->srv.store))
			log_error("cannot sign the audit log's checkpoint for witnessing nodes: %s", strerror(-k));
		note = NULL;
	}
	for (size_t i = 0; i < d->n_pending; i++) {
		struct pending *p = d->pending + i;

		if (!p->log)
			continue;
		if (!note || (k = witness_prove(d->srv.store, note, size, p->r.witness_size, p->log)) < 0) {
			if (note)
				log_error("cannot prove record %" PRIu64 " to its node: %s", p->log->index + 1, strerror(-k));
			free(p->log);
			p->log = NULL;
		}
	}
}

/*
 * The batch's records as the store appended them (store_sequence): a refused boot state's
 * evidence beside its record's seq, a witnessing 200's leaf. A draft that cannot be kept is
 * lost alone; a leaf that cannot be made leaves its reply without proofs (its node refuses it).
 */
static void batch_sequenced(struct daemon *d)
{
	for (size_t i = 0; i < d->n_pending; i++) {
		struct pending *p = d->pending + i;
		const struct audit_rec *a;
		int q;

		if ((!p->r.refused && !(p->r.status == 200 && p->r.witness)) ||
		    store_audit_sequenced(d->srv.store, p->ticket, &a) < 0)
			continue;
		if (p->r.refused) {
			struct refusal_rec rr = { .audit_seq = a->seq, .time_us = a->time_us,
						  .policy_version = p->r.refused_policy, .evidence = p->r.refused };

			snprintf(rr.ek_hash, sizeof(rr.ek_hash), "%s", p->r.ek_hash);
			if ((q = store_refusal_put(d->srv.store, &rr)) < 0)
				log_debug("keeping the refused attestation of %s: %s", p->r.ek_hash, strerror(-q));
		}
		/* A 200's fields are the server's own ASCII: the leaf is as the store keeps it. */
		if (p->r.status == 200 && p->r.witness && (p->log = calloc(1, sizeof(*p->log)))) {
			p->log->index = (uint64_t)a->seq - 1;
			if (audit_leaf_of(a, p->log->record, &p->log->record_size) < 0) {
				free(p->log);
				p->log = NULL;
			}
		}
	}
}

/* A committed batch waiting for its sync: its requests, moved out of the daemon's. */
struct synced {
	struct worker_job job; /* first: the job is the batch */
	struct daemon *d;
	const char *path;
	int err;
	size_t n;
	struct pending p[];
};

static void serve_stop(struct daemon *d);

static void synced_run(struct worker_job *j)
{
	struct synced *b = (struct synced *)j;

	b->err = store_sync(b->path);
}

/* A commit that returned but may not be on disk: nothing it decided may stand as answered. */
static void sync_failed(struct daemon *d, int err)
{
	if (d->sync_error)
		return;
	d->sync_error = err;
	d->m.commit_failures++;
	health_note(d, err, "cannot make a commit durable");
	slog("error", "stopping", "reason", "a commit could not be made durable (fdatasync of the store's WAL failed); "
	     "restarting recovers the store from what is on disk", NULL);
	serve_stop(d);
}

/* A batch's replies: each request's decision, or 503 when it was not recorded (durably). */
static void batch_answer(struct daemon *d, struct pending *p, size_t n, bool recorded)
{
	for (size_t i = 0; i < n; i++)
		finish_pending(d, p + i, recorded && !d->sync_error);
	fflush(stderr);
}

static void synced_done(struct worker_job *j)
{
	struct synced *b = (struct synced *)j;

	if (b->err < 0)
		sync_failed(b->d, b->err);
	batch_answer(b->d, b->p, b->n, b->err >= 0);
	free(b);
}

/*
 * A committed batch's replies once its commit is on disk: on the sync thread while the loop
 * goes on with the next batch, or, should that not be had, here. The thread's syncs run in
 * order, so a batch's replies never leave before an earlier batch's commit is durable.
 */
static void batch_sync(struct daemon *d, bool ok)
{
	struct synced *b = NULL;
	int k;

	if (ok && d->syncer && (b = malloc(sizeof(*b) + d->n_pending * sizeof(b->p[0])))) {
		*b = (struct synced){ .job = { .run = synced_run, .done = synced_done }, .d = d, .path = d->sync_path,
				      .n = d->n_pending };
		memcpy(b->p, d->pending, d->n_pending * sizeof(b->p[0]));
		if (workers_submit(d->syncer, &b->job) >= 0) {
			d->n_pending = 0;
			return;
		}
		free(b);
	}
	if (ok && d->syncer && (k = store_sync(d->sync_path)) < 0)
		sync_failed(d, k);
	batch_answer(d, d->pending, d->n_pending, ok);
	d->n_pending = 0;
}

/*
 * Group commit: one durable commit for every request handled since the batch opened, then
 * their replies. The requests were verified with no lock held; only here, once the batch is
 * complete, does it take the store's writer lock (store_sequence: on PostgreSQL the one every
 * instance shares) to append its records, sign the checkpoint its witnesses are shown and
 * commit. A failed sequencing or commit answers all of them 503, and none of their decisions
 * stands.
 */
static void batch_commit(struct daemon *d)
{
	bool ok;
	int k;

	if (!d->batch_open)
		return;
	k = store_sequence(d->srv.store);
	if (k >= 0) {
		batch_sequenced(d);
		witness_batch(d);
		k = store_commit(d->srv.store);
	}
	ok = k >= 0;
	if (!ok) {
		store_rollback(d->srv.store);
		d->m.commit_failures++;
	} else
		d->m.commits++;
	health_note(d, k, "cannot commit a decision");
	d->batch_open = false;
	batch_sync(d, ok);
}

static void on_commit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	batch_commit(arg);
}

static int batch_join(struct daemon *d)
{
	int k;

	if (d->batch_open)
		return 0;
	k = store_begin_batch(d->srv.store);
	if (k < 0)
		return k;
	d->batch_open = true;
	d->batch_start_us = now_usec();
	/* Lowest priority: runs once no request is ready to be read, i.e. the batch is complete. */
	event_active(d->commit_ev, EV_TIMEOUT, 0);
	return 0;
}

static void answer_now(struct daemon *d, struct evhttp_request *req, enum endpoint ep, int64_t start, int status,
		       const char *type, const char *body, size_t size, int64_t retry_after)
{
	send_body(req, status, type, body, size, retry_after);
	metrics_request(&d->m, ep, status, now_usec() - start, REFUSAL_NONE);
}

/* /healthz and /readyz: 200 when a node could be admitted now, else 503 and why (the open batch first commits). */
static void answer_health(struct daemon *d, struct evhttp_request *req, enum endpoint ep, int64_t start)
{
	char reason[ATTEST_REASON_MAX + 1];
	bool was;
	size_t n;

	batch_commit(d);
	was = d->health.store_failing;
	if (health_check(&d->health, &d->srv, now_usec(), reason) >= 0) {
		answer_now(d, req, ep, start, 200, "text/plain; charset=utf-8", "ok\n", 3, 0);
		health_logged(d, was);
		return;
	}
	health_logged(d, was);
	n = strlen(reason);
	reason[n++] = '\n';
	answer_now(d, req, ep, start, 503, "text/plain; charset=utf-8", reason, n, 1);
}

/* GET /v1/crl (DER) and /v1/crl.pem: the CA's CRL, public, not audited; from the store as it is now. */
static void answer_crl(struct daemon *d, struct evhttp_request *req, bool pem, int64_t start)
{
	char why[ATTEST_REASON_MAX + 1];
	const uint8_t *crl;
	size_t size;
	int k;

	batch_commit(d);
	k = pki_crl(d->srv.pki, d->srv.store, d->srv.config->crl_lifetime, pem, &crl, &size, NULL, why, sizeof(why) - 1);
	if (k < 0) {
		if (k != -EKEYREJECTED)
			health_note(d, k, "cannot read the revoked nodes");
		slog("error", "crl-failed", "reason", why, NULL);
		size = strlen(why);
		why[size++] = '\n';
		answer_now(d, req, EP_OTHER, start, k == -EKEYREJECTED ? 500 : 503, "text/plain; charset=utf-8", why, size,
			   k == -EKEYREJECTED ? 0 : 1);
		return;
	}
	answer_now(d, req, EP_OTHER, start, 200, pem ? "application/x-pem-file" : "application/pkix-crl",
		   (const char *)crl, size, 0);
}

/* /metrics: the counters, and the policy and readiness as they stand now. */
static void answer_metrics(struct daemon *d, struct evhttp_request *req, int64_t start)
{
	_cleanup_free_ char *text = NULL;
	size_t size;

	metrics_observe(&d->m, &d->srv, d->health.store_failing, start);
	if (metrics_format(&d->m, &text, &size) < 0)
		answer_now(d, req, EP_METRICS, start, 500, "application/json", "{\"error\":\"out of memory\"}", 25, 0);
	else
		answer_now(d, req, EP_METRICS, start, 200, "text/plain; version=0.0.4; charset=utf-8", text, size, 0);
}

static void listener_update(struct daemon *d);

/* Whether a lag (µs) is more than max_queue_delay: new connections wait, starts get 503. */
static bool behind(const struct daemon *d, int64_t lag_us)
{
	return lag_us > d->srv.config->max_queue_delay * 1000;
}

/*
 * The queue in time: a timer at the connections' priority runs after every event that was
 * ready before it, so how late it runs is how long a request ready now waits to be looked at.
 * Beyond capacity that grows with the connections waiting, whatever they cost; idle peers and
 * slow links add nothing to it.
 */
static void on_lag(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	int64_t now = mono_us();

	(void)fd;
	(void)what;
	d->m.loop_lag_us = now > d->lag_due_us ? now - d->lag_due_us : 0;
	d->m.workers_wait_us = workers_wait_us(d->workers);
	d->lag_due_us = now + LAG_PERIOD_US;
	(void)event_add(d->lag_ev, &(struct timeval){ 0, LAG_PERIOD_US });
	/* Behind: no new connections (their TLS handshakes would only lengthen the queue) until it
	 * has caught up; they wait in the kernel's backlog, and beyond it TCP retries their SYN. */
	listener_update(d);
}

/* The longer of the loop's lag and the workers' wait (µs), and which of the two it is. */
static int64_t queue_behind(int64_t lag, int64_t wait, const char **ret_which)
{
	*ret_which = wait > lag ? "workers' queue" : "event loop";
	return wait > lag ? wait : lag;
}

/* The lag now: the last one measured, or the timer's own lateness while it waits to run. */
static int64_t loop_lag_us(struct daemon *d)
{
	int64_t late = mono_us() - d->lag_due_us;

	return late > d->m.loop_lag_us ? late : d->m.loop_lag_us;
}

/*
 * A start while the loop, or the workers' queue, is more than max_queue_delay behind: 503 and a
 * Retry-After of 1 to 2 times retry_after, chosen at random so that nodes sent away together
 * come back apart. It costs the TLS handshake already made and this: no parsing, no store. The
 * first of a second is an audit record counting the rest, which are answered without touching
 * the store. A finish is never turned away here: its start was admitted, and it completes that
 * work. true when it was answered here; false otherwise, p then holding the audited 503 if it is
 * one.
 */
static bool overload_refuse(struct daemon *d, struct evhttp_request *req, struct pending *p, int64_t start)
{
	static const char body[] = "{\"error\":\"server overloaded: try again after its Retry-After\"}";
	const char *which;
	int64_t lag = queue_behind(loop_lag_us(d), workers_wait_us(d->workers), &which);
	int64_t ra = d->srv.config->retry_after;
	uint32_t r;

	if (!behind(d, lag))
		return false;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)lag;
	ra += (int64_t)(r % (uint64_t)(ra + 1));
	d->m.overload_refused++;
	d->overload_unrecorded++;
	if (start - d->overload_recorded_us < 1000000) {
		send_body(req, 503, "application/json", body, sizeof(body) - 1, ra);
		metrics_request(&d->m, EP_START, 503, now_usec() - start, REFUSAL_OVERLOADED);
		return true;
	}
	d->overload_recorded_us = start;
	p->r.status = 503;
	p->r.action = "overload";
	p->r.refusal = REFUSAL_OVERLOADED;
	p->retry_after = ra;
	snprintf(p->r.reason, sizeof(p->r.reason),
		 "server overloaded: its %s is %lld ms behind (max_queue_delay %lld ms); %llu refused since the last "
		 "record",
		 which, (long long)(lag / 1000),
		 (long long)d->srv.config->max_queue_delay, (unsigned long long)d->overload_unrecorded);
	d->overload_unrecorded = 0;
	return false;
}

static void request_record(struct daemon *d, struct pending *p);

/* A start or a finish waiting for a worker: its request, then the work (one of the two). */
struct offload {
	struct worker_job job; /* first: the job is the offload */
	struct daemon *d;
	struct pending p;
	struct start_work *sw;
	struct finish_work *fw;
};

static void offload_free(struct offload *o)
{
	start_work_free(o->sw);
	finish_work_free(o->fw);
	free(o);
}

/* Back on the loop thread: the request's writes and audit record join the open batch. */
static void offload_done(struct worker_job *j)
{
	struct offload *o = (struct offload *)j;
	struct daemon *d = o->d;
	struct pending *p;
	int k;

	if (d->n_pending >= BATCH_MAX)
		batch_commit(d);
	k = batch_join(d);
	if (k < 0) {
		health_note(d, k, "cannot begin a transaction");
		answer_now(d, o->p.req, o->p.ep, o->p.start_us, 503, "application/json", "{\"error\":\"store unavailable\"}",
			   29, 1);
	} else {
		p = d->pending + d->n_pending;
		*p = o->p;
		if (o->sw)
			handshake_start_complete(&d->srv, o->sw, &p->r);
		else
			handshake_finish_complete(&d->srv, p->peer, o->fw, &p->r);
		if (p->r.status == 503)
			p->retry_after = p->r.retry_after > 0 ? p->r.retry_after : 60;
		request_record(d, p);
	}
	offload_free(o);
}

static void offload_run(struct worker_job *j)
{
	struct offload *o = (struct offload *)j;

	if (o->sw)
		handshake_start_verify(o->sw);
	else
		handshake_finish_verify(o->fw);
}

/* The work (sw or fw) to a worker: true when it went (offload_done completes it), false when
 * the queue is full or memory short, and the caller does it here instead. */
static bool offload(struct daemon *d, const struct pending *p, struct start_work *sw, struct finish_work *fw)
{
	struct offload *o = calloc(1, sizeof(*o));

	if (!o)
		return false;
	*o = (struct offload){ .job = { .run = offload_run, .done = offload_done }, .d = d, .p = *p, .sw = sw, .fw = fw };
	if (workers_submit(d->workers, &o->job) >= 0)
		return true;
	free(o);
	return false;
}

/*
 * A start, its credential made on a worker: true when it went there, false when it was handled
 * here to the end, p filled in (no workers, a reply prepare decided, or the queue full: a start
 * is not turned away for that here, overload_refuse has already let it in).
 */
static bool start_offload(struct daemon *d, struct pending *p, const char *body, size_t size)
{
	struct start_work *w;

	if (!d->workers) {
		handshake_start(&d->srv, p->peer, body, size, &p->r);
		return false;
	}
	handshake_start_prepare(&d->srv, p->peer, body, size, &p->r, &w);
	if (!w)
		return false;
	if (offload(d, p, w, NULL))
		return true;
	handshake_start_verify(w);
	handshake_start_complete(&d->srv, w, &p->r);
	start_work_free(w);
	return false;
}

/*
 * A finish, its verification on a worker: true when it went there (offload_done completes it),
 * false when it was handled here to the end, p filled in: no workers, a body that does not
 * parse, or the workers' queue full. A finish is never refused for overload (its start was
 * admitted); verified here it slows the loop, and the starts behind it get the 503s.
 */
static bool finish_offload(struct daemon *d, struct pending *p, const char *body, size_t size)
{
	struct finish_work *w;

	if (!d->workers) {
		handshake_finish(&d->srv, p->peer, body, size, &p->r);
		return false;
	}
	handshake_finish_prepare(&d->srv, body, size, &p->r, &w);
	if (!w)
		return false;
	if (offload(d, p, NULL, w))
		return true;
	handshake_finish_verify(w);
	handshake_finish_complete(&d->srv, p->peer, w, &p->r);
	finish_work_free(w);
	return false;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct daemon *d = arg;
	const char *path = evhttp_request_get_uri(req);
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t size = evbuffer_get_length(in);
	int64_t start = now_usec();
	enum endpoint ep = endpoint_of(path);
	struct ratelimit_verdict v;
	struct pending *p;
	char addr[64];
	struct conn *c = conn_of(req);
	int k;

	/* The whole request is here: the time it takes to answer is the server's, not the peer's. */
	if (c)
		event_del(c->timer);
	nodelay(req);
	if (d->n_pending >= BATCH_MAX)
		batch_commit(d);
	p = d->pending + d->n_pending;
	*p = (struct pending){ .req = req, .ep = ep, .start_us = start, .r = { .action = "http" } };
	peer_of(req, p->peer, sizeof(p->peer), addr, sizeof(addr));

	ratelimit_take(d->limit, addr, start, &v);
	if (!v.allowed) {
		d->m.rate_limited++;
		if (!v.report) {
			/* Within the second after a recorded refusal: counted, recorded with the next. */
			answer_now(d, req, ep, start, 429, "application/json",
				   "{\"error\":\"rate limited: too many requests from this address\"}",
				   strlen("{\"error\":\"rate limited: too many requests from this address\"}"),
				   v.retry_after);
			return;
		}
		p->r.status = 429;
		p->r.action = "rate-limit";
		p->retry_after = v.retry_after;
		snprintf(p->r.reason, sizeof(p->r.reason),
			 "rate limited: too many requests from this address (%llu refused since the last record; "
			 "rate_limit %g/s, rate_burst %lld)",
			 (unsigned long long)v.refused, d->srv.config->rate_limit,
			 (long long)d->srv.config->rate_burst);
	} else if (ep == EP_START && method == EVHTTP_REQ_POST && overload_refuse(d, req, p, start)) {
		return;
	} else if (ENDPOINT_IS_PROBE(ep) && (method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD)) {
		/* None is audited: a scrape every few seconds would drown the decisions. */
		if (ep != EP_METRICS)
			answer_health(d, req, ep, start);
		else
			answer_metrics(d, req, start);
		return;
	} else if ((streq(path, "/v1/crl") || streq(path, "/v1/crl.pem")) &&
		   (method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD)) {
		answer_crl(d, req, streq(path, "/v1/crl.pem"), start);
		return;
	} else if (streq(path, "/v1/crl") || streq(path, "/v1/crl.pem")) {
		p->r.status = 405;
		snprintf(p->r.reason, sizeof(p->r.reason), "only GET is allowed here");
	} else if (ep == EP_OTHER) {
		p->r.status = 404;
		snprintf(p->r.reason, sizeof(p->r.reason), "no such endpoint");
	} else if (ENDPOINT_IS_PROBE(ep) || method != EVHTTP_REQ_POST) {
		p->r.status = 405;
		snprintf(p->r.reason, sizeof(p->r.reason), "only %s is allowed here", ENDPOINT_IS_PROBE(ep) ? "GET" : "POST");
	} else if (size > (size_t)d->srv.config->max_body) {
		p->r.status = 413;
		snprintf(p->r.reason, sizeof(p->r.reason), "request body of %zu bytes is larger than %lld", size,
			 (long long)d->srv.config->max_body);
	}

	k = batch_join(d);
	if (k < 0) {
		health_note(d, k, "cannot begin a transaction");
		answer_now(d, req, ep, start, 503, "application/json", "{\"error\":\"store unavailable\"}", 29, 1);
		return;
	}
	if (p->r.status == 0) {
		const char *b = (const char *)evbuffer_pullup(in, -1);

		if (ep == EP_START ? start_offload(d, p, b ? b : "", size) : finish_offload(d, p, b ? b : "", size))
			return;
		if (p->r.status == 503)
			p->retry_after = p->r.retry_after > 0 ? p->r.retry_after : 60;
	}
	request_record(d, p);
}

/* A request decided (p is the next slot of the open batch): its audit record, then it waits for the commit. */
static void request_record(struct daemon *d, struct pending *p)
{
	struct audit_rec a;
	int k;

	a = (struct audit_rec){
		.time_us = p->start_us,
		.peer = p->peer,
		.ek_hash = p->r.ek_hash,
		.node_id = p->r.node_id,
		.action = p->r.action,
		.decision = status_text(p->r.status),
		.reasons = p->r.reason,
	};
	d->n_pending++;
	/* Queued: the record gets its seq when the batch commits (batch_commit). */
	k = store_audit_add(d->srv.store, &a, &p->ticket);
	if (k < 0) {
		/* The transaction is in doubt: nothing in it stands, nobody gets an answer it does not hold. */
		store_rollback(d->srv.store);
		d->batch_open = false;
		d->m.commit_failures++;
		health_note(d, k, "cannot record a decision");
		batch_answer(d, d->pending, d->n_pending, false);
		d->n_pending = 0;
		return;
	}
	d->m.audit_records++;
	if (d->n_pending >= BATCH_MAX || now_usec() - d->batch_start_us >= BATCH_MAX_US)
		batch_commit(d);
}

/*
 * The audit log's verification for its gauge: at start, then every AUDIT_CHECK_US, or 1000
 * times as long as the last check took if that is longer, so that a long log's walk (requests
 * wait meanwhile) takes at most a thousandth of the server's time.
 */
static void audit_check(struct daemon *d, int64_t now)
{
	char why[ATTEST_REASON_MAX] = "";
	int64_t took;
	int k;

	if (now < d->audit_due_us)
		return;
	k = audit_verify_status(d->srv.store, why, sizeof(why));
	took = now_usec() - now;
	d->audit_due_us = now + (took * 1000 > AUDIT_CHECK_US ? took * 1000 : AUDIT_CHECK_US);
	if (k < 0) {
		d->audit_due_us = now; /* unread, not unverified: tried again at the next tick */
		return;
	}
	if (k == 0 && (!d->m.audit_checked || d->m.audit_verified))
		slog("error", "audit-unverified", "reason", why, NULL);
	d->m.audit_checked = true;
	d->m.audit_verified = k > 0;
	d->m.audit_checked_us = now;
	d->m.audit_check_us = took;
}

/*
 * A next log key the log has not named, or the swap to it, as an audit record signed into the
 * log (log_keys_change): a rotation made by editing the configuration is on record as one made
 * by log-key rotate is. when: "at start", "at reload".
 */
static int log_keys_record(struct daemon *d, const char *when)
{
	const char *action;
	char what[2 * LOG_KEY_LABEL_MAX + 256], text[sizeof(what) + PATH_MAX + 64];
	struct audit_rec a;
	int r = log_keys_change(d->srv.store, &action, what, sizeof(what));

	if (r <= 0) {
		if (r < 0)
			log_error("cannot read the audit log: %s", strerror(-r));
		return r;
	}
	snprintf(text, sizeof(text), "%s; by the server %s (%s)", what, when, d->config_path);
	a = (struct audit_rec){ .time_us = now_usec(), .peer = "local", .ek_hash = "", .node_id = "",
				.action = action, .decision = "allow", .reasons = text };
	/* At start before the event loop, a transaction of its own; at a reload, the next batch's. */
	r = d->commit_ev ? batch_join(d) : store_begin(d->srv.store);
	if (r >= 0)
		r = store_audit_append(d->srv.store, &a);
	if (r >= 0 && !d->commit_ev)
		r = store_commit(d->srv.store);
	if (r < 0) {
		if (!d->commit_ev)
			store_rollback(d->srv.store);
		return log_error_errno(r, "cannot record the log key's %s: %s", action, strerror(-r));
	}
	log_info("%s", what);
	return 0;
}

/*
 * The log key, and the store's log checked against its newest checkpoint: a server whose log
 * was truncated or rewritten does not start (audit verify says more).
 */
static int log_open(struct daemon *d)
{
	const struct note_signer *signer;
	char why[PATH_MAX + 512];
	uint64_t size;
	int r;

	if (!d->config->log_key) {
		log_warning("'log_key' is not set: the audit log's checkpoints are not signed, and nodes that pin a "
			    "log key refuse this server's answers");
		return 0;
	}
	if ((r = log_keys_attach(d->srv.store, d->config, why, sizeof(why))) < 0)
		return log_error_errno(r, "%s", why);
	signer = store_log_signer(d->srv.store);
	if (store_log_cosigner(d->srv.store)) {
		char key[KEYREF_WHY_MAX / 2], next[KEYREF_WHY_MAX / 2];

		keyref_display(d->config->log_key, key, sizeof(key));
		keyref_display(d->config->log_key_next, next, sizeof(next));
		log_info("log key rotation: checkpoints are signed by '%s' and the next key '%s'", key, next);
	}
	r = checkpoint_check(d->srv.store, note_signer_verifier(signer), why, sizeof(why));
	if (r < 0 && r != -ENOENT)
		return log_error_errno(r, "the audit log does not match its checkpoint: %s; run keystrap-server audit "
					  "verify", why);
	/* The copy kept outside the database: the log must extend it. */
	if (d->config->checkpoint_file && access(d->config->checkpoint_file, F_OK) == 0 &&
	    (r = checkpoint_extends_file(d->srv.store, note_signer_verifier(signer), d->config->checkpoint_file, why,
					 sizeof(why))) < 0)
		return log_error_errno(r, "%s; run keystrap-server audit verify --since %s", why,
				       d->config->checkpoint_file);
	if ((r = store_log_size(d->srv.store, &size)) < 0)
		return log_error_errno(r, "cannot read the audit log: %s", strerror(-r));
	if (size > 0 && !checkpoint_exists(d->srv.store)) {
		/* The first start with a log key (or a checkpoint row deleted: the file and nodes tell). */
		log_warning("the audit log's %llu records have no signed checkpoint: signing one now", (unsigned long long)size);
		if ((r = store_begin(d->srv.store)) < 0 || (r = store_checkpoint_sign(d->srv.store)) < 0 ||
		    (r = store_commit(d->srv.store)) < 0) {
			store_rollback(d->srv.store);
			return log_error_errno(r, "cannot sign the audit log's checkpoint: %s", strerror(-r));
		}
	}
	return log_keys_record(d, "at start");
}

/* Every second: registry counts for the gauges and the enrollment cap. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct node_census census;
	int k;

	(void)fd;
	(void)what;
	/* During an outage, a probe a second notices (and logs) the store's return without traffic. */
	if (d->health.store_failing && !d->batch_open)
		health_note(d, store_probe(d->srv.store, now_usec()), "cannot commit a decision");
	if ((k = store_node_census(d->srv.store, now_usec(), &census)) < 0) {
		if (!d->batch_open)
			health_note(d, k, "cannot read the registry");
		return;
	}
	if (d->config->log_key && !d->batch_open)
		checkpoint_publish(d->srv.store, d->config->checkpoint_file, &d->checkpoint_published);
	d->m.nodes = census;
	d->m.nodes_known = true;
	d->srv.enroll_pending = census.state[NODE_REQUESTED];
	audit_check(d, now_usec());
	dashboard_tick(d->dash, now_usec());
}

/* The SSL ex_data slot holding each connection's struct conn. */
static int conn_index = -1;
/* The listener's callbacks get evhttp's argument, not ours; there is one daemon. */
static struct daemon *the_daemon;

/* From the socket's address: the accounting key, and the text for a log line. */
static int conn_peer(struct conn *c, char *text, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	const void *a;

	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    connlimit_addr((struct sockaddr *)&ss, len, c->addr) < 0)
		return -ENOTCONN;
	a = ss.ss_family == AF_INET ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
				    : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
	if (!inet_ntop(ss.ss_family, a, text, (socklen_t)size))
		snprintf(text, size, "?");
	return 0;
}

static void conn_arm(struct conn *c)
{
	struct timeval tv = { .tv_sec = c->d->srv.config->request_timeout };

	if (c->timer) /* NULL only while the server shuts down */
		(void)event_add(c->timer, &tv);
}

/*
 * Closes a connection as evhttp closes one whose socket failed: it frees the connection and a
 * request still being read (one already handed to on_request is detached, and its reply
 * dropped), the socket closes and the SSL goes, and c with it (conn_ex_free).
 */
static void conn_close(struct conn *c)
{
	bufferevent_trigger_event(c->bev, BEV_EVENT_ERROR | BEV_EVENT_READING, 0);
}

/* First: the peer's address, charged to its count; then the deadline for a whole request. */
static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
	static struct log_limit refused, timed_out;
	struct conn *c = arg;
	struct daemon *d = c->d;
	char peer[INET6_ADDRSTRLEN], why[96];

	(void)fd;
	(void)what;
	if (c->attached) {
		if (conn_peer(c, peer, sizeof(peer)) < 0)
			snprintf(peer, sizeof(peer), "?");
		snprintf(why, sizeof(why), "no whole request within request_timeout %llds",
			 (long long)d->srv.config->request_timeout);
		slog_limited(&timed_out, "info", "connection-closed", "peer", peer, "reason", why, NULL);
		conn_close(c);
		return;
	}
	if (conn_peer(c, peer, sizeof(peer)) < 0) {
		conn_close(c);
		return;
	}
	if (connlimit_attach(d->conns, c->addr) < 0) {
		snprintf(why, sizeof(why), "max_connections_per_address %lld reached",
			 (long long)d->srv.config->max_connections_per_address);
		slog_limited(&refused, "warning", "connection-refused", "peer", peer, "reason", why, NULL);
		conn_close(c);
		return;
	}
	c->attached = true;
	conn_arm(c);
}

/* OpenSSL frees the SSL as bufferevent_openssl closes the socket: the connection is gone. */
static void conn_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct conn *c = ptr;
	struct daemon *d;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (!c)
		return;
	d = c->d;
	if (c->counted)
		connlimit_close(d->conns, c->attached ? c->addr : NULL);
	if (c->timer)
		event_free(c->timer);
	LIST_REMOVE(c, link);
	free(c);
	/* A descriptor came back: accept() failing for want of one may succeed now. */
	if (d->backing_off && d->spare && !d->stopping) {
		d->backing_off = false;
		event_del(d->backoff_ev);
	}
	listener_update(d);
}

/*
 * The next connection's objects (SSL, TLS bufferevent, timer), made before its socket is
 * accepted: evhttp's bufferevent callback cannot fail (given NULL, evhttp would serve the
 * connection in plaintext), so accepting is off while this has not succeeded.
 */
static int conn_prepare(struct daemon *d)
{
	struct conn *c;
	SSL *ssl;

	if (d->spare)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->d = d;
	c->timer = event_new(d->base, -1, 0, on_conn_timer, c);
	ssl = c->timer ? SSL_new(d->ssl) : NULL;
	if (!ssl || SSL_set_ex_data(ssl, conn_index, c) != 1) {
		SSL_free(ssl);
		if (c->timer)
			event_free(c->timer);
		free(c);
		return -ENOMEM;
	}
	/* From here the SSL owns c: freeing it (below on failure, else with the socket) frees c. */
	LIST_INSERT_HEAD(&d->all, c, link);
	c->bev = bufferevent_openssl_socket_new(d->base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		return -ENOMEM;
	d->spare = c;
	return 0;
}

/* Stops accepting for ACCEPT_BACKOFF_US: accept() failed, or the next connection cannot be
 * prepared; on_backoff tries again. */
static void backoff_start(struct daemon *d, const char *event, const char *why)
{
	static struct log_limit lim;
	struct timeval tv = { 0, ACCEPT_BACKOFF_US };

	slog_limited(&lim, "error", event, "reason", why, NULL);
	d->backing_off = true;
	(void)event_add(d->backoff_ev, &tv);
	listener_update(d);
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	d->backing_off = false;
	if (conn_prepare(d) < 0) {
		backoff_start(d, "accept-paused", "cannot prepare a connection: out of memory");
		return;
	}
	listener_update(d);
}

/* EMFILE, ENFILE, ENOBUFS...: libevent would retry at once, forever. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	int e = EVUTIL_SOCKET_ERROR();

	(void)lev;
	(void)arg;
	backoff_start(the_daemon, "accept-failed", strerror(e));
}

/*
 * Accepting is on exactly while a connection can be kept: below max_connections, its objects
 * prepared, not backing off, and neither the event loop nor the workers' queue behind by more
 * than max_queue_delay.
 * libevent's accept loop looks at this after each connection, so the one that fills the table
 * is the last accepted; the rest wait in the kernel's backlog.
 */
static void listener_update(struct daemon *d)
{
	static struct log_limit full, late;
	const char *which;
	int64_t lag;
	bool want, lagging;
	char why[96];

	if (!d->listener || d->stopping)
		return;
	lag = queue_behind(d->m.loop_lag_us, d->m.workers_wait_us, &which);
	lagging = behind(d, lag);
	want = d->spare && !d->backing_off && !connlimit_full(d->conns) && !lagging;
	if (want == d->accepting || (want ? evconnlistener_enable(d->listener) : evconnlistener_disable(d->listener)) < 0)
		return;
	d->accepting = want;
	if (!want && connlimit_full(d->conns)) {
		snprintf(why, sizeof(why), "max_connections %zu open", connlimit_total(d->conns));
		slog_limited(&full, "warning", "accept-paused", "reason", why, NULL);
	} else if (!want && lagging) {
		snprintf(why, sizeof(why), "the %s is %lld ms behind (max_queue_delay %lld ms)", which,
			 (long long)(lag / 1000), (long long)d->srv.config->max_queue_delay);
		slog_limited(&late, "warning", "accept-paused", "reason", why, NULL);
	}
}

static struct bufferevent *new_tls_bev(struct event_base *base, void *arg)
{
	struct daemon *d = arg;
	struct conn *c = d->spare;

	(void)base;
	/* listener_update keeps accepting off without a spare or room, so neither can happen; a
	 * NULL here would be a plaintext connection, and serving none is the lesser failure. */
	if (!c || connlimit_open(d->conns) < 0) {
		slog("error", "internal", "reason", "accepted a connection without TLS objects or room", NULL);
		abort();
	}
	d->spare = NULL;
	c->counted = true;
	/* Its socket is set once this returns: the timer learns the peer's address then. */
	event_active(c->timer, EV_TIMEOUT, 0);
	if (conn_prepare(d) < 0)
		backoff_start(d, "accept-paused", "cannot prepare a connection: out of memory");
	listener_update(d);
	return c->bev;
}

/* The connection a request came on, while it has one. */
static struct conn *conn_of(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;

	return ssl ? SSL_get_ex_data(ssl, conn_index) : NULL;
}

/* Open descriptors now: the store's, the listener, the event loop's own. */
static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static long fds_open(void)
{
	_cleanup_(closedirp) DIR *dir = opendir("/proc/self/fd");
	long n = 0;

	if (!dir)
		return 64; /* no /proc: a guess on the safe side */
	while (readdir(dir))
		n++;
	return n - 3; /* ".", ".." and the directory itself */
}

/*
 * The soft descriptor limit raised to the hard one (the event loop is epoll; 1024 is a limit for
 * select()), and max_connections lowered to what it leaves beside those open and FD_RESERVE.
 */
static int connections_setup(struct daemon *d, const struct server_config *c)
{
	struct rlimit rl;
	long open_now = fds_open();
	long long room, max = c->max_connections;
	char nofile[24], chosen[24], configured[24], per[24], timeout[24];
	int k;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return log_error_errno(-errno, "cannot read the open-file limit: %m");
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = { rl.rlim_max, rl.rlim_max };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
	}
	room = rl.rlim_cur > (rlim_t)CONNECTIONS_MAX * 2 ? CONNECTIONS_MAX : (long long)rl.rlim_cur - open_now - FD_RESERVE;
	if (room < 1)
		return log_error_errno(-EMFILE,
				       "the open-file limit %llu leaves no room for connections (%ld open, %d kept "
				       "for the store): raise it (LimitNOFILE=)",
				       (unsigned long long)rl.rlim_cur, open_now, FD_RESERVE);
	if (max > room)
		max = room;
	k = connlimit_new((size_t)max, (size_t)c->max_connections_per_address, &d->conns);
	if (k < 0)
		return log_error_errno(k, "cannot set up connection accounting: %m");
	snprintf(nofile, sizeof(nofile), "%llu", (unsigned long long)rl.rlim_cur);
	snprintf(chosen, sizeof(chosen), "%lld", max);
	snprintf(configured, sizeof(configured), "%lld", (long long)c->max_connections);
	snprintf(per, sizeof(per), "%lld", (long long)c->max_connections_per_address);
	snprintf(timeout, sizeof(timeout), "%llds", (long long)c->request_timeout);
	slog(max < c->max_connections ? "warning" : "info", "connection-limits", "nofile", nofile, "max_connections",
	     chosen, "configured", max < c->max_connections ? configured : NULL, "max_connections_per_address", per,
	     "request_timeout", timeout, NULL);
	return 0;
}

/*
 * The TLS context new connections get: at start, and again at each reload (open ones keep
 * theirs). Its session tickets are under the daemon's keys, which a reload keeps.
 */
static int tls_ctx_new(const struct server_config *c, struct tls_tickets *tickets, SSL_CTX **ret)
{
	SSL_CTX *ssl;
	char why[PATH_MAX + 128];

	if (file_check_private(c->tls_key, why, sizeof(why)) == -EACCES)
		return log_error_errno(-EACCES, "TLS key %s", why);
	ssl = SSL_CTX_new(TLS_server_method());
	if (!ssl)
		return -ENOMEM;
	if (SSL_CTX_set_min_proto_version(ssl, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ssl, TLS1_3_VERSION) != 1) {
		SSL_CTX_free(ssl);
		return log_error_errno(-EIO, "cannot restrict TLS to 1.3");
	}
	if (SSL_CTX_use_certificate_chain_file(ssl, c->tls_certificate) != 1) {
		SSL_CTX_free(ssl);
		ERR_clear_error();
		return log_error_errno(-EINVAL, "cannot load TLS certificate '%s'", c->tls_certificate);
	}
	if (SSL_CTX_use_PrivateKey_file(ssl, c->tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ssl) != 1) {
		SSL_CTX_free(ssl);
		ERR_clear_error();
		return log_error_errno(-EINVAL, "cannot load TLS key '%s', or it is not the certificate's key",
				       c->tls_key);
	}
	SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_SERVER);
	if (tls_tickets_attach(tickets, ssl) < 0) {
		SSL_CTX_free(ssl);
		return -ENOMEM;
	}
	/* An idle connection keeps no 16 KiB read and write buffers (10,000 open: storm.bats). */
	SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	if (conn_index < 0 && (conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_ex_free)) < 0) {
		SSL_CTX_free(ssl);
		return -ENOMEM;
	}
	*ret = ssl;
	return 0;
}

/* libevent's own warnings (it has a few for failures a peer can repeat at will). */
static void on_libevent_log(int severity, const char *msg)
{
	static struct log_limit lim;

	if (severity >= EVENT_LOG_WARN)
		slog_limited(&lim, severity >= EVENT_LOG_ERR ? "error" : "warning", "libevent", "message", msg, NULL);
}

/* "ADDRESS:PORT" or "[IPv6]:PORT". */
static int split_listen(const char *s, char *host, size_t size, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t n;
	char *end;
	long p;

	if (!colon)
		return -EINVAL;
	n = (size_t)(colon - s);
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		h++;
		n -= 2;
	}
	if (n == 0 || n >= size)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = 0;
	p = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || p <= 0 || p > 65535)
		return -EINVAL;
	*port = (uint16_t)p;
	return 0;
}

/* No new connections; replies already queued get a moment to leave, then the loop ends. */
static void serve_stop(struct daemon *d)
{
	struct timeval drain = { 0, 200000 };

	sd_notify(0, "STOPPING=1");
	d->stopping = true;
	d->listener = NULL;
	if (d->sock) {
		evhttp_del_accept_socket(d->http, d->sock);
		d->sock = NULL;
	}
	event_base_loopexit(d->base, &drain);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	slog("info", "stopping", "signal", sig == SIGTERM ? "TERM" : "INT", NULL);
	serve_stop(arg);
}

/* What a reload cannot change: the socket, the store and the connection accounting are made once. */
static const char *reload_fixed(const struct server_config *a, const struct server_config *b)
{
	if (!streq(a->listen, b->listen))
		return "listen";
	if (!streq(a->database, b->database))
		return "database";
	if (!streq(a->admin_listen ?: "", b->admin_listen ?: ""))
		return "admin_listen";
	if (!streq(a->kek, b->kek))
		return "kek";
	if (!streq(a->log_key ?: "", b->log_key ?: ""))
		return "log_key";
	if (!streq(a->log_key_next ?: "", b->log_key_next ?: ""))
		return "log_key_next";
	if (!streq(a->log_name ?: "", b->log_name ?: ""))
		return "log_name";
	if (a->max_connections != b->max_connections)
		return "max_connections";
	if (a->workers != b->workers)
		return "workers";
	if (a->max_connections_per_address != b->max_connections_per_address)
		return "max_connections_per_address";
	return NULL;
}

/* A reload in the audit log, committed with the next batch: when the server began issuing from a new CA. */
static void reload_record(struct daemon *d, const char *decision, const char *what)
{
	struct audit_rec a = { .time_us = now_usec(), .peer = "local", .ek_hash = "", .node_id = "",
			       .action = "config-reload", .decision = decision, .reasons = what };
	int k = batch_join(d);

	if (k >= 0)
		k = store_audit_append(d->srv.store, &a);
	if (k < 0)
		slog("warning", "reload-unrecorded", "reason", strerror(-k), NULL);
}

/*
 * The log key files read again: a next key put beside (log-key rotate), or the swap to it
 * (log-key retire). Both NULL when they hold the keys in force. A log key the store's newest
 * checkpoint does not carry the signature of is refused, as at start: the overlap is the rotation.
 */
static int log_keys_reload(struct daemon *d, const struct server_config *c, struct note_signer **ret_signer,
			   struct note_signer **ret_next, char *why, size_t why_size)
{
	_cleanup_(note_signer_freep) struct note_signer *signer = NULL, *next = NULL;
	char reason[PATH_MAX + 256], shown[KEYREF_WHY_MAX / 2];
	int r;

	if ((r = log_keys_load(c, &signer, &next, why, why_size)) < 0)
		return r;
	if (log_key_same(signer, store_log_signer(d->srv.store)) && log_key_same(next, store_log_cosigner(d->srv.store)))
		return 0;
	r = checkpoint_check(d->srv.store, note_signer_verifier(signer), reason, sizeof(reason));
	if (r < 0 && r != -ENOENT) {
		keyref_display(c->log_key, shown, sizeof(shown));
		snprintf(why, why_size, "the log key '%s': %s", shown, reason);
		return r;
	}
	*ret_signer = TAKE_PTR(signer);
	*ret_next = TAKE_PTR(next);
	return 0;
}

/*
 * SIGHUP: the configuration, the CA chain and bundle, the operator keys and the TLS certificate
 * read again; connections already open go on with what they had. All of it loads or none of it
 * is taken: a refusal is one line and what was in force stays.
 */
static void on_reload(evutil_socket_t sig, short what, void *arg)
{
	_cleanup_server_config_ struct server_config *c = NULL;
	struct daemon *d = arg;
	struct server_config swap;
	struct pki *pki = NULL;
	struct ratelimit *limit = NULL;
	SSL_CTX *ssl = NULL;
	_cleanup_(note_signer_freep) struct note_signer *signer = NULL, *next = NULL;
	const char *fixed = NULL;
	char why[ATTEST_REASON_MAX + PATH_MAX], shown[ATTEST_REASON_MAX], record[sizeof(why) + PATH_MAX + 128];
	int r;

	(void)sig;
	(void)what;
	sd_notify(0, "RELOADING=1");
	log_capture(why, sizeof(why));
	r = server_config_load(d->config_path, &c);
	if (r >= 0 && (fixed = reload_fixed(d->srv.config, c)))
		r = -EINVAL;
	if (r >= 0)
		r = pki_load(c, &pki);
	if (r >= 0)
		r = tls_ctx_new(c, d->tickets, &ssl);
	if (r >= 0)
		r = ratelimit_new(c->rate_limit, (double)c->rate_burst, &limit);
	log_capture(NULL, 0);
	if (r >= 0 && !fixed && c->log_key)
		r = log_keys_reload(d, c, &signer, &next, why, sizeof(why));
	if (fixed)
		snprintf(why, sizeof(why), "'%s' changed: it takes a restart", fixed);
	else if (r < 0 && !why[0])
		snprintf(why, sizeof(why), "%s", strerror(-r));
	if (r < 0) {
		pki_free(pki);
		SSL_CTX_free(ssl);
		ratelimit_free(limit);
		slog("error", "reload-refused", "config", d->config_path, "reason", why, "kept", "the configuration in force",
		     NULL);
		snprintf(record, sizeof(record), "%s: %s; the configuration in force stays", d->config_path, why);
		reload_record(d, "deny", record);
		sd_notify(0, "READY=1");
		return;
	}
	/* Decisions made under the old configuration are answered under it; the finishes on a
	 * worker complete first, as their verification may still read the CA being replaced. */
	workers_drain(d->workers);
	batch_commit(d);
	swap = *d->config;
	*d->config = *c;
	*c = swap;
	pki_free(d->srv.pki);
	d->srv.pki = pki;
	SSL_CTX_free(d->ssl);
	d->ssl = ssl;
	/* The next connection's objects were made from the context just replaced: made again, or
	 * the first node after the reload would get the old TLS certificate. */
	if (d->spare) {
		bufferevent_free(TAKE_PTR(d->spare)->bev);
		if (conn_prepare(d) < 0)
			backoff_start(d, "accept-paused", "cannot prepare a connection: out of memory");
		listener_update(d);
	}
	ratelimit_free(d->limit);
	d->limit = limit;
	if (signer) {
		/* log-key rotate or retire changed the files: checkpoints from now on are signed as they say. */
		store_set_log_signer(d->srv.store, TAKE_PTR(signer));
		store_set_log_cosigner(d->srv.store, TAKE_PTR(next));
		log_keys_record(d, "at reload");
	}
	metrics_certificates(&d->m, d->srv.pki, d->ssl);
	d->srv.enroll_max = d->srv.config->max_pending_enrollments;
	evhttp_set_max_body_size(d->http, 4 * d->srv.config->max_body);
	evhttp_set_timeout(d->http, (int)d->srv.config->request_timeout);
	/* The operator keys may be others: the policy is judged again at the next request. */
	policy_cache_done(&d->srv.policy);
	pki_describe(pki, shown, sizeof(shown));
	slog("info", "reloaded", "config", d->config_path, "ca", shown, NULL);
	snprintf(record, sizeof(record), "%s reloaded: issuing from %s; %zu operator keys, threshold %lld",
		 d->config_path, shown, d->srv.config->operators->n, (long long)d->srv.config->policy_threshold);
	reload_record(d, "allow", record);
	sd_notify(0, "READY=1");
}

int serve_run(const char *config)
{
	_cleanup_server_config_ struct server_config *c = NULL;
	_cleanup_free_ struct daemon *dp = calloc(1, sizeof(*dp));
	struct daemon *d = dp;
	struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
	char host[256], shown[512];
	uint16_t port;
	int rc = 1, k;

	if (!d) {
		log_error("out of memory");
		return 1;
	}
	if (server_config_load(config, &c) < 0)
		return 1;
	if (split_listen(c->listen, host, sizeof(host), &port) < 0) {
		log_error("%s: 'listen' is not ADDRESS:PORT", config);
		return 1;
	}
	d->srv.config = d->config = c;
	d->config_path = config;
	if (tls_tickets_new(TLS_TICKETS_PERIOD, mono_ms() / 1000, &d->tickets) < 0) {
		log_error("cannot make the TLS session ticket keys");
		goto out;
	}
	if (pki_load(c, &d->srv.pki) < 0 || tls_ctx_new(c, d->tickets, &d->ssl) < 0)
		goto out;
	if (store_open(c->database, c->kek, &d->srv.store) < 0 || log_open(d) < 0)
		goto out;
	if (ratelimit_new(c->rate_limit, (double)c->rate_burst, &d->limit) < 0)
		goto out;
	metrics_certificates(&d->m, d->srv.pki, d->ssl);
	d->srv.enroll_max = c->max_pending_enrollments;
	event_set_log_callback(on_libevent_log);
	d->base = event_base_new();
	/* 0 signals, 1 connections (libevent's default: the middle), 2 the group commit. */
	if (!d->base || event_base_priority_init(d->base, 3) < 0)
		goto out;
	d->commit_ev = event_new(d->base, -1, 0, on_commit, d);
	d->tick_ev = event_new(d->base, -1, EV_PERSIST, on_tick, d);
	if (!d->commit_ev || !d->tick_ev || event_priority_set(d->commit_ev, 2) < 0 ||
	    event_add(d->tick_ev, &(struct timeval){ 1, 0 }) < 0)
		goto out;
	on_tick(-1, 0, d);
	/* At the connections' priority (libevent's default, the middle one). */
	d->lag_ev = event_new(d->base, -1, 0, on_lag, d);
	if (!d->lag_ev)
		goto out;
	d->lag_due_us = mono_us();
	on_lag(-1, 0, d);
	if (c->workers > 0 &&
	    workers_new(d->base, (unsigned)c->workers, (size_t)c->workers * WORKERS_QUEUE_PER_THREAD, &d->workers) < 0)
		goto out;
	/* The loop no longer waits for the disk at each batch's commit; the replies still do. */
	k = store_defer_sync(d->srv.store, &d->sync_path);
	if (k < 0 && k != -EOPNOTSUPP) {
		log_error("cannot sync the store's WAL: %s", strerror(-k));
		goto out;
	}
	if (k >= 0 && workers_new(d->base, 1, SYNC_QUEUE, &d->syncer) < 0)
		goto out;
	d->http = evhttp_new(d->base);
	if (!d->http)
		goto out;
	evhttp_set_bevcb(d->http, new_tls_bev, d);
	evhttp_set_gencb(d->http, on_request, d);
	/* libevent refuses (413) anything beyond 4x max_body without reading it; up to there the
	 * request reaches on_request, which answers 413 itself and records it. */
	evhttp_set_max_body_size(d->http, 4 * c->max_body);
	evhttp_set_max_headers_size(d->http, 16384);
	evhttp_set_timeout(d->http, (int)c->request_timeout);
	/* Every method reaches on_request, which answers 405 in JSON and records it. */
	evhttp_set_allowed_methods(d->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
						    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	d->sock = evhttp_bind_socket_with_handle(d->http, host, port);
	if (!d->sock) {
		log_error("cannot listen on %s: %s", c->listen, strerror(errno));
		goto out;
	}
	the_daemon = d;
	d->listener = evhttp_bound_socket_get_listener(d->sock);
	d->accepting = true;
	evconnlistener_set_error_cb(d->listener, on_accept_error);
	d->backoff_ev = event_new(d->base, -1, 0, on_backoff, d);
	if (!d->backoff_ev || connections_setup(d, c) < 0 || conn_prepare(d) < 0 ||
	    dashboard_start(d->base, &d->srv, &d->m, &d->dash) < 0)
		goto out;
	listener_update(d);
	sigterm = evsignal_new(d->base, SIGTERM, on_signal, d);
	sigint = evsignal_new(d->base, SIGINT, on_signal, d);
	sighup = evsignal_new(d->base, SIGHUP, on_reload, d);
	if (!sigterm || !sigint || !sighup || event_priority_set(sigterm, 0) < 0 || event_priority_set(sigint, 0) < 0 ||
	    event_priority_set(sighup, 0) < 0 || event_add(sigterm, NULL) < 0 || event_add(sigint, NULL) < 0 ||
	    event_add(sighup, NULL) < 0)
		goto out;
	/* One write per log line, whole lines only. */
	setvbuf(stderr, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	slog("info", "listening", "address", c->listen, "database",
	     store_spec_display(c->database, shown, sizeof(shown)), NULL);
	sd_notifyf(0, "READY=1\nSTATUS=listening on %s", c->listen);
	if (event_base_dispatch(d->base) < 0)
		goto out;
	/* The work still on a worker completes, commits with the last batch, and is answered. */
	workers_drain(d->workers);
	batch_commit(d);
	workers_drain(d->syncer);
	if (!d->sync_error) {
		slog("info", "stopped", NULL);
		rc = 0;
	}
out:
	/* Its threads first: none may still read the pki or a request freed below. */
	workers_free(TAKE_PTR(d->workers));
	workers_free(TAKE_PTR(d->syncer));
	free(TAKE_PTR(d->sync_path));
	/* Connections are freed with evhttp and the event loop: they touch neither from here. */
	d->stopping = true;
	d->listener = NULL;
	for (struct conn *i = LIST_FIRST(&d->all); i; i = LIST_NEXT(i, link))
		if (i->timer) {
			event_free(i->timer);
			i->timer = NULL;
		}
	if (d->spare)
		bufferevent_free(TAKE_PTR(d->spare)->bev);
	if (d->backoff_ev)
		event_free(d->backoff_ev);
	if (d->commit_ev)
		event_free(d->commit_ev);
	if (d->tick_ev)
		event_free(d->tick_ev);
	if (d->lag_ev)
		event_free(d->lag_ev);
	ratelimit_free(d->limit);
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (sighup)
		event_free(sighup);
	if (d->http)
		evhttp_free(d->http);
	dashboard_free(d->dash);
	if (d->base)
		event_base_free(d->base);
	connlimit_free(d->conns);
	policy_cache_done(&d->srv.policy);
	store_close(d->srv.store);
	pki_free(d->srv.pki);
	SSL_CTX_free(d->ssl);
	tls_tickets_free(d->tickets);
	return rc;
}
