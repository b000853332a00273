/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* common/json-dup.c: a key twice in one object is found, however it is spelled; distinct keys, equal keys in different objects, and keys inside strings are not duplicates. */
#include <string.h>

#include "json-dup.h"
#include "tap.h"

static int dup(const char *json, char *key)
{
	return json_duplicate_key(json, strlen(json), key, 16);
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
	return TAP_DONE();
}
