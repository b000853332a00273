/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * http_response_parse and http_url_parse over arbitrary bytes: what a server, or whoever holds
 * its address, sends keystrap. Invariants besides "no crash": a parsed body lies inside the
 * input, the status is a final one, a response complete before the end of the connection is
 * the same response at its end, and a URL that parses puts nothing on the request line that
 * could end it or start a header.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *url = NULL;
	struct http_response a, b;
	struct http_url u;
	char why[HTTP_REASON_MAX];

	if (http_response_parse(data, size, 0, &a, why, sizeof(why)) == 0) {
		assert(http_response_parse(data, size, 1, &b, why, sizeof(why)) == 0);
		assert(memcmp(&a, &b, sizeof(a)) == 0);
	}
	if (http_response_parse(data, size, 1, &a, why, sizeof(why)) == 0) {
		assert(a.status >= 200 && a.status <= 599);
		assert(a.body_off <= size && a.body_len <= size - a.body_off);
	}
	url = strndup((const char *)data, size);
	if (url && http_url_parse(url, &u, why, sizeof(why)) == 0) {
		for (const char *p = u.path; *p; p++)
			assert(*p > ' ' && *p < 0x7f);
		assert(u.host[0] && strlen(u.port) >= 1 && u.path[0] == '/');
	}
	return 0;
}
