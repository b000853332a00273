/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The attestation protocol's JSON messages (common/attest-msg.c), the first thing keystrap-server
 * parses from a peer: each message type from the same bytes. Whatever parses must format and
 * parse back to the same structure, and every refusal must come with a reason. The same bytes
 * also go to base64_decode, which carries a finish's logs: what it accepts is the one canonical
 * spelling of what it returns, and whatever is encoded decodes back. And json-c reading every
 * string value or not, the same object or refusal (attest_json_object_ex).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "attest-msg.h"
#include "encode.h"

static struct attest_start s1, s2;
static struct attest_challenge c1, c2;
static struct attest_finish f1, f2;

static void base64_round_trips(const uint8_t *data, size_t size)
{
	size_t room = size / 4 * 3; /* the most any input of size characters decodes to */
	uint8_t *dec = malloc(room + 1), *back = malloc(size + 1);
	char *enc = malloc(base64_encoded_len(room > size ? room : size) + 1);
	long n;

	assert(dec && back && enc);
	n = base64_decode((const char *)data, size, dec, room);
	if (n >= 0) {
		/* Strict: no other spelling of these bytes (padding bits, whitespace) is accepted. */
		base64_encode(dec, (size_t)n, enc);
		assert(strlen(enc) == size && memcmp(enc, data, size) == 0);
		/* One byte short of room is -ENOBUFS, never a shorter result. */
		assert(n == 0 || base64_decode((const char *)data, size, dec, (size_t)n - 1) == -ENOBUFS);
	} else
		assert(n == -EINVAL);
	base64_encode(data, size, enc);
	assert(strlen(enc) == base64_encoded_len(size));
	assert(base64_decode(enc, strlen(enc), back, size) == (long)size && memcmp(back, data, size) == 0);
	free(dec);
	free(back);
	free(enc);
}

/*
 * Every plain string value set without json-c reading it (what attest_json_object does for
 * values of 1 KB and more) gives the object, or the refusal, json-c reading everything gives.
 */
static void long_values_agree(const char *json, size_t size)
{
	static const char *const allowed[] = { "a", "session", "event_log", "cel_log", NULL };
	char r1[ATTEST_REASON_MAX] = "", r2[ATTEST_REASON_MAX] = "";
	json_object *o1 = NULL, *o2 = NULL;
	int k1 = attest_json_object_ex(json, size, allowed, 1, &o1, r1);
	int k2 = attest_json_object_ex(json, size, allowed, SIZE_MAX, &o2, r2);

	assert(k1 == k2 && strcmp(r1, r2) == 0 && (k1 < 0 || json_object_equal(o1, o2)));
	json_object_put(o1);
	json_object_put(o2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *json = (const char *)data;
	char reason[ATTEST_REASON_MAX];
	struct attest_result res;
	char *out;

	base64_round_trips(data, size);
	long_values_agree(json, size);
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
		assert(f1.event_log_size == f2.event_log_size && f1.cel_log_size == f2.cel_log_size);
		assert(!f1.event_log_size || memcmp(f1.event_log, f2.event_log, f1.event_log_size) == 0);
		assert(!f1.cel_log_size || memcmp(f1.cel_log, f2.cel_log, f1.cel_log_size) == 0);
		/* The rest by value: the log pointers differ, so compare with them cleared. */
		free(f2.event_log);
		free(f2.cel_log);
		f2.event_log = f1.event_log;
		f2.cel_log = f1.cel_log;
		assert(memcmp(&f1, &f2, sizeof(f1)) == 0);
		attest_finish_done(&f1);
		free(out);
	}
	if (attest_result_parse(json, size, &res, reason) == 0) {
		struct attest_result res2;

		assert(attest_result_format(&res, &out) == 0);
		assert(attest_result_parse(out, strlen(out), &res2, reason) == 0);
		assert(strcmp(res.certificate, res2.certificate) == 0 && strcmp(res.chain, res2.chain) == 0);
		assert(res.payload.ciphertext_size == res2.payload.ciphertext_size &&
		       memcmp(res.payload.ciphertext, res2.payload.ciphertext, res.payload.ciphertext_size) == 0);
		assert(res.not_after == res2.not_after && res.policy_version == res2.policy_version);
		assert(res.has_log == res2.has_log && (!res.has_log || memcmp(&res.log, &res2.log, sizeof(res.log)) == 0));
		attest_result_done(&res2);
		attest_result_done(&res);
		free(out);
	}
	(void)attest_error_parse(json, size, reason);
	return 0;
}
