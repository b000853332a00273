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
 * Each byte's value in the alphabet plus one, 0 for every byte outside it (NUL, '=', 0x80 and
 * up): a table, not strchr over the alphabet per character, which was a tenth of the server's
 * CPU decoding a finish's 40 KB of logs.
 */
static const uint8_t b64_rev[256] = {
#define R(c, v) [(unsigned char)(c)] = (v) + 1
	R('A', 0),  R('B', 1),	R('C', 2),  R('D', 3),	R('E', 4),  R('F', 5),	R('G', 6),  R('H', 7),
	R('I', 8),  R('J', 9),	R('K', 10), R('L', 11), R('M', 12), R('N', 13), R('O', 14), R('P', 15),
	R('Q', 16), R('R', 17), R('S', 18), R('T', 19), R('U', 20), R('V', 21), R('W', 22), R('X', 23),
	R('Y', 24), R('Z', 25), R('a', 26), R('b', 27), R('c', 28), R('d', 29), R('e', 30), R('f', 31),
	R('g', 32), R('h', 33), R('i', 34), R('j', 35), R('k', 36), R('l', 37), R('m', 38), R('n', 39),
	R('o', 40), R('p', 41), R('q', 42), R('r', 43), R('s', 44), R('t', 45), R('u', 46), R('v', 47),
	R('w', 48), R('x', 49), R('y', 50), R('z', 51), R('0', 52), R('1', 53), R('2', 54), R('3', 55),
	R('4', 56), R('5', 57), R('6', 58), R('7', 59), R('8', 60), R('9', 61), R('+', 62), R('/', 63),
#undef R
};

static int b64_value(char c)
{
	return (int)b64_rev[(unsigned char)c] - 1;
}

long base64_decode(const char *src, size_t len, uint8_t *dst, size_t dst_size)
{
	size_t o = 0;

	if (len % 4 != 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 4) {
		int pad = 0, v[4];
		uint32_t w;

		for (int j = 0; j < 4; j++) {
			if (src[i + j] == '=' && i + 4 == len && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad > 0)
				return -EINVAL;
			v[j] = b64_value(src[i + j]);
			if (v[j] < 0)
				return -EINVAL;
		}
		w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
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
