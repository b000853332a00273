/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * json-c keeps the last of two equal keys in an object without a word, so {"a":1,"a":2}
 * parses as {"a":2}: a reviewer reading the first and a parser using the second disagree.
 * This scans JSON text that json-c already accepted and finds a key that occurs twice in one
 * object, comparing keys as decoded strings ("a" and "\u0061" are the same key). Pure.
 * Returns 1 and the key (truncated to key_max - 1 bytes, NUL-terminated) when there is one,
 * 0 when every object's keys are distinct, -EINVAL on text that is not well-formed JSON.
 */
int json_duplicate_key(const char *json, size_t size, char *ret_key, size_t key_max);

/*
 * The long string values of a top-level object that json-c would take byte for byte: at least
 * min bytes between the quotes, no escape and no control character in them, under a key
 * without escapes. json-c reads a string a byte at a time (a finish's 40 KB of base64 were
 * most of its parse); attest_json_object has it parse the text around these and sets the
 * values itself. Pure, and lexical only: it does not check the text is JSON (json-c does),
 * only that what it returns lies inside strings as JSON's grammar reads them, if the text
 * before them is JSON. Returns how many it found, at most max, in order.
 */
struct json_long_value {
	size_t key, key_size; /* the key's bytes: json[key..key + key_size) */
	size_t start, end;    /* the value's: json[start..end), its quotes at start - 1 and end */
};
size_t json_long_values(const char *json, size_t size, size_t min, struct json_long_value *ret, size_t max);
