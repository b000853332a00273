/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Pure codecs: no I/O, no allocation of their own, reused by the fuzzers. */

size_t base64_encoded_len(size_t n);
/* Writes base64(src) plus NUL into dst (base64_encoded_len(n) + 1 bytes). */
void base64_encode(const uint8_t *src, size_t n, char *dst);
/* Strict decode (padding required, no whitespace); returns bytes written or -EINVAL/-ENOBUFS. */
long base64_decode(const char *src, size_t len, uint8_t *dst, size_t dst_size);

/* "YYYY-MM-DD HH:MM:SS UTC" (the decimal number if gmtime cannot say); returns buf. */
#define UTC_TIME_MAX 32
const char *utc_time_format(int64_t t, char buf[UTC_TIME_MAX]);

void hex_encode(const uint8_t *src, size_t n, char *dst);
/* Decodes exactly 2*dst_size hex digits; -EINVAL on anything else. */
int hex_decode(const char *src, uint8_t *dst, size_t dst_size);
