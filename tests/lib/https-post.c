/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * https-post URL CA TIMEOUT-MS MAX-BYTES [AGAIN]: POSTs standard input with keystrap's HTTPS
 * client (common/https.c) and prints what it received (status, Retry-After, Date, then the
 * body) or, on failure, the one line it gives and the errno name; for tests/bats/https.bats.
 * With AGAIN (a path): keeps the TLS session in memory, prints "tls full" or "tls resumed"
 * after the answer, waits until AGAIN exists and POSTs the same again in this process.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "https.h"

static int post_once(const struct https_options *o, const char *url, const char *body, bool tls)
{
	struct https_reply r = {};
	struct https_cert_failure cf = {};
	char why[512] = "";
	int k;

	k = https_post_json(o, url, body, &r, &cf, why, sizeof(why));
	if (k < 0) {
		printf("error %s verify=%ld: %s\n", strerrorname_np(-k), cf.error, why);
		if (cf.error)
			printf("certificate valid %lld..%lld\n", (long long)cf.not_before, (long long)cf.not_after);
		return 1;
	}
	printf("status %d\nretry-after %ld\ndate %lld\n", r.status, r.retry_after, (long long)r.date);
	fwrite(r.body, 1, r.body_len, stdout);
	if (tls)
		printf("\ntls %s\n", r.resumed ? "resumed" : "full");
	fflush(stdout);
	https_reply_done(&r);
	return 0;
}

int main(int argc, char **argv)
{
	static char body[1 << 16];
	struct https_session *session = NULL;
	struct https_options o = {};
	size_t n;
	int k;

	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: https-post URL CA TIMEOUT-MS MAX-BYTES [AGAIN] < BODY\n");
		return 2;
	}
	n = fread(body, 1, sizeof(body) - 1, stdin);
	body[n] = 0;
	o.ca_file = argv[2];
	o.timeout_ms = atoi(argv[3]);
	o.max_response = strtoul(argv[4], NULL, 10);
	if (argc == 6)
		o.session = &session;
	k = post_once(&o, argv[1], body, argc == 6);
	if (k == 0 && argc == 6) {
		for (int i = 0; access(argv[5], F_OK) != 0; i++) {
			if (i == 600) {
				fprintf(stderr, "https-post: %s did not appear within 60 s\n", argv[5]);
				return 1;
			}
			usleep(100 * 1000);
		}
		k = post_once(&o, argv[1], body, true);
	}
	https_session_free(session);
	return k;
}
