/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * common/json-dup.c: a key twice in one object is found, however it is spelled; distinct keys,
 * equal keys in different objects, and keys inside strings are not duplicates. json_long_values
 * finds the long plain values of the top-level object, and nothing json-c would read otherwise.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "json-dup.h"
#include "tap.h"

#define streq(a, b) (strcmp((a), (b)) == 0)

static int dup(const char *json, char *key)
{
	return json_duplicate_key(json, strlen(json), key, 16);
}

/* The one long value of json, as "key=value", or "" when json_long_values finds none (or more). */
static const char *long_value(const char *json, size_t min)
{
	static char out[256];
	struct json_long_value v[2];
	size_t n = json_long_values(json, strlen(json), min, v, sizeof(v) / sizeof(v[0]));

	if (n != 1)
		return "";
	snprintf(out, sizeof(out), "%.*s=%.*s", (int)v[0].key_size, json + v[0].key, (int)(v[0].end - v[0].start),
		 json + v[0].start);
	return out;
}

static void test_long_values(void)
{
	struct json_long_value v[4];
	char big[8192];
	size_t n;

	CHECK(streq(long_value("{\"a\":1,\"log\":\"QUJD\"}", 4), "log=QUJD"), "a value of min bytes, with its key");
	CHECK(streq(long_value("{\"log\":\"QUJ\"}", 4), ""), "one byte short of min: not taken");
	CHECK(streq(long_value("{ \"log\" :\r\n \"QUJD\" }", 4), "log=QUJD"), "whitespace around the colon");
	CHECK(streq(long_value("{\"log\":\"QU\\nJD\"}", 4), ""), "an escape in the value: json-c reads it");
	CHECK(streq(long_value("{\"log\":\"QU\x01JD\"}", 4), ""),
	      "a control character in the value: json-c reads it (and refuses it)");
	CHECK(streq(long_value("{\"l\\u006fg\":\"QUJD\"}", 4), ""), "an escape in the key: json-c reads it");
	CHECK(streq(long_value("{\"a\":{\"log\":\"QUJD\"}}", 4), ""), "a value of a nested object: not taken");
	CHECK(streq(long_value("{\"a\":[\"QUJD\"]}", 4), "") && streq(long_value("[\"QUJD\"]", 4), ""),
	      "strings in arrays: not taken");
	CHECK(streq(long_value("{\"a\":\"k\\\":\\\"QUJD\"}", 4), ""), "quotes escaped inside a string are no key or value");
	CHECK(streq(long_value("{\"QUJD\":1}", 4), "") && streq(long_value("{\"a\":1 \"QUJD\"}", 4), ""),
	      "a key is no value, nor is a string after a number");
	CHECK(streq(long_value("{\"a\":{\"x\":[1,{}]},\"log\":\"QUJD\"}", 4), "log=QUJD"),
	      "after a nested object, the top level again");
	CHECK(streq(long_value("{\"log\":\"QUJD", 4), ""), "a value that never closes: not taken");
	CHECK(json_long_values("{\"a\":\"1111\",\"b\":\"2222\",\"c\":\"3333\"}", 34, 4, v, 2) == 2 &&
		      v[0].start == 6 && v[0].end == 10 && v[1].start == 17,
	      "at most max, in order, the spans inside the quotes");
	memset(big, 'A', sizeof(big));
	memcpy(big, "{\"event_log\":\"", 14);
	memcpy(big + sizeof(big) - 2, "\"}", 2);
	n = json_long_values(big, sizeof(big), 1024, v, 4);
	CHECK(n == 1 && v[0].start == 14 && v[0].end == sizeof(big) - 2, "8 KB of base64 (the 32-byte path)");
	for (size_t at = 14; at < 14 + 70; at++) {
		big[at] = at % 2 ? '\\' : '\x1f';
		n += json_long_values(big, sizeof(big), 1024, v, 4);
		big[at] = 'A';
	}
	CHECK(n == 1, "a backslash or a control character at any offset of the first 70 is seen");
}

int main(void)
{
	char key[16] = "";

	CHECK(dup("{\"a\":1,\"b\":2}", key) == 0, "distinct keys");
	CHECK(dup("{\"a\":1,\"a\":2}", key) == 1 && strcmp(key, "a") == 0, "a key twice, named");
	CHECK(dup("{\"a\":{\"x\":1},\"b\":{\"x\":1}}", key) == 0, "the same key in two objects");
	CHECK(dup("{\"a\":{\"x\":1,\"y\":[{\"z\":1,\"z\":2}]}}", key) == 1 && strcmp(key, "z") == 0,
	      "a duplicate nested in an array of objects");
	CHECK(dup("{\"a\":\"\\\"a\\\":1,\",\"b\":1}", key) == 0, "keys spelled inside a string value");
	CHECK(dup("{\"\\u0061\":1,\"a\":2}", key) == 1 && strcmp(key, "a") == 0, "an escape spells the same key");
	CHECK(dup("{\"a\\\\\":1,\"a\":2}", key) == 0, "an escaped backslash is another key");
	CHECK(dup("[{\"k\":1},{\"k\":2}]", key) == 0, "objects in an array are separate");
	CHECK(dup("{\"0123456789abcdefXYZ\":1,\"0123456789abcdefXYZ\":1}", key) == 1 && strlen(key) == 15,
	      "a long key is truncated to the buffer");
	CHECK(dup("{\"a\":\"x\\\\\",\"a\":1}", key) == 1 && strcmp(key, "a") == 0,
	      "a value ending in an escaped backslash closes at the next quote");
	CHECK(dup("{\"a\":\"\\\"\\\"\\\\\\\"\",\"a\":1}", key) == 1 && strcmp(key, "a") == 0,
	      "escaped quotes in a row stay inside the string");
	CHECK(dup("{\"a\":\"abc\\", key) < 0 && dup("{\"a\":\"abc\\\"}", key) < 0,
	      "a string cut after a backslash, or at an escaped quote, does not close");
	CHECK(dup("{}", key) == 0 && dup("{\"a\":{}}", key) == 0, "an empty object (no keys at all) has no duplicate");
	CHECK(dup("{\"a\":1", key) < 0 && dup("{\"a\":[1}", key) < 0 && dup("\"abc", key) < 0, "malformed text");
	test_long_values();
	return TAP_DONE();
}
