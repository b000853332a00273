/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* common/utf8.c: valid text passes unchanged, every byte that starts no valid sequence is U+FFFD. */
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
	return TAP_DONE();
}
