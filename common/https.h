/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/*
 * keystrap's HTTPS client: one JSON POST to keystrap-server over OpenSSL (the TLS stack the
 * binary already links), nothing else. TLS 1.3 only; the server's certificate must chain to
 * the CA file given (never the system store) and name the URL's host; no redirects, proxies or
 * cookies; one deadline for the whole exchange; a bounded response.
 */

/*
 * A TLS session to resume (the server's session ticket), for the requests of one process to
 * one server: in memory only, never written anywhere; offered only to the same host and port
 * under the same CA file it was made with.
 */
struct https_session;
void https_session_free(struct https_session *s);

struct https_options {
	const char *ca_file;
	int timeout_ms;	     /* resolving, connecting, the handshake, the request and the response */
	size_t max_response; /* headers and body together */
	/* NULL: no session kept. Else *session is offered (when it fits) and, after an answer,
	 * replaced by the newest resumable one; the caller frees it with https_session_free. */
	struct https_session **session;
};

struct https_reply {
	int status;
	char *body; /* body_len bytes and a NUL */
	size_t body_len;
	long retry_after; /* seconds, -1 when the server sent none */
	time_t date;	  /* the server's Date header, 0 when absent */
	bool resumed;	  /* the TLS session was resumed: no full handshake */
};

/* Why the server's certificate did not verify: OpenSSL's X509_V_ERR_* and that certificate's validity. */
struct https_cert_failure {
	long error;
	time_t not_before, not_after; /* 0 when unknown */
};

/*
 * 0 on any HTTP answer (ret filled; free with https_reply_done). On failure ret is untouched,
 * why names the cause in one line, and the return says which kind it is:
 *   -EINVAL bad URL, -ENOENT/-EIO the CA file, -ECONNREFUSED/-EHOSTUNREACH/-ENETUNREACH/
 *   -EADDRNOTAVAIL nobody answered, -ETIMEDOUT the deadline passed, -EKEYREJECTED the server's
 *   certificate did not verify (ret_cert, when not NULL, says why and the certificate's validity,
 *   so a caller can tell a wrong local clock from a wrong server),
 *   -ECONNRESET/-EPROTO the TLS session or the HTTP response was broken, -EMSGSIZE the response
 *   was larger than max_response.
 */
int https_post_json(const struct https_options *o, const char *url, const char *body, struct https_reply *ret,
		    struct https_cert_failure *ret_cert, char *why, size_t why_size);

void https_reply_done(struct https_reply *r);
