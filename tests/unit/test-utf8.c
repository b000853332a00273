/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * common/utf8.c: valid text passes unchanged, every byte that starts no valid sequence is U+FFFD;
 * utf8_valid says the same of a buffer (valid exactly when nothing would be replaced), on
 * either side of its eight-bytes-at-a-time ASCII path.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "tap.h"
#include "utf8.h"

#define R "\xef\xbf\xbd" /* U+FFFD */

static const struct {
	const char *in, *out, *name;
} cases[] = {
	{ "", "", "empty" },
	{ "unknown field 'extra'", "unknown field 'extra'", "ASCII unchanged" },
	{ "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91 \xf4\x8f\xbf\xbf", "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91 \xf4\x8f\xbf\xbf",
	  "2-, 3- and 4-byte characters and U+10FFFF unchanged" },
	{ "ab\xc3", "ab" R, "a 2-byte character cut at the end" },
	{ "a\xe2\x82", "a" R R, "a 3-byte character cut at the end: each byte replaced" },
	{ "\xc3x", R "x", "a lead byte without its continuation" },
	{ "\x80\xbf", R R, "lone continuation bytes" },
	{ "\xc0\x80", R R, "overlong NUL (C0 80)" },
	{ "\xe0\x80\xaf", R R R, "overlong 3-byte form" },
	{ "\xf0\x80\x80\xaf", R R R R, "overlong 4-byte form" },
	{ "\xed\xa0\x80", R R R, "a UTF-16 surrogate (U+D800)" },
	{ "\xf4\x90\x80\x80", R R R R, "above U+10FFFF" },
	{ "\xf5\xff\xfe", R R R, "bytes that never occur in UTF-8" },
};

int main(void)
{
	char *out = (char *)"x";

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_free_ char *t = NULL;

		CHECK(utf8_valid_dup(cases[i].in, &t) == 0 && t && streq(t, cases[i].out), cases[i].name);
	}
	CHECK(utf8_valid_dup(NULL, &out) == 0 && out == NULL, "NULL stays NULL");
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		bool valid = streq(cases[i].in, cases[i].out);
		char name[160];

		snprintf(name, sizeof(name), "utf8_valid: %s %s", cases[i].name, valid ? "valid" : "invalid");
		CHECK(utf8_valid(cases[i].in, strlen(cases[i].in)) == valid, name);
	}
	/* Each bad sequence at every offset of 40 ASCII bytes, and cut by the length given. */
	{
		static const char *const bad[] = { "\x80", "\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff" };
		char buf[64];
		bool all = true;

		for (size_t b = 0; b < ELEMENTSOF(bad); b++)
			for (size_t at = 0; at + strlen(bad[b]) <= 40; at++) {
				memset(buf, 'A', 40);
				memcpy(buf + at, bad[b], strlen(bad[b]));
				all = all && !utf8_valid(buf, 40) && utf8_valid(buf, at);
			}
		CHECK(all, "utf8_valid: a bad sequence anywhere in 40 ASCII bytes is found; the bytes before it pass");
		memset(buf, 'A', 40);
		memcpy(buf + 30, "\xf0\x9f\x94\x91", 4);
		CHECK(utf8_valid(buf, 40) && !utf8_valid(buf, 33) && !utf8_valid(buf, 31) && utf8_valid(buf, 30),
		      "utf8_valid: a 4-byte character after 30 ASCII bytes passes whole, not cut by the length");
		buf[5] = 0;
		CHECK(utf8_valid(buf, 40), "utf8_valid: a NUL byte is U+0000 (attest_json_object refuses it itself)");
	}
	return TAP_DONE();
}
