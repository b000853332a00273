/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "macro.h"

/* Far above what keystrap-server sends; a peer that needs more is not our server. */
#define HEADERS_MAX 16384
#define CONTENT_LENGTH_MAX (64u << 20)

static int fail(char *why, size_t size, const char *msg)
{
	snprintf(why, size, "%s", msg);
	return -EPROTO;
}

int http_url_parse(const char *url, struct http_url *ret, char *why, size_t why_size)
{
	struct http_url u = {};
	const char *h, *e, *p;
	size_t n;

	if (strncmp(url, "https://", 8) != 0) {
		snprintf(why, why_size, "'%s' is not an https:// URL", url);
		return -EINVAL;
	}
	h = url + 8;
	p = strchr(h, '/');
	if (!p)
		p = h + strlen(h);
	if (*h == '[') {
		e = memchr(h, ']', (size_t)(p - h));
		if (!e)
			goto bad;
		n = (size_t)(e - h - 1);
		if (n == 0 || n >= sizeof(u.host))
			goto bad;
		memcpy(u.host, h + 1, n);
		u.is_ip = 1;
		e++;
		if (e != p && *e != ':')
			goto bad;
	} else {
		e = memchr(h, ':', (size_t)(p - h));
		if (!e)
			e = p;
		n = (size_t)(e - h);
		if (n == 0 || n >= sizeof(u.host))
			goto bad;
		memcpy(u.host, h, n);
		/* A dotted quad is an address, never a name to look up. */
		u.is_ip = strspn(u.host, "0123456789.") == n;
	}
	for (size_t i = 0; u.host[i]; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:", u.host[i]))
			goto bad;
	if (*e == ':') {
		n = (size_t)(p - e - 1);
		if (n == 0 || n >= sizeof(u.port) || strspn(e + 1, "0123456789") < n)
			goto bad;
		memcpy(u.port, e + 1, n);
		if (strtol(u.port, NULL, 10) < 1 || strtol(u.port, NULL, 10) > 65535)
			goto bad;
	} else
		strcpy(u.port, "443");
	if (!*p)
		p = "/";
	n = strlen(p);
	if (n >= sizeof(u.path))
		goto bad;
	/* What goes on the request line is printable ASCII only: no way to smuggle a header. */
	for (size_t i = 0; i < n; i++)
		if (p[i] <= ' ' || p[i] >= 0x7f)
			goto bad;
	memcpy(u.path, p, n);
	*ret = u;
	return 0;
bad:
	snprintf(why, why_size, "'%s' is not a valid https://HOST[:PORT]/PATH URL", url);
	return -EINVAL;
}

time_t http_date_parse(const char *s, size_t n)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char buf[32], mon[4], day[4], gmt[4];
	struct tm tm = {};
	int d, y, H, M, S, used = 0;
	const char *m;

	if (n >= sizeof(buf))
		return 0;
	memcpy(buf, s, n);
	buf[n] = 0;
	if (sscanf(buf, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d %3s%n", day, &d, mon, &y, &H, &M, &S, gmt,
		   &used) != 8 ||
	    (size_t)used != n || !streq(gmt, "GMT") || strlen(mon) != 3)
		return 0;
	m = strstr(months, mon);
	if (!m || (m - months) % 3 || d < 1 || d > 31 || y < 1970 || H > 23 || M > 59 || S > 60)
		return 0;
	tm.tm_year = y - 1900;
	tm.tm_mon = (int)((m - months) / 3);
	tm.tm_mday = d;
	tm.tm_hour = H;
	tm.tm_min = M;
	tm.tm_sec = S;
	return timegm(&tm);
}

/* name: value, with the name matched case-insensitively; the value without surrounding blanks. */
static int header_is(const char *line, size_t len, const char *name, const char **ret_v, size_t *ret_n)
{
	size_t k = strlen(name);
	const char *v, *end = line + len;

	if (len <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return 0;
	v = line + k + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*ret_v = v;
	*ret_n = (size_t)(end - v);
	return 1;
}

/* Digits only, no sign, no blanks: what Content-Length and delta-seconds are. */
static int digits(const char *v, size_t n, unsigned long long max, unsigned long long *ret)
{
	unsigned long long x = 0;

	if (n == 0 || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (unsigned)(v[i] - '0');
		if (x > max)
			return -1;
	}
	*ret = x;
	return 0;
}

int http_response_parse(const uint8_t *buf, size_t n, int at_eof, struct http_response *ret, char *why,
			size_t why_size)
{
	struct http_response r = { .retry_after = -1 };
	const char *s = (const char *)buf, *end = NULL, *line, *eol;
	unsigned long long cl = 0, x;
	int have_cl = 0;

	for (size_t i = 0; i + 3 < n && i < HEADERS_MAX; i++)
		if (memcmp(s + i, "\r\n\r\n", 4) == 0) {
			end = s + i + 2; /* the last header line's CRLF stays with it */
			break;
		}
	if (!end) {
		if (n >= HEADERS_MAX)
			return fail(why, why_size, "the response's headers are longer than 16 KiB");
		if (at_eof)
			return fail(why, why_size, n ? "the connection closed inside the response's headers"
						     : "the connection closed without a response");
		return -EAGAIN;
	}
	/* "HTTP/1.1 200 OK": the version, one blank, three digits, then a blank or the line's end. */
	if (end - s < 12 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
	    s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' ||
	    (s[12] != ' ' && s[12] != '\r'))
		return fail(why, why_size, "the answer is not an HTTP/1.x response");
	r.status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	if (r.status < 200)
		return fail(why, why_size, "the server sent an interim (1xx) response");
	line = memchr(s, '\n', (size_t)(end - s));
	if (!line || line == s || line[-1] != '\r')
		return fail(why, why_size, "the response's status line does not end in CRLF");
	for (line++; line < end; line = eol + 1) {
		const char *v;
		size_t len, vn;

		eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol || eol == line || eol[-1] != '\r')
			return fail(why, why_size, "a response header does not end in CRLF");
		len = (size_t)(eol - 1 - line);
		/* Folded lines and blanks before the colon are how requests get smuggled: refused. */
		if (len == 0 || line[0] == ' ' || line[0] == '\t' || !memchr(line, ':', len))
			return fail(why, why_size, "a response header is malformed");
		for (size_t i = 0; line[i] != ':'; i++)
			if (line[i] <= ' ' || line[i] >= 0x7f)
				return fail(why, why_size, "a response header's name is malformed");
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)line[i] < ' ' && line[i] != '\t')
				return fail(why, why_size, "a response header holds a control character");
		if (header_is(line, len, "Transfer-Encoding", &v, &vn))
			return fail(why, why_size, "the response uses a transfer coding (only Content-Length is accepted)");
		if (header_is(line, len, "Content-Length", &v, &vn)) {
			if (have_cl || digits(v, vn, CONTENT_LENGTH_MAX, &cl) < 0)
				return fail(why, why_size, "the response's Content-Length is malformed or repeated");
			have_cl = 1;
		} else if (header_is(line, len, "Retry-After", &v, &vn)) {
			if (digits(v, vn, 86400, &x) == 0)
				r.retry_after = (long)x;
		} else if (header_is(line, len, "Date", &v, &vn))
			r.date = http_date_parse(v, vn);
	}
	r.body_off = (size_t)(end + 2 - s);
	if (r.status == 204 || r.status == 304) {
		have_cl = 1;
		cl = 0;
	}
	if (have_cl) {
		if (n - r.body_off < cl) {
			if (at_eof)
				return fail(why, why_size, "the connection closed before the response's body was complete");
			return -EAGAIN;
		}
		if (n - r.body_off > cl)
			return fail(why, why_size, "the server sent more than its Content-Length");
		r.body_len = (size_t)cl;
	} else {
		if (!at_eof)
			return -EAGAIN;
		r.body_len = n - r.body_off;
	}
	*ret = r;
	return 0;
}
