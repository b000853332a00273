/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Bytes of the valid UTF-8 sequence at p, 0 when none starts there (p is NUL-terminated). */
static size_t utf8_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[0] == 0xe0 && p[1] < 0xa0) ||
		    (p[0] == 0xed && p[1] >= 0xa0))
			return 0; /* overlong, surrogate */
		return 3;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80 ||
		    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
			return 0; /* overlong, above U+10FFFF */
		return 4;
	}
	return 0;
}

int utf8_valid_dup(const char *s, char **ret)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;
	char *t;

	if (!s) {
		*ret = NULL;
		return 0;
	}
	t = malloc(strlen(s) * 3 + 1);
	if (!t)
		return -ENOMEM;
	while (*p) {
		size_t k = utf8_len(p);

		if (k == 0) {
			memcpy(t + n, "\xef\xbf\xbd", 3);
			n += 3;
			p++;
		} else {
			memcpy(t + n, p, k);
			n += k;
			p += k;
		}
	}
	t[n] = 0;
	*ret = t;
	return 0;
}
