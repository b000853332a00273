/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* common/encode.c: base64 (RFC 4648 section 10 vectors, strict decoding) and hex. */
#include <errno.h>
#include <string.h>

#include "encode.h"
#include "macro.h"
#include "tap.h"

static const struct {
	const char *plain, *b64;
} rfc4648[] = {
	{ "", "" },         { "f", "Zg==" },        { "fo", "Zm8=" },         { "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
};

static long decode(const char *s, uint8_t *out, size_t size)
{
	return base64_decode(s, strlen(s), out, size);
}

static void test_base64_vectors(void)
{
	for (size_t i = 0; i < ELEMENTSOF(rfc4648); i++) {
		const char *p = rfc4648[i].plain, *b = rfc4648[i].b64;
		char enc[16], name[64];
		uint8_t dec[16];
		long n;

		memset(enc, 'x', sizeof(enc));
		base64_encode((const uint8_t *)p, strlen(p), enc);
		snprintf(name, sizeof(name), "base64(\"%s\") = \"%s\" with its length predicted", p, b);
		CHECK(streq(enc, b) && base64_encoded_len(strlen(p)) == strlen(b), name);
		n = decode(b, dec, sizeof(dec));
		snprintf(name, sizeof(name), "\"%s\" decodes to \"%s\"", b, p);
		CHECK(n == (long)strlen(p) && memcmp(dec, p, strlen(p)) == 0, name);
	}
}

static void test_base64_binary(void)
{
	uint8_t all[256], back[256];
	char enc[345];

	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	base64_encode(all, sizeof(all), enc);
	CHECK(strlen(enc) == 344 && strchr(enc, '+') && strchr(enc, '/'), "every byte value encodes, + and / alphabet");
	CHECK(base64_decode(enc, strlen(enc), back, sizeof(back)) == 256 && memcmp(all, back, 256) == 0,
	      "every byte value round-trips");
	CHECK(base64_decode(enc, strlen(enc), back, 255) == -ENOBUFS, "one byte short of room is -ENOBUFS");
}

static void test_base64_strict(void)
{
	static const struct {
		const char *in, *why;
	} bad[] = {
		{ "Zg", "padding missing is rejected" },
		{ "Zg=", "a length that is not a multiple of 4 is rejected" },
		{ "Zm9vY", "a longer length that is not a multiple of 4 is rejected" },
		{ "====", "padding alone is rejected" },
		{ "Z===", "three padding characters are rejected" },
		{ "Zg=A", "data after padding is rejected" },
		{ "Zg==Zg==", "padding before the last quantum is rejected" },
		{ "Zm9v YmFy", "a space is rejected" },
		{ "Zm9vYmFy\n", "a trailing newline is rejected" },
		{ "Zm9-YmFy", "the URL-safe '-' is rejected" },
		{ "Zm9_YmFy", "the URL-safe '_' is rejected" },
		{ "Zm9v!mFy", "a character outside the alphabet is rejected" },
		{ "Zh==", "non-zero bits under '==' are rejected (one spelling per byte string)" },
		{ "Zm9=", "non-zero bits under '=' are rejected" },
	};
	uint8_t out[16];

	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		CHECK(decode(bad[i].in, out, sizeof(out)) == -EINVAL, bad[i].why);
	CHECK(base64_decode("Zm9v\0mFy", 8, out, sizeof(out)) == -EINVAL, "an embedded NUL is rejected");
	/* Every byte value, in every position of a quantum: exactly the 64 of the alphabet decode. */
	{
		static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		size_t accepted = 0, wrong = 0;

		for (int c = 0; c < 256; c++)
			for (int pos = 0; pos < 4; pos++) {
				char q[4] = { 'A', 'A', 'A', 'A' };
				const char *in_alphabet = c ? memchr(alphabet, c, 64) : NULL;
				long n;

				q[pos] = (char)c;
				n = base64_decode(q, 4, out, sizeof(out));
				if (n == 3) {
					uint32_t w = (uint32_t)out[0] << 16 | (uint32_t)out[1] << 8 | out[2];

					accepted++;
					wrong += !in_alphabet || w != (uint32_t)(in_alphabet - alphabet) << (6 * (3 - pos));
				} else if (c == '=' && pos == 3)
					wrong += n != 2; /* "AAA=": padding, two bytes */
				else
					wrong += in_alphabet != NULL || n != -EINVAL;
			}
		CHECK(accepted == 4 * 64 && wrong == 0,
		      "each of the 256 byte values in each position: the alphabet's 64 decode to their value, every other is rejected");
	}
	CHECK(decode("Zm9vYmFy", out, 6) == 6, "output exactly filling the buffer is fine");
	CHECK(decode("Zm9vYmFy", out, 5) == -ENOBUFS, "overflowing the buffer is -ENOBUFS");
	CHECK(decode("Zm9vYg==", out, 4) == 4 && decode("Zm9vYg==", out, 3) == -ENOBUFS,
	      "padded tail counts only its real bytes against the buffer");
	CHECK(decode("Zg==", out, 0) == -ENOBUFS, "no room at all is -ENOBUFS");
}

/* A reference decoder as plain as can be (strchr per character): the oracle for long inputs. */
static long decode_slowly(const char *s, size_t len, uint8_t *out)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < len; i += 4) {
		uint32_t w = 0;

		for (int j = 0; j < 4; j++) {
			const char *p = s[i + j] ? strchr(alphabet, s[i + j]) : NULL;

			w = w << 6 | (p ? (uint32_t)(p - alphabet) : 0);
		}
		out[o++] = (uint8_t)(w >> 16);
		out[o++] = (uint8_t)(w >> 8);
		out[o++] = (uint8_t)w;
	}
	return (long)o - (len && s[len - 1] == '=') - (len && s[len - 2] == '=');
}

/* Inputs as long as a finish's logs, where the decoder takes four characters at a time. */
static void test_base64_long(void)
{
	static uint8_t plain[3000], out[3000], oracle[3003];
	static char enc[4001], bad[4001];
	static const char not_b64[] = { '=', ' ', '\n', '\r', '\t', '-', '_', '.', '!', '\0', (char)0x80, (char)0xff };
	size_t lengths_ok = 0, shorts_ok = 0, rejected = 0, tried = 0;
	uint32_t x = 1;

	for (size_t i = 0; i < sizeof(plain); i++) {
		x = x * 1103515245u + 12345u;
		plain[i] = (uint8_t)(x >> 16);
	}
	/* Every length from 0 to 300 bytes (all three tails), and the whole 3000. */
	for (size_t n = 0; n <= 301; n++) {
		size_t len = n == 301 ? sizeof(plain) : n;

		base64_encode(plain, len, enc);
		lengths_ok += base64_decode(enc, strlen(enc), out, len) == (long)len && memcmp(out, plain, len) == 0 &&
			      decode_slowly(enc, strlen(enc), oracle) == (long)len && memcmp(oracle, plain, len) == 0;
		shorts_ok += len == 0 || base64_decode(enc, strlen(enc), out, len - 1) == -ENOBUFS;
	}
	CHECK(lengths_ok == 302, "every length from 0 to 300 bytes and 3000 round-trips, as the plain decoder has it");
	CHECK(shorts_ok == 302, "and each is -ENOBUFS one byte short of room");

	/* Each character of a 4000-character string replaced by each non-alphabet byte. */
	base64_encode(plain, sizeof(plain), enc);
	for (size_t pos = 0; pos < 4000; pos++)
		for (size_t k = 0; k < sizeof(not_b64); k++) {
			if (not_b64[k] == '=' && pos >= 3998)
				continue; /* padding's own place: below */
			memcpy(bad, enc, 4001);
			bad[pos] = not_b64[k];
			tried++;
			rejected += base64_decode(bad, 4000, out, sizeof(out)) == -EINVAL;
		}
	CHECK(tried > 0 && rejected == tried,
	      "any of '=', whitespace, URL-safe, '.', '!', NUL, 0x80, 0xff anywhere in 4000 characters is rejected");
	memcpy(bad, enc, 4001);
	memcpy(bad + 1996, "AA==", 4);
	CHECK(base64_decode(bad, 4000, out, sizeof(out)) == -EINVAL,
	      "padding in the middle of a long string is rejected");
	for (size_t i = 0; i < 4000; i += 77)
		bad[i] = '\n';
	CHECK(base64_decode(bad, 4000, out, sizeof(out)) == -EINVAL, "MIME-style line breaks are rejected");
	CHECK(base64_decode(enc, 3999, out, sizeof(out)) == -EINVAL &&
	      base64_decode(enc, 4001, out, sizeof(out)) == -EINVAL,
	      "a long string one character short or long is rejected");

	/* Which error: that of the first quantum that fails, as one character at a time has it. */
	memcpy(bad, enc, 4001);
	bad[5] = '!';
	CHECK(base64_decode(bad, 4000, out, 3) == -EINVAL, "a bad second quantum with room for one: -EINVAL");
	bad[5] = enc[5];
	bad[17] = '!';
	CHECK(base64_decode(bad, 4000, out, 3) == -ENOBUFS, "a bad fifth quantum with room for one: -ENOBUFS");
	CHECK(base64_decode(bad, 4000, out, 12) == -EINVAL, "the same with room for four: -EINVAL");
	CHECK(base64_decode(enc, 4000, out, 2999) == -ENOBUFS && base64_decode(enc, 4000, out, 2997) == -ENOBUFS,
	      "a long string one or three bytes short of room is -ENOBUFS");
}

static void test_hex(void)
{
	static const uint8_t bytes[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
	uint8_t out[6];
	char enc[13];

	hex_encode(bytes, sizeof(bytes), enc);
	CHECK(streq(enc, "00017f80abff"), "hex encodes lower case");
	hex_encode(bytes, 0, enc);
	CHECK(streq(enc, ""), "hex of nothing is the empty string");
	CHECK(hex_decode("00017f80abff", out, 6) == 0 && memcmp(out, bytes, 6) == 0, "hex decodes");
	CHECK(hex_decode("00017F80ABFF", out, 6) == 0 && memcmp(out, bytes, 6) == 0, "upper case decodes");
	CHECK(hex_decode("00017f80abf", out, 6) == -EINVAL, "one digit short is rejected");
	CHECK(hex_decode("00017f80abfff", out, 6) == -EINVAL, "one digit long is rejected");
	CHECK(hex_decode("00017f80abff00", out, 6) == -EINVAL, "one byte long is rejected");
	CHECK(hex_decode("00017f80abfg", out, 6) == -EINVAL, "a non-hex digit is rejected");
	CHECK(hex_decode("0x017f80abff", out, 6) == -EINVAL, "a 0x prefix is rejected");
	CHECK(hex_decode(" 0017f80abff", out, 6) == -EINVAL, "whitespace is rejected");
	CHECK(hex_decode("", out, 0) == 0, "nothing decodes to nothing");
}

int main(void)
{
	test_base64_vectors();
	test_base64_binary();
	test_base64_strict();
	test_base64_long();
	test_hex();
	return TAP_DONE();
}
