/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * utf8_valid_dup over arbitrary bytes: what an audit record's text may hold (field names and
 * values from requests, cut at byte counts). Invariants besides "no crash": the result is
 * valid UTF-8 (cleaning it again changes nothing), at most three bytes per input byte, and
 * text without a U+FFFD replacement is the input itself; utf8_valid holds the input valid
 * exactly when nothing was replaced.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ char *in = NULL, *out = NULL, *again = NULL;

	in = strndup((const char *)data, size); /* up to the first NUL, as a C string arrives */
	if (!in || utf8_valid_dup(in, &out) < 0)
		return 0;
	assert(strlen(out) <= 3 * strlen(in));
	assert(utf8_valid_dup(out, &again) == 0 && streq(again, out));
	if (!strstr(out, "\xef\xbf\xbd"))
		assert(streq(out, in));
	/* utf8_valid on the same bytes: valid exactly when cleaning changes nothing. */
	assert(utf8_valid(in, strlen(in)) == streq(out, in));
	assert(utf8_valid(out, strlen(out)));
	return 0;
}
