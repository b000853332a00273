/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server serve: HTTPS (TLS 1.3 only, OpenSSL 3) through libevent's evhttp with
 * bufferevent_openssl. One event loop, one thread: each request is handled to the end (store
 * transaction committed durably) inside its callback, so a reply never leaves before its
 * audit record is on disk.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <systemd/sd-daemon.h>

#include "handshake.h"
#include "log.h"
#include "server.h"

static const char usage[] = "keystrap-server serve --config FILE";

struct daemon {
	struct server srv;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	SSL_CTX *ssl;
};

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

/* One line per event on stderr (the journal when run as a service): time, level, then pairs. */
static void slog(const char *level, const char *event, ...)
{
	char ts[40];
	struct timespec now;
	struct tm tm;
	va_list ap;
	const char *k;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	flockfile(stderr);
	fprintf(stderr, "time=%s.%06ldZ level=%s event=%s", ts, now.tv_nsec / 1000, level, event);
	va_start(ap, event);
	while ((k = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);

		if (!v || !*v)
			continue;
		fprintf(stderr, " %s=", k);
		put_value(stderr, v);
	}
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

static void send_json(struct evhttp_request *req, int status, const char *body)
{
	struct evbuffer *out = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (out)
		evbuffer_add(out, body, strlen(body));
	evhttp_send_reply(req, status, NULL, out);
	evbuffer_free(out);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200:
		return "allow";
	case 500:
	case 503:
		return "error";
	default:
		return "deny";
	}
}

static void peer_of(struct evhttp_request *req, char *buf, size_t size)
{
	char *addr = NULL;
	ev_uint16_t port = 0;

	evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
	snprintf(buf, size, "%s:%u", addr ? addr : "?", port);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct daemon *d = arg;
	struct reply r = { .action = "http" };
	struct audit_rec a;
	const char *path = evhttp_request_get_uri(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t size = evbuffer_get_length(in);
	int64_t start = now_usec();
	char peer[80], status_s[8], dur[24];
	_cleanup_free_ char *err_body = NULL;
	const char *body;
	int k;

	peer_of(req, peer, sizeof(peer));
	if (evhttp_request_get_command(req) == EVHTTP_REQ_GET && streq(path, "/healthz")) {
		send_json(req, 200, "{\"status\":\"ok\"}");
		return;
	}

	k = store_begin(d->srv.store);
	if (k < 0) {
		slog("error", "store", "peer", peer, "reason", "cannot begin a transaction", NULL);
		send_json(req, 503, "{\"error\":\"store unavailable\"}");
		return;
	}
	if (!streq(path, "/v1/attest/start") && !streq(path, "/v1/attest/finish")) {
		r.status = 404;
		snprintf(r.reason, sizeof(r.reason), "no such endpoint");
	} else if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		r.status = 405;
		snprintf(r.reason, sizeof(r.reason), "only POST is allowed here");
	} else if (size > (size_t)d->srv.config->max_body) {
		r.status = 413;
		snprintf(r.reason, sizeof(r.reason), "request body of %zu bytes is larger than %lld", size,
			 (long long)d->srv.config->max_body);
	} else {
		const char *b = (const char *)evbuffer_pullup(in, -1);

		if (streq(path, "/v1/attest/start"))
			handshake_start(&d->srv, peer, b ? b : "", size, &r);
		else
			handshake_finish(&d->srv, peer, b ? b : "", size, &r);
	}

	a = (struct audit_rec){
		.time_us = start,
		.peer = peer,
		.ek_hash = r.ek_hash,
		.node_id = r.node_id,
		.action = r.action,
		.decision = status_text(r.status),
		.reasons = r.reason,
	};
	k = store_audit_append(d->srv.store, &a);
	if (k >= 0)
		k = store_commit(d->srv.store);
	if (k < 0) {
		/* Nothing leaves that the audit log does not hold. */
		store_rollback(d->srv.store);
		free(r.body);
		r.body = NULL;
		r.status = 503;
		snprintf(r.reason, sizeof(r.reason), "store unavailable: the decision could not be recorded");
	}
	if (r.status == 200)
		body = r.body;
	else {
		if (attest_error_format(r.reason, &err_body) < 0)
			err_body = strdup("{\"error\":\"out of memory\"}");
		body = err_body ? err_body : "{}";
	}
	send_json(req, r.status, body);
	snprintf(status_s, sizeof(status_s), "%d", r.status);
	snprintf(dur, sizeof(dur), "%lld", (long long)(now_usec() - start));
	slog(r.status >= 500 ? "error" : "info", "request", "peer", peer, "path", path, "status", status_s, "action",
	     r.action, "decision", status_text(r.status), "ek", r.ek_hash, "node", r.node_id, "us", dur, "reason",
	     r.reason, NULL);
	free(r.body);
}

static struct bufferevent *new_tls_bev(struct event_base *base, void *arg)
{
	struct daemon *d = arg;
	SSL *ssl = SSL_new(d->ssl);

	if (!ssl)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

static int tls_setup(struct daemon *d, const struct server_config *c)
{
	d->ssl = SSL_CTX_new(TLS_server_method());
	if (!d->ssl)
		return -ENOMEM;
	if (SSL_CTX_set_min_proto_version(d->ssl, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(d->ssl, TLS1_3_VERSION) != 1)
		return log_error_errno(-EIO, "cannot restrict TLS to 1.3");
	if (SSL_CTX_use_certificate_chain_file(d->ssl, c->tls_certificate) != 1)
		return log_error_errno(-EINVAL, "cannot load TLS certificate '%s'", c->tls_certificate);
	if (SSL_CTX_use_PrivateKey_file(d->ssl, c->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(d->ssl) != 1)
		return log_error_errno(-EINVAL, "cannot load TLS key '%s', or it is not the certificate's key",
				       c->tls_key);
	SSL_CTX_set_session_cache_mode(d->ssl, SSL_SESS_CACHE_SERVER);
	return 0;
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

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval drain = { 0, 200000 };

	(void)what;
	slog("info", "stopping", "signal", sig == SIGTERM ? "TERM" : "INT", NULL);
	sd_notify(0, "STOPPING=1");
	/* No new connections; replies already queued get a moment to leave. */
	if (d->sock) {
		evhttp_del_accept_socket(d->http, d->sock);
		d->sock = NULL;
	}
	event_base_loopexit(d->base, &drain);
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	_cleanup_server_config_ struct server_config *c = NULL;
	struct daemon d = { 0 };
	struct event *sigterm = NULL, *sigint = NULL;
	const char *config = NULL;
	char host[256];
	uint16_t port;
	int o, rc = 1;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			printf("Usage: %s\n", usage);
			return 0;
		default:
			fprintf(stderr, "Usage: %s\n", usage);
			return EXIT_USAGE;
		}
	if (!config || optind != argc) {
		fprintf(stderr, "keystrap-server: serve takes --config FILE and nothing else\nUsage: %s\n", usage);
		return EXIT_USAGE;
	}
	if (server_config_load(config, &c) < 0)
		return 1;
	if (split_listen(c->listen, host, sizeof(host), &port) < 0) {
		log_error("%s: 'listen' is not ADDRESS:PORT", config);
		return 1;
	}
	d.srv.config = c;
	if (pki_load(c, &d.srv.pki) < 0 || tls_setup(&d, c) < 0)
		goto out;
	if (store_open(c->database, &d.srv.store) < 0) {
		log_error("cannot open the store '%s'", c->database);
		goto out;
	}
	d.base = event_base_new();
	d.http = d.base ? evhttp_new(d.base) : NULL;
	if (!d.http)
		goto out;
	evhttp_set_bevcb(d.http, new_tls_bev, &d);
	evhttp_set_gencb(d.http, on_request, &d);
	/* libevent refuses (413) anything beyond 4x max_body without reading it; up to there the
	 * request reaches on_request, which answers 413 itself and records it. */
	evhttp_set_max_body_size(d.http, 4 * c->max_body);
	evhttp_set_max_headers_size(d.http, 16384);
	evhttp_set_timeout(d.http, 10);
	evhttp_set_allowed_methods(d.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	d.sock = evhttp_bind_socket_with_handle(d.http, host, port);
	if (!d.sock) {
		log_error("cannot listen on %s: %s", c->listen, strerror(errno));
		goto out;
	}
	sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
	sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
	if (!sigterm || !sigint || event_add(sigterm, NULL) < 0 || event_add(sigint, NULL) < 0)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	slog("info", "listening", "address", c->listen, "database", c->database, NULL);
	sd_notifyf(0, "READY=1\nSTATUS=listening on %s", c->listen);
	if (event_base_dispatch(d.base) < 0)
		goto out;
	slog("info", "stopped", NULL);
	rc = 0;
out:
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (d.http)
		evhttp_free(d.http);
	if (d.base)
		event_base_free(d.base);
	store_close(d.srv.store);
	pki_free(d.srv.pki);
	SSL_CTX_free(d.ssl);
	return rc;
}
