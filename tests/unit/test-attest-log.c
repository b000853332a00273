/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The protocol's witness fields (common/attest-msg.c): a finish's log_size, a result's log
 * object, strict like the rest of the messages, and formatted only when asked for.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "attest-msg.h"
#include "encode.h"
#include "macro.h"
#include "tap.h"

#define BASE "{\"node_id\":\"node1.example\",\"certificate\":\"C\",\"chain\":\"C\",\"not_after\":1800000000," \
	     "\"policy_version\":3,\"payload_blob\":\"AAAA\",\"payload_seed\":\"AAAA\",\"payload_iv\":\"AAAAAAAAAAAAAAAA\"," \
	     "\"payload\":\"AAAAAAAAAAAAAAAAAAAAAA==\""
#define H1 "\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\""
#define H2 "\"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\""
#define LOG(members) BASE ",\"log\":{\"checkpoint\":\"o\\n3\\nr\\n\\n\\u2014 o sig\\n\",\"index\":2," \
			  "\"record\":\"cmVjb3Jk\"" members "}}"

static struct attest_result res;

static int parse(const char *json, char *reason)
{
	attest_result_done(&res);
	return attest_result_parse(json, strlen(json), &res, reason);
}

static void test_result(void)
{
	char reason[ATTEST_REASON_MAX];
	char *out = NULL;

	CHECK(parse(BASE "}", reason) == 0 && !res.has_log, "a result without a log, as an older server sends it");
	CHECK(attest_result_format(&res, &out) == 0 && !strstr(out, "\"log\""), "and formatted without one");
	free(out);
	CHECK(parse(LOG(",\"inclusion\":[" H1 "," H2 "],\"consistency\":[" H2 "]"), reason) == 0 && res.has_log &&
		      res.log.index == 2 && res.log.record_size == 6 && memcmp(res.log.record, "record", 6) == 0 &&
		      res.log.n_inclusion == 2 && res.log.inclusion[1][31] == 2 && res.log.has_consistency &&
		      res.log.n_consistency == 1 && strncmp(res.log.checkpoint, "o\n3\nr\n", 6) == 0,
	      "a log: checkpoint text, index, record bytes, both proofs");
	CHECK(attest_result_format(&res, &out) == 0 && strstr(out, "\"consistency\":[" H2 "]"),
	      "formatted with both proofs");
	free(out);
	CHECK(parse(LOG(",\"inclusion\":[]"), reason) == 0 && res.log.n_inclusion == 0 && !res.log.has_consistency,
	      "an empty inclusion proof (a tree of one) and no consistency proof");
	CHECK(parse(LOG(",\"inclusion\":[],\"witness\":1"), reason) < 0 && streq(reason, "unknown field 'log.witness'"),
	      "an unknown member of log is refused, named");
	CHECK(parse(LOG(""), reason) < 0 && streq(reason, "missing field 'log.inclusion'"), "no inclusion proof");
	CHECK(parse(LOG(",\"inclusion\":[\"AQEB\"]"), reason) < 0 &&
		      streq(reason, "field 'log.inclusion' holds something other than base64 of 32-byte hashes"),
	      "a hash of 3 bytes");
	CHECK(parse(LOG(",\"inclusion\":[1]"), reason) < 0, "a hash that is not a string");
	CHECK(parse(BASE ",\"log\":\"x\"}", reason) < 0 && streq(reason, "field 'log' is not an object"),
	      "a log that is not an object");
	{
		size_t n = strlen(LOG("")) + 129 * 48 + 32;
		char *big = malloc(n), *p;

		p = big + sprintf(big, "%s", BASE ",\"log\":{\"checkpoint\":\"o\",\"index\":0,\"record\":\"cmVjb3Jk\",\"inclusion\":[");
		for (int i = 0; i < 129; i++)
			p += sprintf(p, "%s" H1, i ? "," : "");
		sprintf(p, "]}}");
		CHECK(parse(big, reason) < 0 && streq(reason, "field 'log.inclusion' holds more than 128 hashes"),
		      "a proof longer than any tree needs");
		free(big);
	}
	attest_result_done(&res);
}

static void test_finish(void)
{
	static struct attest_finish f;
	static const char base[] =
		"{\"session\":\"00112233445566778899aabbccddeeff\",\"proof\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\","
		"\"attest\":\"AA==\",\"signature\":\"AA==\",\"pcr_bank\":\"sha256\",\"pcrs\":{\"0\":"
		"\"0000000000000000000000000000000000000000000000000000000000000000\"},\"csr\":\"x\",\"ek_pub\":\"AA==\","
		"\"event_log\":\"\",\"cel_log\":\"\"";
	char reason[ATTEST_REASON_MAX], json[1024];
	char *out = NULL;

	snprintf(json, sizeof(json), "%s}", base);
	CHECK(attest_finish_parse(json, strlen(json), &f, reason) == 0 && !f.witness, "a finish that does not witness");
	CHECK(attest_finish_format(&f, &out) == 0 && !strstr(out, "log_size"), "formatted without log_size");
	free(out);
	attest_finish_done(&f);
	snprintf(json, sizeof(json), "%s,\"log_size\":41}", base);
	CHECK(attest_finish_parse(json, strlen(json), &f, reason) == 0 && f.witness && f.log_size == 41,
	      "a witnessing finish and the size it holds");
	CHECK(attest_finish_format(&f, &out) == 0 && strstr(out, "\"log_size\":41"), "formatted with it");
	free(out);
	attest_finish_done(&f);
	snprintf(json, sizeof(json), "%s,\"log_size\":-1}", base);
	CHECK(attest_finish_parse(json, strlen(json), &f, reason) < 0 && streq(reason, "field 'log_size' is out of range"),
	      "a negative size");
	/* The text must be UTF-8 (checked before json-c sees it): each bad form is refused, as one. */
	snprintf(json, sizeof(json), "%.*s\"cel_log\":\"caf\xc3\xa9 \xf0\x9f\x94\x91\"}", (int)strlen(base) - 12, base);
	CHECK(attest_finish_parse(json, strlen(json), &f, reason) == 0 && f.cel_log_size == 10,
	      "2- and 4-byte characters in a string pass");
	attest_finish_done(&f);
	static const char *const bad[] = { "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff" };
	bool refused = true;
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		snprintf(json, sizeof(json), "%.*s\"cel_log\":\"x%sx\"}", (int)strlen(base) - 12, base, bad[i]);
		refused = refused && attest_finish_parse(json, strlen(json), &f, reason) < 0 &&
			  streq(reason, "malformed JSON: invalid utf-8 string");
		attest_finish_done(&f);
	}
	CHECK(refused, "a cut character, an overlong form, a surrogate, a code point above U+10FFFF and a byte "
		       "never in UTF-8 are each refused: malformed JSON: invalid utf-8 string");
	{
		/* A 3 KB firmware log: a value attest_json_object sets itself, decoded as json-c read it. */
		static uint8_t log[3000], enc[4001];
		static char big[sizeof(base) + sizeof(enc) + 16];

		for (size_t i = 0; i < sizeof(log); i++)
			log[i] = (uint8_t)(i * 7);
		base64_encode(log, sizeof(log), (char *)enc);
		snprintf(big, sizeof(big), "%.*s\"event_log\":\"%s\",\"cel_log\":\"\"}", (int)strlen(base) - 27, base,
			 (const char *)enc);
		CHECK(attest_finish_parse(big, strlen(big), &f, reason) == 0 && f.event_log_size == sizeof(log) &&
			      memcmp(f.event_log, log, sizeof(log)) == 0,
		      "a finish with a 3 KB event log: the log as sent");
		/* Its base64 ('+' and '/' in it) written verbatim: the very text json-c's escaper writes. */
		CHECK(attest_finish_format(&f, &out) == 0 && strstr(out, (const char *)enc), "formatted, the log's base64 as it is");
		json_object *o = json_tokener_parse(out);
		CHECK(o && streq(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), out),
		      "and byte for byte what json-c writes for the same object");
		json_object_put(o);
		attest_finish_done(&f);
		CHECK(attest_finish_parse(out, strlen(out), &f, reason) == 0 && f.event_log_size == sizeof(log) &&
			      memcmp(f.event_log, log, sizeof(log)) == 0,
		      "which parses back to the same log");
		free(out);
		attest_finish_done(&f);
	}
	snprintf(json, sizeof(json), "%s} \xc3", base);
	CHECK(attest_finish_parse(json, strlen(json), &f, reason) < 0 && streq(reason, "malformed JSON: invalid utf-8 string"),
	      "so is a bad byte after the object");
}

/* attest_json_object_ex with every plain string value left out of json-c's hands, against json-c reading all. */
static void test_long_values(void)
{
	static const char *const allowed[] = { "a", "b", "c", "d", "event_log", NULL };
	static const char *const texts[] = {
		"{\"a\":\"v\",\"b\":1}",
		"{ \"a\" : \"v\" ,\n\"b\":\"w\" }",
		"{\"a\":\"v\",\"b\":\"w\",\"c\":\"x\",\"d\":\"y\",\"event_log\":\"z\"}",
		"{\"a\":\"x\\\"y\",\"b\":\"\\u00e9\"}",
		"{\"a\":\"x\x01y\"}",
		"{\"a\":{\"b\":\"v\"},\"c\":[\"w\"]}",
		"{\"a\":\"v\"} {\"b\":\"w\"}",
		"{\"a\":\"v\",\"a\":\"w\"}",
		"{\"a\":\"v\"",
		"{\"a\":\"v",
		"{\"a\":\"v\",}",
		"[\"a\",\"b\"]",
		"{\"e\":\"v\"}",
		"{\"a\":\"v\"x}",
		"{\"\\u0061\":\"v\"}",
		"{\"a\":tru\"v\"}",
		"{\"a\" \"v\"}",
		"{\"a\":\"v\":\"w\"}",
		"{\"a\":\"\",\"b\":\"v\"}",
		"\"v\"",
	};
	bool same = true;

	for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
		json_object *o1 = NULL, *o2 = NULL;
		char r1[ATTEST_REASON_MAX] = "", r2[ATTEST_REASON_MAX] = "";
		int k1 = attest_json_object_ex(texts[i], strlen(texts[i]), allowed, 1, &o1, r1);
		int k2 = attest_json_object_ex(texts[i], strlen(texts[i]), allowed, SIZE_MAX, &o2, r2);

		if (k1 != k2 || !streq(r1, r2) || (k1 == 0 && !json_object_equal(o1, o2))) {
			printf("# %s: %d '%s' against %d '%s'\n", texts[i], k1, r1, k2, r2);
			same = false;
		}
		json_object_put(o1);
		json_object_put(o2);
	}
	CHECK(same, "values left out of json-c's reading: the same object, or the same refusal, as json-c reading all");
}

int main(void)
{
	test_result();
	test_finish();
	test_long_values();
	return TAP_DONE();
}
