/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * The HTTP/1.1 that keystrap speaks to keystrap-server, and nothing more: one POST per
 * connection ("Connection: close"), a response framed by Content-Length or by the end of the
 * connection. Pure code (no I/O), so the fuzzers reach it.
 */

#define HTTP_REASON_MAX 160

struct http_response {
	int status;	  /* 100..599 */
	size_t body_off;  /* where the body starts in the buffer parsed */
	size_t body_len;
	long retry_after; /* Retry-After in seconds; -1 when absent or not delta-seconds */
	time_t date;	  /* the server's Date, as seconds since the epoch; 0 when absent or unparsable */
};

/* url = "https://HOST[:PORT]/PATH" (HOST a name, an IPv4 address or "[IPv6]"); PORT defaults to 443. */
struct http_url {
	char host[256];
	char port[6];
	char path[1024];
	int is_ip; /* HOST is an address literal: verified as an IP SAN, and no SNI */
};

/* 0, or -EINVAL with why naming what is wrong with url. */
int http_url_parse(const char *url, struct http_url *ret, char *why, size_t why_size);

/*
 * Parses buf[0..n) as a whole response (the connection has ended or Content-Length is met).
 * 0 when complete; -EAGAIN when more bytes are needed (headers unfinished, or fewer body bytes
 * than Content-Length and !at_eof); -EPROTO (why says what) when it is not a response this
 * client accepts: malformed status line or header, chunked or other transfer codings, a
 * Content-Length that is duplicated or disagrees with what arrived.
 */
int http_response_parse(const uint8_t *buf, size_t n, int at_eof, struct http_response *ret, char *why,
			size_t why_size);

/* The IMF-fixdate of RFC 9110 ("Sun, 06 Nov 1994 08:49:37 GMT"); 0 when s is not one. */
time_t http_date_parse(const char *s, size_t n);
