/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

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
