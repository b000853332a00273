/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Bytes of the valid UTF-8 sequence at p (n bytes left there), 0 when none starts there. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[0] == 0xe0 && p[1] < 0xa0) ||
		    (p[0] == 0xed && p[1] >= 0xa0))
			return 0; /* cut short, overlong, surrogate */
		return 3;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80 ||
		    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
			return 0; /* cut short, overlong, above U+10FFFF */
		return 4;
	}
	return 0;
}

bool utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		uint64_t w[4];
		size_t k;

		/* 32 ASCII bytes at a time: a finish's 40 KB of base64 are all ASCII. */
		if (n - i >= sizeof(w)) {
			memcpy(w, p + i, sizeof(w));
			if (!((w[0] | w[1] | w[2] | w[3]) & UINT64_C(0x8080808080808080))) {
				i += sizeof(w);
				continue;
			}
		}
		k = utf8_len(p + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

int utf8_valid_dup(const char *s, char **ret)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0, left;
	char *t;

	if (!s) {
		*ret = NULL;
		return 0;
	}
	left = strlen(s);
	t = malloc(left * 3 + 1);
	if (!t)
		return -ENOMEM;
	while (left > 0) {
		size_t k = utf8_len(p, left);

		if (k == 0) {
			memcpy(t + n, "\xef\xbf\xbd", 3);
			n += 3;
			k = 1;
		} else {
			memcpy(t + n, p, k);
			n += k;
		}
		p += k;
		left -= k;
	}
	t[n] = 0;
	*ret = t;
	return 0;
}
