/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * https-post URL CA TIMEOUT-MS MAX-BYTES: POSTs standard input with keystrap's HTTPS client
 * (common/https.c) and prints what it received (status, Retry-After, Date, then the body) or, on
 * failure, the one line it gives and the errno name; for tests/bats/https.bats.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "https.h"

int main(int argc, char **argv)
{
	static char body[1 << 16];
	struct https_options o = {};
	struct https_reply r = {};
	struct https_cert_failure cf = {};
	char why[512] = "";
	size_t n;
	int k;

	if (argc != 5) {
		fprintf(stderr, "usage: https-post URL CA TIMEOUT-MS MAX-BYTES < BODY\n");
		return 2;
	}
	n = fread(body, 1, sizeof(body) - 1, stdin);
	body[n] = 0;
	o.ca_file = argv[2];
	o.timeout_ms = atoi(argv[3]);
	o.max_response = strtoul(argv[4], NULL, 10);
	k = https_post_json(&o, argv[1], body, &r, &cf, why, sizeof(why));
	if (k < 0) {
		printf("error %s verify=%ld: %s\n", strerrorname_np(-k), cf.error, why);
		if (cf.error)
			printf("certificate valid %lld..%lld\n", (long long)cf.not_before, (long long)cf.not_after);
		return 1;
	}
	printf("status %d\nretry-after %ld\ndate %lld\n", r.status, r.retry_after, (long long)r.date);
	fwrite(r.body, 1, r.body_len, stdout);
	https_reply_done(&r);
	return 0;
}
