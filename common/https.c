/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "deadline.h"
#include "http.h"
#include "https.h"
#include "macro.h"
#include "ossl.h"

#ifndef KEYSTRAP_VERSION
#define KEYSTRAP_VERSION "0"
#endif

struct https_session {
	SSL_SESSION *session;
	char *origin; /* host, port and CA file, each NUL-terminated */
	size_t origin_size;
};

void https_session_free(struct https_session *s)
{
	if (!s)
		return;
	SSL_SESSION_free(s->session);
	free(s->origin);
	free(s);
}

struct conn {
	struct https_cert_failure cert; /* the first certificate that failed verification */
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	int64_t deadline; /* CLOCK_MONOTONIC, ms */
	char *why;
	size_t why_size;
};

static void conn_done(struct conn *c)
{
	SSL_free(c->ssl);
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
}

static int say(struct conn *c, int r, const char *msg)
{
	snprintf(c->why, c->why_size, "%s", msg);
	return r;
}

/* The first OpenSSL error queued, as text, or what fallback says. */
static const char *ossl_reason(const char *fallback)
{
	unsigned long e = ERR_peek_error();
	const char *s = e ? ERR_reason_error_string(e) : NULL;

	return s ? s : fallback;
}

/* Waits until the connection's socket is ready for events, or the deadline passes (-ETIMEDOUT). */
static int wait_fd(struct conn *c, short events)
{
	return fd_wait(c->fd, events, c->deadline);
}

static int connect_one(struct conn *c, const struct addrinfo *a)
{
	socklen_t len = sizeof(int);
	int fd, err = 0, r;

	fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
	if (fd < 0)
		return -errno;
	c->fd = fd;
	if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS)
		r = -errno;
	else if ((r = wait_fd(c, POLLOUT)) == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0)
		r = -err;
	if (r < 0) {
		close(fd);
		c->fd = -1;
	}
	return r;
}

static int connect_host(struct conn *c, const struct http_url *u)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *res = NULL;
	int r = -EHOSTUNREACH, g;

	if (u->is_ip)
		hints.ai_flags |= AI_NUMERICHOST;
	g = getaddrinfo(u->host, u->port, &hints, &res);
	if (g != 0) {
		snprintf(c->why, c->why_size, "cannot resolve '%s': %s", u->host, gai_strerror(g));
		return -EHOSTUNREACH;
	}
	for (const struct addrinfo *a = res; a; a = a->ai_next) {
		r = connect_one(c, a);
		if (r == 0 || r == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (r < 0)
		snprintf(c->why, c->why_size, "cannot connect to %s port %s: %s", u->host, u->port,
			 r == -ETIMEDOUT ? "timed out" : strerror(-r));
	return r;
}

/* Drives one SSL call to completion across non-blocking I/O, within the deadline. */
static int ssl_wait(struct conn *c, int rv)
{
	int e = SSL_get_error(c->ssl, rv), r;

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		r = wait_fd(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT);
		return r < 0 ? r : 1;
	}
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	return -ECONNRESET;
}

/* Keeps OpenSSL's verdict; records which certificate failed first and its validity period. */
static int on_verify(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *cert = X509_STORE_CTX_get_current_cert(x);

	if (!ok && c && !c->cert.error) {
		c->cert.error = X509_STORE_CTX_get_error(x);
		c->cert.not_before = cert ? (time_t)cert_time_unix(X509_get0_notBefore(cert)) : 0;
		c->cert.not_after = cert ? (time_t)cert_time_unix(X509_get0_notAfter(cert)) : 0;
	}
	return ok;
}

static int handshake(struct conn *c, const struct http_url *u, const char *ca_file, SSL_SESSION *resume,
		     struct https_cert_failure *ret_cert)
{
	X509_VERIFY_PARAM *vp;
	long v;
	int rv, r;

	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx || SSL_CTX_set_min_proto_version(c->ctx, TLS1_3_VERSION) != 1)
		return say(c, -ENOMEM, "cannot set up TLS");
	/* Pinned: the CA file given is the only trust anchor; the system store is never read. */
	if (SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1) {
		snprintf(c->why, c->why_size, "cannot load the server CA '%s': %s", ca_file, ossl_reason("unreadable"));
		return -ENOENT;
	}
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, on_verify);
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_set_app_data(c->ssl, c) != 1)
		return say(c, -ENOMEM, "cannot set up TLS");
	vp = SSL_get0_param(c->ssl);
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (u->is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, u->host) != 1
		     : (SSL_set_tlsext_host_name(c->ssl, u->host) != 1 || SSL_set1_host(c->ssl, u->host) != 1))
		return say(c, -EINVAL, "cannot set the name the server's certificate must carry");
	/* A session this host gave under this CA: refused by the server, it is a full handshake. */
	if (resume && SSL_set_session(c->ssl, resume) != 1)
		return say(c, -ENOMEM, "cannot set up TLS");
	while ((rv = SSL_connect(c->ssl)) != 1) {
		r = ssl_wait(c, rv);
		if (r > 0)
			continue;
		if (r == -ETIMEDOUT)
			return say(c, r, "the TLS handshake timed out");
		v = SSL_get_verify_result(c->ssl);
		if (v != X509_V_OK) {
			if (ret_cert) {
				*ret_cert = c->cert;
				ret_cert->error = v;
			}
			snprintf(c->why, c->why_size, "the server's certificate does not verify against '%s': %s", ca_file,
				 X509_verify_cert_error_string(v));
			return -EKEYREJECTED;
		}
		snprintf(c->why, c->why_size, "the TLS handshake with %s failed: %s", u->host,
			 ossl_reason("the connection closed"));
		return -ECONNRESET;
	}
	return 0;
}

static int send_all(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		size_t w = 0;
		int rv = SSL_write_ex(c->ssl, p, n, &w), r;

		if (rv == 1) {
			p += w;
			n -= w;
			continue;
		}
		r = ssl_wait(c, rv);
		if (r == -ETIMEDOUT)
			return say(c, r, "sending the request timed out");
		if (r <= 0)
			return say(c, -ECONNRESET, "the server closed the connection while the request was sent");
	}
	return 0;
}

/* Reads until the response is complete by its own framing, or the server ends the session. */
static int receive(struct conn *c, size_t max, uint8_t **ret_buf, size_t *ret_n, struct http_response *ret)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t n = 0, cap = 0;
	int r;

	for (;;) {
		size_t got = 0;
		int rv, eof = 0;

		if (n == cap) {
			uint8_t *q;

			if (cap >= max)
				return say(c, -EMSGSIZE, "the server's answer is larger than the limit");
			cap = cap ? (cap * 2 < max ? cap * 2 : max) : (max < 16384 ? max : 16384);
			q = realloc(buf, cap + 1);
			if (!q)
				return -ENOMEM;
			buf = q;
		}
		rv = SSL_read_ex(c->ssl, buf + n, cap - n, &got);
		if (rv == 1)
			n += got;
		else {
			r = ssl_wait(c, rv);
			if (r > 0)
				continue;
			if (r == -ETIMEDOUT)
				return say(c, r, "waiting for the server's answer timed out");
			/* Only a clean close_notify may end a response that has no Content-Length. */
			eof = r == 0;
			if (!eof) {
				r = http_response_parse(buf, n, 0, ret, c->why, c->why_size);
				if (r == -EAGAIN)
					return say(c, -ECONNRESET, "the server closed the connection before its answer was complete");
				goto done;
			}
		}
		r = http_response_parse(buf, n, eof, ret, c->why, c->why_size);
		if (r != -EAGAIN)
			goto done;
	}
done:
	if (r < 0)
		return r;
	buf[n] = 0;
	*ret_buf = TAKE_PTR(buf);
	*ret_n = n;
	return 0;
}

static bool session_fits(const struct https_session *s, const char *origin, size_t origin_size)
{
	return s && s->origin_size == origin_size && memcmp(s->origin, origin, origin_size) == 0;
}

/*
 * The connection's session, when the server gave one it will take back (a TLS 1.3 ticket, read
 * with the answer), becomes *held, the origin with it; otherwise *held stays as it was.
 */
static void session_keep(struct https_session **held, SSL *ssl, char **origin, size_t origin_size)
{
	SSL_SESSION *ss = SSL_get1_session(ssl);
	struct https_session *s;

	if (!ss || SSL_SESSION_is_resumable(ss) != 1 || !(s = calloc(1, sizeof(*s)))) {
		SSL_SESSION_free(ss);
		return;
	}
	s->session = ss;
	s->origin = TAKE_PTR(*origin);
	s->origin_size = origin_size;
	https_session_free(*held);
	*held = s;
}

int https_post_json(const struct https_options *o, const char *url, const char *body, struct https_reply *ret,
		    struct https_cert_failure *ret_cert, char *why, size_t why_size)
{
	struct conn c = { .fd = -1, .deadline = mono_ms() + o->timeout_ms, .why = why, .why_size = why_size };
	_cleanup_free_ uint8_t *buf = NULL;
	_cleanup_free_ char *head = NULL;
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	struct http_response hr = {};
	struct http_url u;
	size_t n = 0, blen = strlen(body), origin_size = 0;
	_cleanup_free_ char *origin = NULL;
	bool resumed = false;
	char *copy;
	int r;

	assert(o && o->ca_file && o->max_response > 0 && ret);
	r = http_url_parse(url, &u, why, why_size);
	if (r < 0)
		return r;
	if (asprintf(&head,
		     "POST %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nUser-Agent: keystrap/" KEYSTRAP_VERSION
		     "\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: %zu\r\n"
		     "Connection: close\r\n\r\n",
		     u.path, strchr(u.host, ':') ? "[" : "", u.host, strchr(u.host, ':') ? "]" : "",
		     streq(u.port, "443") ? "" : ":", streq(u.port, "443") ? "" : u.port, blen) < 0) {
		head = NULL;
		return -ENOMEM;
	}
	/* A server that closes while we write must not kill the boot with SIGPIPE. */
	sigaction(SIGPIPE, &ign, &old);
	ERR_clear_error();
	r = connect_host(&c, &u);
	if (r == 0 && o->session) {
		origin_size = strlen(u.host) + strlen(u.port) + strlen(o->ca_file) + 3;
		if (!(origin = malloc(origin_size)))
			r = -ENOMEM;
		else
			snprintf(origin, origin_size, "%s%c%s%c%s", u.host, 0, u.port, 0, o->ca_file);
	}
	if (r == 0)
		r = handshake(&c, &u, o->ca_file,
			      origin && session_fits(*o->session, origin, origin_size) ? (*o->session)->session : NULL,
			      ret_cert);
	if (r == 0)
		r = send_all(&c, head, strlen(head));
	if (r == 0)
		r = send_all(&c, body, blen);
	if (r == 0)
		r = receive(&c, o->max_response, &buf, &n, &hr);
	if (r == 0) {
		resumed = SSL_session_reused(c.ssl) == 1;
		/* Our close_notify, once: OpenSSL makes a session freed without one not resumable. */
		if (origin) {
			(void)SSL_shutdown(c.ssl);
			ERR_clear_error();
			session_keep(o->session, c.ssl, &origin, origin_size);
		}
	}
	conn_done(&c);
	ERR_clear_error();
	sigaction(SIGPIPE, &old, NULL);
	if (r < 0)
		return r;
	copy = malloc(hr.body_len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, buf + hr.body_off, hr.body_len);
	copy[hr.body_len] = 0;
	*ret = (struct https_reply){ .status = hr.status,
				     .body = copy,
				     .body_len = hr.body_len,
				     .retry_after = hr.retry_after,
				     .date = hr.date,
				     .resumed = resumed };
	return 0;
}

void https_reply_done(struct https_reply *r)
{
	if (!r)
		return;
	free(r->body);
	*r = (struct https_reply){};
}
