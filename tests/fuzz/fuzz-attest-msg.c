/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The attestation protocol's JSON messages (lib/attest-msg.c), the first thing keystrap-server
 * parses from a peer: each message type from the same bytes. Whatever parses must format and
 * parse back to the same structure, and every refusal must come with a reason.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest-msg.h"

static struct attest_start s1, s2;
static struct attest_challenge c1, c2;
static struct attest_finish f1, f2;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *json = (const char *)data;
	char reason[ATTEST_REASON_MAX];
	struct attest_result res;
	char *out;

	reason[0] = 0;
	if (attest_start_parse(json, size, &s1, reason) == 0) {
		assert(attest_start_format(&s1, &out) == 0);
		assert(attest_start_parse(out, strlen(out), &s2, reason) == 0);
		assert(memcmp(&s1, &s2, sizeof(s1)) == 0);
		free(out);
	} else
		assert(reason[0]);
	if (attest_challenge_parse(json, size, &c1, reason) == 0) {
		assert(attest_challenge_format(&c1, &out) == 0);
		assert(attest_challenge_parse(out, strlen(out), &c2, reason) == 0);
		assert(memcmp(&c1, &c2, sizeof(c1)) == 0);
		free(out);
	}
	if (attest_finish_parse(json, size, &f1, reason) == 0) {
		assert(attest_finish_format(&f1, &out) == 0);
		assert(attest_finish_parse(out, strlen(out), &f2, reason) == 0);
		assert(memcmp(&f1, &f2, sizeof(f1)) == 0);
		free(out);
	}
	if (attest_result_parse(json, size, &res, reason) == 0)
		free(res.certificate);
	(void)attest_error_parse(json, size, reason);
	return 0;
}
