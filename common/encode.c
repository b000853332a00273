/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "encode.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

void base64_encode(const uint8_t *src, size_t n, char *dst)
{
	size_t i = 0, o = 0;

	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];

		dst[o++] = b64[v >> 18];
		dst[o++] = b64[(v >> 12) & 63];
		dst[o++] = b64[(v >> 6) & 63];
		dst[o++] = b64[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)src[i] << 16 | (i + 1 < n ? (uint32_t)src[i + 1] << 8 : 0);

		dst[o++] = b64[v >> 18];
		dst[o++] = b64[(v >> 12) & 63];
		dst[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		dst[o++] = '=';
	}
	dst[o] = 0;
}

/*
 * Decoding tables, one per position in a quantum: each byte's 6-bit value in the alphabet
 * shifted into place, or B64_BAD for every byte outside it (NUL, '=', whitespace, 0x80 and up).
 * A quantum is then four loads, three ORs and one test, not a branch per character.
 */
#define B64_BAD 0x80000000u
#define B64_VALUE(c)                                                                                      \
	((c) >= 'A' && (c) <= 'Z' ? (c) - 'A' :                                                           \
	 (c) >= 'a' && (c) <= 'z' ? (c) - 'a' + 26 :                                                      \
	 (c) >= '0' && (c) <= '9' ? (c) - '0' + 52 :                                                      \
	 (c) == '+'		  ? 62 :                                                                  \
	 (c) == '/'		  ? 63 :                                                                  \
				    -1)
#define B64_ENTRY(c, shift) (B64_VALUE(c) < 0 ? B64_BAD : (uint32_t)B64_VALUE(c) << (shift))
#define B64_4(c, s) B64_ENTRY(c, s), B64_ENTRY((c) + 1, s), B64_ENTRY((c) + 2, s), B64_ENTRY((c) + 3, s)
#define B64_16(c, s) B64_4(c, s), B64_4((c) + 4, s), B64_4((c) + 8, s), B64_4((c) + 12, s)
#define B64_64(c, s) B64_16(c, s), B64_16((c) + 16, s), B64_16((c) + 32, s), B64_16((c) + 48, s)
#define B64_256(s) { B64_64(0, s), B64_64(64, s), B64_64(128, s), B64_64(192, s) }
static const uint32_t b64_dec[4][256] = { B64_256(18), B64_256(12), B64_256(6), B64_256(0) };

/*
 * The quanta before the last, while their three bytes fit: four alphabet characters each (no
 * padding there), one test per quantum: a finish's 40 KB of logs decode three times as fast as
 * with a test per character. Stops before the first quantum it cannot take, which
 * base64_decode then judges (and refuses) one character at a time, as it does the last.
 */
static size_t decode_quanta(const unsigned char *s, size_t len, uint8_t *dst, size_t dst_size, size_t *ret_in)
{
	size_t n = len / 4 - 1, i = 0;

	if (n > dst_size / 3)
		n = dst_size / 3;
	for (; i < n; i++, s += 4, dst += 3) {
		uint32_t w = b64_dec[0][s[0]] | b64_dec[1][s[1]] | b64_dec[2][s[2]] | b64_dec[3][s[3]];

		if (w & B64_BAD)
			break;
		dst[0] = (uint8_t)(w >> 16);
		dst[1] = (uint8_t)(w >> 8);
		dst[2] = (uint8_t)w;
	}
	*ret_in = 4 * i;
	return 3 * i;
}

long base64_decode(const char *src, size_t len, uint8_t *dst, size_t dst_size)
{
	size_t o, start;

	if (len % 4 != 0)
		return -EINVAL;
	if (len == 0)
		return 0;
	o = decode_quanta((const unsigned char *)src, len, dst, dst_size, &start);
	for (size_t i = start; i < len; i += 4) {
		int pad = 0;
		uint32_t w = 0;

		for (int j = 0; j < 4; j++) {
			uint32_t v = b64_dec[3][(unsigned char)src[i + j]];

			if (src[i + j] == '=' && i + 4 == len && j >= 2) {
				pad++;
				continue;
			}
			if (pad > 0 || (v & B64_BAD))
				return -EINVAL;
			w |= v << (6 * (3 - j));
		}
		/* Bits the padding drops must be zero: one canonical spelling per byte string. */
		if ((pad == 2 && (w & 0xffff)) || (pad == 1 && (w & 0xff)))
			return -EINVAL;
		if (o + 3 - (size_t)pad > dst_size)
			return -ENOBUFS;
		dst[o++] = (uint8_t)(w >> 16);
		if (pad < 2)
			dst[o++] = (uint8_t)(w >> 8);
		if (pad < 1)
			dst[o++] = (uint8_t)w;
	}
	return (long)o;
}

void hex_encode(const uint8_t *src, size_t n, char *dst)
{
	static const char h[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		dst[2 * i] = h[src[i] >> 4];
		dst[2 * i + 1] = h[src[i] & 15];
	}
	dst[2 * n] = 0;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_decode(const char *src, uint8_t *dst, size_t dst_size)
{
	if (strlen(src) != 2 * dst_size)
		return -EINVAL;
	for (size_t i = 0; i < dst_size; i++) {
		int hi = hex_value(src[2 * i]), lo = hex_value(src[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		dst[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

const char *utc_time_format(int64_t t, char buf[UTC_TIME_MAX])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, UTC_TIME_MAX, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, UTC_TIME_MAX, "%lld", (long long)t);
	return buf;
}
