/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* common/cel.c: systemd's tpm2-measure.log records parse; format/parse round trip; replay; merge order; errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cel.h"
#include "encode.h"
#include "macro.h"
#include "tap.h"

#define BOOT "0f4a4bc2b1a54a64a3f4c5e0d1c2b3a4"
#define SHA256_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

/* What systemd 255 appends for systemd-pcrphase's enter-initrd (values made up, shape real). */
static const char systemd_record[] =
	"\x1e{\"pcr\":11,\"digests\":[{\"hashAlg\":\"sha1\",\"digest\":\"a9993e364706816aba3e25717850c26c9cd0d89d\"},"
	"{\"hashAlg\":\"sha256\",\"digest\":\"" SHA256_ABC "\"}],\"content_type\":\"systemd\",\"content\":"
	"{\"string\":\"enter-initrd\",\"bootId\":\"" BOOT "\",\"timestamp\":3141592,\"eventType\":\"phase\"}}\n";

static int parse(struct cel *c, const char *text, char *err)
{
	return cel_parse(c, 0, text, strlen(text), err);
}

static void test_systemd_record(void)
{
	static const char two[] =
		"\x1e{\"recnum\":7,\"pcr\":0,\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"" SHA256_ABC "\"}]}"
		"\n\n\x1e {\"pcr\":1,\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"" SHA256_ABC "\"}],\"x\":[1,2]}";
	struct cel c = { 0 };
	char err[CEL_ERROR_MAX], hex[65];
	const struct cel_record *r;

	CHECK(parse(&c, systemd_record, err) == 0 && c.n_records == 1, "a record as systemd writes it parses");
	r = c.n_records ? &c.records[0] : NULL;
	CHECK(r && r->pcr == 11 && r->n_digests == 2 && streq(r->digests[0].bank->name, "sha1") &&
	      streq(r->digests[1].bank->name, "sha256"), "its PCR and both digests are read");
	if (r)
		hex_encode(r->digests[1].value, 32, hex);
	CHECK(r && streq(hex, SHA256_ABC), "the sha256 digest is decoded from hex");
	CHECK(r && streq(r->content_type, "systemd") && streq(r->string, "enter-initrd") &&
	      streq(r->event_type, "phase") && streq(r->boot_id, BOOT) && r->has_timestamp && r->timestamp == 3141592,
	      "content_type and content (string, bootId, timestamp, eventType) are read");
	cel_done(&c);

	CHECK(parse(&c, two, err) == 0 && c.n_records == 2 && !c.records[0].string && !c.records[1].has_timestamp &&
	      c.records[1].offset == (size_t)(strchr(two + 1, 0x1e) - two),
	      "recnum, unknown members, no content, blank lines and a last record without LF are fine");
	cel_done(&c);
}

static void test_round_trip(void)
{
	struct cel_digest d[2] = { { pcr_bank_by_name("sha256") }, { pcr_bank_by_name("sha384") } };
	_cleanup_free_ char *rec = NULL;
	struct cel c = { 0 };
	char err[CEL_ERROR_MAX];

	memset(d[0].value, 0xab, 32);
	memset(d[1].value, 0xcd, 48);
	CHECK(cel_format(12, d, 2, "keystrap:config:\"quoted\"\\", NULL, BOOT, 42, &rec) == 0 && rec[0] == 0x1e &&
	      rec[strlen(rec) - 1] == '\n', "a formatted record is RS, JSON, LF");
	CHECK(rec && strstr(rec, "{\"pcr\":12,\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"abab") == rec + 1 &&
	      strstr(rec, "\"content_type\":\"systemd\",\"content\":{\"string\":") && !strstr(rec, "eventType"),
	      "members in systemd's order; no eventType when there is none");
	CHECK(rec && parse(&c, rec, err) == 0 && c.n_records == 1 && c.records[0].pcr == 12 &&
	      c.records[0].n_digests == 2 && memcmp(c.records[0].digests[1].value, d[1].value, 48) == 0 &&
	      streq(c.records[0].string, "keystrap:config:\"quoted\"\\") && c.records[0].timestamp == 42 &&
	      streq(c.records[0].boot_id, BOOT), "and parses back to the same record");
	cel_done(&c);
}

static void test_replay_and_sort(void)
{
	const struct pcr_bank *sha256 = pcr_bank_by_name("sha256");
	struct cel_digest d = { sha256 };
	struct pcr_replay r;
	struct cel c = { 0 };
	char *a = NULL, *b = NULL, *x = NULL, err[CEL_ERROR_MAX];
	uint8_t want[32] = { 0 }, abc[32];

	hex_decode(SHA256_ABC, abc, 32);
	memcpy(d.value, abc, 32);
	cel_format(12, &d, 1, "a", "phase", BOOT, 300, &a);
	cel_format(12, &d, 1, "b", "phase", BOOT, 100, &b);
	cel_format(12, &d, 1, "x", NULL, BOOT, 200, &x);
	CHECK(parse(&c, a, err) == 0 && cel_parse(&c, 1, b, strlen(b), err) == 0 &&
	      cel_parse(&c, 2, x, strlen(x), err) == 0 && c.n_records == 3, "three logs append to one set");
	cel_sort(&c);
	CHECK(streq(c.records[0].string, "b") && streq(c.records[1].string, "x") && streq(c.records[2].string, "a") &&
	      c.records[0].file == 1, "records are ordered by their timestamps across logs");
	pcr_replay_init(&r, PCR_BANKS_ALL, 0);
	CHECK(cel_replay(&c, &r) == 0, "the records replay");
	for (int i = 0; i < 3; i++)
		pcr_bank_extend(sha256, want, abc);
	CHECK(memcmp(r.values[pcr_bank_index(sha256)][12], want, 32) == 0 &&
	      r.extended[pcr_bank_index(sha256)] == 1u << 12, "PCR 12 is three extensions with the digest");
	CHECK(r.unknown[pcr_bank_index(pcr_bank_by_name("sha1"))] == 1u << 12 &&
	      r.unknown[pcr_bank_index(sha256)] == 0, "banks the records carry no digest for are unknown");
	cel_done(&c);
	free(a);
	free(b);
	free(x);
}

static void refuse(const char *text, size_t n, const char *want, const char *name)
{
	struct cel c = { 0 };
	char err[CEL_ERROR_MAX], msg[2 * CEL_ERROR_MAX];
	int k;

	/* A record parsed before stays; the failing log adds nothing. */
	k = parse(&c, systemd_record, err);
	k = k == 0 ? cel_parse(&c, 1, text, n, err) : k;
	snprintf(msg, sizeof(msg), "refused: %s (\"%s\")", name, err);
	CHECK(k == -EBADMSG && streq(err, want) && c.n_records == 1, msg);
	cel_done(&c);
}

#define REFUSE(text, want, name) refuse(text, sizeof(text) - 1, want, name)
#define D256 "{\"hashAlg\":\"sha256\",\"digest\":\"" SHA256_ABC "\"}"

static void test_errors(void)
{
	static char big[CEL_RECORD_MAX + 8];

	REFUSE("{\"pcr\":1}\n", "offset 0: record 0: does not start with the RS (0x1e) of a JSON text sequence",
	       "plain JSON without RS");
	REFUSE("\x1e{\"pcr\":1,\"digests\":[" D256 "]", "offset 0: record 0: truncated JSON", "a torn last record");
	REFUSE("\x1e[1]\n", "offset 0: record 0: not a JSON object", "an array");
	REFUSE("\x1e{\"pcr\":1,\"digests\":[" D256 "]} x\n", "offset 0: record 0: text after the JSON object",
	       "garbage after the object");
	REFUSE("\x1e{\"digests\":[" D256 "]}\n", "offset 0: record 0: no \"pcr\"", "no pcr");
	REFUSE("\x1e{\"pcr\":24,\"digests\":[" D256 "]}\n", "offset 0: record 0: \"pcr\" 24 is out of range (0-23)",
	       "PCR 24");
	REFUSE("\x1e{\"pcr\":\"7\",\"digests\":[" D256 "]}\n", "offset 0: record 0: \"pcr\" is not an integer",
	       "a string PCR");
	REFUSE("\x1e{\"pcr\":7.5,\"digests\":[" D256 "]}\n", "offset 0: record 0: \"pcr\" is not an integer",
	       "a fractional PCR");
	REFUSE("\x1e{\"pcr\":7}\n", "offset 0: record 0: no \"digests\"", "no digests");
	REFUSE("\x1e{\"pcr\":7,\"digests\":[]}\n", "offset 0: record 0: 0 digests; a record has 1 to 5", "zero digests");
	REFUSE("\x1e{\"pcr\":7,\"digests\":[" D256 "," D256 "]}\n", "offset 0: record 0: digest 1: a second sha256 digest",
	       "a bank twice");
	REFUSE("\x1e{\"pcr\":7,\"digests\":[{\"hashAlg\":\"md5\",\"digest\":\"00\"}]}\n",
	       "offset 0: record 0: digest 0: unknown hashAlg \"md5\"", "an unknown algorithm");
	REFUSE("\x1e{\"pcr\":7,\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"abcd\"}]}\n",
	       "offset 0: record 0: digest 0: not 64 hex digits of sha256", "a short digest");
	REFUSE("\x1e{\"pcr\":7,\"digests\":[{\"hashAlg\":\"sha256\"}]}\n",
	       "offset 0: record 0: digest 0 is not {\"hashAlg\": NAME, \"digest\": HEX}", "a digest without value");
	REFUSE("\x1e{\"pcr\":7,\"digests\":[" D256 "],\"content\":\"x\"}\n", "offset 0: record 0: \"content\" is not an object",
	       "content that is not an object");
	REFUSE("\x1e{\"pcr\":7,\"digests\":[" D256 "],\"content\":{\"timestamp\":-1}}\n",
	       "offset 0: record 0: \"timestamp\" -1 is out of range (0-9223372036854775807)", "a negative timestamp");
	REFUSE("\x1e{\"pcr\":7,\"digests\":[" D256 "],\"content\":{\"string\":\"a\\u0000b\"}}\n",
	       "offset 0: record 0: \"string\" holds a NUL byte or is longer than 4096 bytes", "a NUL in a string");
	REFUSE("\x1e{\"pcr\":7,\"digests\":[" D256 "]}\n\x1e{\"pcr\":7,\"digests\":[" D256 "]}\x00\n",
	       "offset 120: record 1: holds a NUL byte", "a NUL byte in the second record, at its offset");
	REFUSE("\x1e{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":1}}}}}}}}}\n",
	       "offset 0: record 0: not JSON: nesting too deep", "deep nesting");
	memset(big, ' ', sizeof(big));
	big[0] = 0x1e;
	refuse(big, sizeof(big), "offset 0: record 0: longer than 65536 bytes", "an oversize record");
}

int main(void)
{
	test_systemd_record();
	test_round_trip();
	test_replay_and_sort();
	test_errors();
	return TAP_DONE();
}
