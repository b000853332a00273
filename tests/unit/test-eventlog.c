/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * common/eventlog.c: logs built here byte by byte, replayed against values computed here with
 * OpenSSL directly; StartupLocality and H-CRTM; every structural error names its offset.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "encode.h"
#include "eventlog.h"
#include "macro.h"
#include "tap.h"

#define LOG_MAX 65536

struct buf {
	uint8_t d[LOG_MAX];
	size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
	memcpy(b->d + b->n, p, n);
	b->n += n;
}

static void put16(struct buf *b, uint16_t v)
{
	uint8_t x[2] = { v & 0xff, v >> 8 };

	put(b, x, 2);
}

static void put32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };

	put(b, x, 4);
}

static void put64(struct buf *b, uint64_t v)
{
	put32(b, (uint32_t)v);
	put32(b, (uint32_t)(v >> 32));
}

static void hash(const char *md, const void *p, size_t n, uint8_t *out)
{
	unsigned len;

	EVP_Digest(p, n, out, &len, EVP_get_digestbyname(md), NULL);
}

/* pcr = H(pcr || H(data)), the independent reference the parser's replay must equal. */
static void extend(const char *md, size_t size, uint8_t *pcr, const void *data, size_t n)
{
	uint8_t b[2 * PCR_DIGEST_MAX];

	memcpy(b, pcr, size);
	hash(md, data, n, b + size);
	hash(md, b, 2 * size, pcr);
}

struct alg {
	uint16_t id, size;
	const char *md;
};

static const struct alg SHA1 = { TPM2_ALG_SHA1, 20, "SHA1" }, SHA256 = { TPM2_ALG_SHA256, 32, "SHA256" },
			SM3 = { TPM2_ALG_SM3_256, 32, "SM3" };

static void spec_id(struct buf *b, const struct alg *algs, unsigned n)
{
	uint8_t zero[20] = { 0 };

	put32(b, 0);
	put32(b, EV_NO_ACTION);
	put(b, zero, 20);
	put32(b, 16 + 4 + 4 + 4 + 4 * n + 1);
	put(b, "Spec ID Event03", 16);
	put32(b, 0);                             /* platformClass */
	put(b, (uint8_t[]){ 0, 2, 0, 2 }, 4);    /* version 2.0, errata 0, uintnSize 2 */
	put32(b, n);
	for (unsigned i = 0; i < n; i++) {
		put16(b, algs[i].id);
		put16(b, algs[i].size);
	}
	put(b, "", 1);                           /* vendorInfoSize 0 */
}

/* A TCG_PCR_EVENT2 whose digests are H(data) in each alg; data is also the event data. */
static void event2(struct buf *b, uint32_t pcr, uint32_t type, const struct alg *algs, unsigned n,
		   const void *data, size_t size)
{
	put32(b, pcr);
	put32(b, type);
	put32(b, n);
	for (unsigned i = 0; i < n; i++) {
		uint8_t d[PCR_DIGEST_MAX] = { 0 };

		if (type != EV_NO_ACTION)
			hash(algs[i].md, data, size, d);
		put16(b, algs[i].id);
		put(b, d, algs[i].size);
	}
	put32(b, (uint32_t)size);
	put(b, data, size);
}

static void event1(struct buf *b, uint32_t pcr, uint32_t type, const char *data)
{
	uint8_t d[20];

	hash("SHA1", data, strlen(data), d);
	put32(b, pcr);
	put32(b, type);
	put(b, d, 20);
	put32(b, (uint32_t)strlen(data));
	put(b, data, strlen(data));
}

static size_t bank(const char *name)
{
	return pcr_bank_index(pcr_bank_by_name(name));
}

static int parse(const struct buf *b, struct eventlog **log, char *err)
{
	*log = NULL;
	return eventlog_parse(b->d, b->n, log, err);
}

static void test_legacy(void)
{
	struct buf b = { .n = 0 };
	uint8_t want0[20] = { 0 }, want7[20] = { 0 };
	char err[EVENTLOG_ERROR_MAX];
	struct eventlog *log;

	event1(&b, 0, EV_S_CRTM_VERSION, "1.0");
	event1(&b, 7, EV_SEPARATOR, "");
	event1(&b, 0, EV_NO_ACTION, "not extended");
	event1(&b, 0, EV_SEPARATOR, "sep");
	extend("SHA1", 20, want0, "1.0", 3);
	extend("SHA1", 20, want0, "sep", 3);
	extend("SHA1", 20, want7, "", 0);
	CHECK(parse(&b, &log, err) == 0 && !log->agile && log->n_events == 4, "a legacy SHA-1 log parses");
	CHECK(log && log->banks == 1u << bank("sha1"), "a legacy log records the sha1 bank only");
	CHECK(log && memcmp(log->replay.values[bank("sha1")][0], want0, 20) == 0,
	      "legacy replay of PCR 0 equals H(H(0||H(\"1.0\"))||H(\"sep\")); EV_NO_ACTION is not extended");
	CHECK(log && memcmp(log->replay.values[bank("sha1")][7], want7, 20) == 0,
	      "legacy replay of PCR 7 (an event with no data) is H(0||H(\"\"))");
	CHECK(log && log->replay.extended[bank("sha1")] == (1u << 0 | 1u << 7),
	      "only PCRs that were extended are reported");
	eventlog_free(log);
}

static void test_agile(void)
{
	const struct alg algs[] = { SHA1, SHA256 };
	struct buf b = { .n = 0 };
	uint8_t want1[20] = { 0 }, want256[32] = { 0 };
	char err[EVENTLOG_ERROR_MAX], desc[256];
	struct eventlog *log;

	spec_id(&b, algs, 2);
	event2(&b, 4, EV_EFI_ACTION, algs, 2, "Calling EFI Application", 23);
	event2(&b, 4, EV_NO_ACTION, algs, 2, "NvIndexInstance\0xyz", 19);
	event2(&b, 4, EV_SEPARATOR, algs, 2, "\0\0\0", 4);
	extend("SHA1", 20, want1, "Calling EFI Application", 23);
	extend("SHA1", 20, want1, "\0\0\0", 4);
	extend("SHA256", 32, want256, "Calling EFI Application", 23);
	extend("SHA256", 32, want256, "\0\0\0", 4);
	CHECK(parse(&b, &log, err) == 0 && log->agile && log->n_events == 4, "a crypto-agile log parses");
	CHECK(log && log->banks == (1u << bank("sha1") | 1u << bank("sha256")),
	      "the banks are the ones the Spec ID event declares");
	CHECK(log && memcmp(log->replay.values[bank("sha1")][4], want1, 20) == 0 &&
	      memcmp(log->replay.values[bank("sha256")][4], want256, 32) == 0,
	      "both banks replay; the EV_NO_ACTION event in between does not extend");
	CHECK(log && log->replay.unknown[bank("sha1")] == 0 && log->replay.unknown[bank("sha256")] == 0,
	      "every event carries both digests: nothing unknown");
	if (log) {
		eventlog_describe(log, &log->events[0], desc, sizeof(desc));
		CHECK(streq(desc, "Spec ID Event03: banks sha1 sha256"), "the Spec ID event is described");
		eventlog_describe(log, &log->events[2], desc, sizeof(desc));
		CHECK(streq(desc, "signature \"NvIndexInstance\", 19 bytes"), "other EV_NO_ACTION events show their signature");
		eventlog_describe(log, &log->events[3], desc, sizeof(desc));
		CHECK(streq(desc, "separator"), "a zero separator is described");
		CHECK(streq(eventlog_type_name(log->events[1].type), "EV_EFI_ACTION") &&
		      eventlog_type_name(0x12345678) == NULL, "type names are known, or NULL");
	}
	eventlog_free(log);
}

static void test_missing_digest(void)
{
	const struct alg algs[] = { SHA1, SHA256 };
	struct buf b = { .n = 0 };
	char err[EVENTLOG_ERROR_MAX];
	struct eventlog *log;
	size_t at;

	spec_id(&b, algs, 2);
	event2(&b, 5, EV_EFI_ACTION, algs, 2, "a", 1);
	at = b.n;
	event2(&b, 5, EV_EFI_ACTION, algs, 1, "b", 1);
	CHECK(parse(&b, &log, err) == 0, "an event with fewer digests than the Spec ID declares parses");
	CHECK(log && log->replay.unknown[bank("sha256")] == 1u << 5 && log->replay.unknown[bank("sha1")] == 0 &&
	      log->replay.unknown_offset[bank("sha256")][5] == at,
	      "its missing bank's PCR becomes unknown, naming the event's offset");
	eventlog_free(log);
}

static void test_sm3(void)
{
	const struct alg algs[] = { SM3 };
	struct buf b = { .n = 0 };
	uint8_t want[32] = { 0 };
	char err[EVENTLOG_ERROR_MAX];
	struct eventlog *log;

	spec_id(&b, algs, 1);
	event2(&b, 2, EV_EFI_ACTION, algs, 1, "sm3", 3);
	extend("SM3", 32, want, "sm3", 3);
	CHECK(parse(&b, &log, err) == 0 && memcmp(log->replay.values[bank("sm3_256")][2], want, 32) == 0,
	      "an sm3_256 bank replays with OpenSSL's SM3");
	eventlog_free(log);
}

static void test_locality(void)
{
	const struct alg algs[] = { SHA256 };
	struct buf b = { .n = 0 }, h = { .n = 0 }, late = { .n = 0 };
	uint8_t want[32] = { 0 };
	char err[EVENTLOG_ERROR_MAX];
	struct eventlog *log;

	spec_id(&b, algs, 1);
	event2(&b, 0, EV_NO_ACTION, algs, 1, "StartupLocality\0\3", 17);
	event2(&b, 0, EV_S_CRTM_VERSION, algs, 1, "v", 1);
	want[31] = 3;
	extend("SHA256", 32, want, "v", 1);
	CHECK(parse(&b, &log, err) == 0 && log->locality == 3, "StartupLocality 3 is read");
	CHECK(log && memcmp(log->replay.values[bank("sha256")][0], want, 32) == 0,
	      "PCR 0 starts at 0...03 after StartupLocality 3");
	eventlog_free(log);

	spec_id(&h, algs, 1);
	event2(&h, 0, EV_EFI_HCRTM_EVENT, algs, 1, "HCRTM", 5);
	memset(want, 0, sizeof(want));
	want[31] = 4;
	extend("SHA256", 32, want, "HCRTM", 5);
	CHECK(parse(&h, &log, err) == 0 && log->locality == 4 &&
	      memcmp(log->replay.values[bank("sha256")][0], want, 32) == 0,
	      "an H-CRTM event starts PCR 0 at 0...04");
	eventlog_free(log);

	h = (struct buf){ .n = 0 };
	spec_id(&h, algs, 1);
	event2(&h, 0, EV_NO_ACTION, algs, 1, "StartupLocality\0\4", 17);
	event2(&h, 0, EV_EFI_HCRTM_EVENT, algs, 1, "HCRTM", 5);
	CHECK(parse(&h, &log, err) == 0 && log->locality == 4 &&
	      memcmp(log->replay.values[bank("sha256")][0], want, 32) == 0,
	      "StartupLocality 4 then the H-CRTM event (how H-CRTM platforms log it) starts PCR 0 at 0...04");
	eventlog_free(log);
	h = (struct buf){ .n = 0 };
	spec_id(&h, algs, 1);
	event2(&h, 0, EV_NO_ACTION, algs, 1, "StartupLocality\0\3", 17);
	event2(&h, 0, EV_EFI_HCRTM_EVENT, algs, 1, "HCRTM", 5);
	CHECK(parse(&h, &log, err) == -EBADMSG && strstr(err, "H-CRTM event contradicts StartupLocality 3"),
	      "StartupLocality 3 then an H-CRTM event is refused");

	spec_id(&late, algs, 1);
	event2(&late, 0, EV_S_CRTM_VERSION, algs, 1, "v", 1);
	event2(&late, 0, EV_NO_ACTION, algs, 1, "StartupLocality\0\3", 17);
	CHECK(parse(&late, &log, err) == -EBADMSG && strstr(err, "StartupLocality event after PCR 0 was extended") &&
	      strncmp(err, "offset ", 7) == 0, "StartupLocality after PCR 0 moved is refused with its offset");
}

/* Parses b and checks the error text, offset first. */
static void refuse(const struct buf *b, const char *want, const char *name)
{
	char err[EVENTLOG_ERROR_MAX], n[2 * EVENTLOG_ERROR_MAX];
	struct eventlog *log = NULL;
	int r = eventlog_parse(b->d, b->n, &log, err);

	snprintf(n, sizeof(n), "refused: %s (\"%s\")", name, err);
	CHECK(r == -EBADMSG && !log && streq(err, want), n);
	eventlog_free(log);
}

static void test_errors(void)
{
	const struct alg two[] = { SHA1, SHA256 }, six[] = { SHA1, SHA256, SHA1, SHA1, SHA1, SHA1 };
	const struct alg bad_size[] = { { TPM2_ALG_SHA256, 20, "SHA256" } };
	const struct alg unknown[] = { { 0x0099, 32, "SHA256" } };
	struct buf base = { .n = 0 }, b;
	size_t spec;
	char want[EVENTLOG_ERROR_MAX];

	spec_id(&base, two, 2);
	spec = base.n;

	b = base;
	put32(&b, 4);
	put32(&b, EV_EFI_ACTION);
	put32(&b, 1);
	put16(&b, TPM2_ALG_SHA1);
	put(&b, "01234567890123456789", 20);
	put32(&b, UINT32_MAX);
	snprintf(want, sizeof(want), "offset %zu: event 1: event size 4294967295 runs past end of log (%zu bytes)",
		 spec, b.n);
	refuse(&b, want, "an event size past the end");

	b = base;
	put32(&b, 4);
	put32(&b, EV_EFI_ACTION);
	put32(&b, 0);
	put32(&b, 0);
	snprintf(want, sizeof(want), "offset %zu: event 1: event has no digests", spec);
	refuse(&b, want, "zero digests");

	b = base;
	event2(&b, 4, EV_EFI_ACTION, six, 3, "x", 1);
	snprintf(want, sizeof(want), "offset %zu: event 1: digest count 3 exceeds the 2 algorithms the Spec ID event declares",
		 spec);
	refuse(&b, want, "a digest count above the header's");

	b = base;
	event2(&b, 4, EV_EFI_ACTION, (const struct alg[]){ { TPM2_ALG_SHA384, 48, "SHA384" } }, 1, "x", 1);
	snprintf(want, sizeof(want), "offset %zu: event 1: digest 0: algorithm 0x000c is not one the Spec ID event declares",
		 spec);
	refuse(&b, want, "a digest in an undeclared bank");

	b = base;
	event2(&b, 4, EV_EFI_ACTION, (const struct alg[]){ SHA1, SHA1 }, 2, "x", 1);
	snprintf(want, sizeof(want), "offset %zu: event 1: digest 1: a second sha1 digest", spec);
	refuse(&b, want, "the same bank twice in one event");

	b = base;
	event2(&b, 24, EV_EFI_ACTION, two, 2, "x", 1);
	snprintf(want, sizeof(want), "offset %zu: event 1: PCR index 24 is out of range (0-23)", spec);
	refuse(&b, want, "PCR 24");

	b = base;
	event2(&b, 17, EV_EFI_ACTION, two, 2, "x", 1);
	snprintf(want, sizeof(want), "offset %zu: event 1: PCR 17 is a dynamic-launch PCR, which firmware cannot extend",
		 spec);
	refuse(&b, want, "a DRTM PCR");

	b = base;
	event2(&b, 4, EV_EFI_ACTION, two, 2, "xyz", 3);
	b.n -= 1;
	snprintf(want, sizeof(want), "offset %zu: event 1: event size 3 runs past end of log (%zu bytes)", spec, b.n);
	refuse(&b, want, "a truncated last event");

	b = base;
	put(&b, "\4\0\0\0\7\0", 6);
	snprintf(want, sizeof(want), "offset %zu: event 1: truncated event header (6 bytes left, at least 12 needed)", spec);
	refuse(&b, want, "a truncated header");

	b = base;
	event2(&b, 4, EV_NO_ACTION, two, 2, "Spec ID Event03\0", 16);
	snprintf(want, sizeof(want), "offset %zu: event 1: a Spec ID event may only be the first event", spec);
	refuse(&b, want, "a second Spec ID event");

	b = base;
	{
		uint8_t var[32 + 4] = { 0 };

		var[16] = 200; /* UnicodeNameLength: far more than the 4 bytes that follow */
		event2(&b, 7, EV_EFI_VARIABLE_DRIVER_CONFIG, two, 2, var, sizeof(var));
	}
	snprintf(want, sizeof(want), "offset %zu: event 1: UEFI variable name (200 characters) and data (0 bytes) overrun the event's 36 bytes",
		 spec);
	refuse(&b, want, "UEFI variable data that overruns its event");

	b = base;
	event2(&b, 4, EV_EFI_BOOT_SERVICES_APPLICATION, two, 2, "short", 5);
	snprintf(want, sizeof(want), "offset %zu: event 1: UEFI image load event has 5 bytes of data, less than its 32-byte header",
		 spec);
	refuse(&b, want, "a short image load event");

	b = base;
	event2(&b, 0, EV_EFI_HCRTM_EVENT, two, 2, "HCRTX", 5);
	snprintf(want, sizeof(want), "offset %zu: event 1: H-CRTM event data is not \"HCRTM\"", spec);
	refuse(&b, want, "an H-CRTM event with other data");

	b = base;
	event2(&b, 0, EV_NO_ACTION, two, 2, "StartupLocality\0\2", 17);
	snprintf(want, sizeof(want), "offset %zu: event 1: StartupLocality 2 is not 0, 3 or 4", spec);
	refuse(&b, want, "an impossible startup locality");

	b = (struct buf){ .n = 0 };
	spec_id(&b, six, 6);
	refuse(&b, "offset 0: event 0: the Spec ID event declares sha1 twice", "sha1 declared four times");

	{
		struct alg many[EVENTLOG_ALGS_MAX + 1];

		for (unsigned i = 0; i < ELEMENTSOF(many); i++)
			many[i] = (struct alg){ (uint16_t)(0x0100 + i), 32, "SHA256" };
		many[0] = SHA256;
		b = (struct buf){ .n = 0 };
		spec_id(&b, many, ELEMENTSOF(many));
		refuse(&b, "offset 0: event 0: the Spec ID event declares 17 algorithms; at most 16 are accepted",
		       "17 algorithms");
	}

	b = (struct buf){ .n = 0 };
	spec_id(&b, two, 0);
	refuse(&b, "offset 0: event 0: the Spec ID event declares no algorithms", "no algorithms");

	b = (struct buf){ .n = 0 };
	spec_id(&b, unknown, 1);
	refuse(&b, "offset 0: event 0: the Spec ID event declares no algorithm keystrap can replay",
	       "only an algorithm keystrap has no bank for");

	b = (struct buf){ .n = 0 };
	spec_id(&b, bad_size, 1);
	refuse(&b, "offset 0: event 0: the Spec ID event gives sha256 a digest size of 20, not 32",
	       "a wrong digest size");

	b = (struct buf){ .n = 0 };
	spec_id(&b, (const struct alg[]){ SHA256, SHA256 }, 2);
	refuse(&b, "offset 0: event 0: the Spec ID event declares sha256 twice", "a bank declared twice");

	b = (struct buf){ .n = 0 };
	event2(&b, 0, EV_S_CRTM_VERSION, two, 2, "v", 1);
	refuse(&b, "offset 0: event 0: crypto-agile events without the Spec ID Event03 event that must come first",
	       "a missing Spec ID event");

	b = (struct buf){ .n = 0 };
	refuse(&b, "offset 0: event 0: the log is empty", "an empty log");

	b = (struct buf){ .n = 0 };
	event1(&b, 0, EV_SEPARATOR, "x");
	b.n -= 1;
	refuse(&b, "offset 0: event 0: event size 1 runs past end of log (32 bytes)", "a truncated legacy event");
}

/* Replays of PCRs 0-23 in every bank equal: the quirk changed nothing a verifier relies on. */
static bool same_replay(const struct eventlog *a, const struct eventlog *b)
{
	return a && b && memcmp(a->replay.extended, b->replay.extended, sizeof(a->replay.extended)) == 0 &&
	       memcmp(a->replay.unknown, b->replay.unknown, sizeof(a->replay.unknown)) == 0 &&
	       memcmp(a->replay.values, b->replay.values, sizeof(a->replay.values)) == 0;
}

/* What real firmware writes and the spec allows: each is accepted, each twin is not. */
static void test_quirks(void)
{
	const struct alg two[] = { SHA1, SHA256 }, sha3 = { 0x0027, 32, "SHA3-256" };
	const struct alg with_sha3[] = { SHA1, sha3, SHA256 };
	struct buf plain = { .n = 0 }, b, legacy = { .n = 0 }, l;
	uint8_t want[32] = { 0 };
	char err[EVENTLOG_ERROR_MAX], desc[256], msg[EVENTLOG_ERROR_MAX];
	struct eventlog *ref = NULL, *ref1 = NULL, *log = NULL;
	size_t spec, at;

	spec_id(&plain, two, 2);
	spec = plain.n;
	event2(&plain, 0, EV_S_CRTM_VERSION, two, 2, "v", 1);
	event2(&plain, 7, EV_SEPARATOR, two, 2, "\0\0\0", 4);
	CHECK(parse(&plain, &ref, err) == 0, "the reference log parses");
	event1(&legacy, 0, EV_S_CRTM_VERSION, "v");
	event1(&legacy, 7, EV_SEPARATOR, "sep");
	CHECK(parse(&legacy, &ref1, err) == 0, "the legacy reference log parses");

	/* Windows' boot manager: EV_NO_ACTION events on PCR 0xFFFFFFFF. */
	b = (struct buf){ .n = 0 };
	spec_id(&b, two, 2);
	event2(&b, UINT32_MAX, EV_NO_ACTION, two, 2, "WBCL\0\0\0\0\0\0\0\0\0\0\0\0x", 17);
	put(&b, plain.d + spec, plain.n - spec);
	CHECK(parse(&b, &log, err) == 0 && log->n_events == 4 && log->events[1].pcr == UINT32_MAX &&
	      same_replay(log, ref), "crypto-agile: an EV_NO_ACTION event on PCR 0xFFFFFFFF is kept and extends nothing");
	eventlog_free(log);
	l = (struct buf){ .n = 0 };
	event1(&l, UINT32_MAX, EV_NO_ACTION, "no PCR");
	put(&l, legacy.d, legacy.n);
	CHECK(parse(&l, &log, err) == 0 && log->n_events == 3 && same_replay(log, ref1),
	      "legacy: an EV_NO_ACTION event on PCR 0xFFFFFFFF extends nothing");
	eventlog_free(log);
	b = (struct buf){ .n = 0 };
	spec_id(&b, two, 2);
	event2(&b, UINT32_MAX, EV_EFI_ACTION, two, 2, "x", 1);
	snprintf(msg, sizeof(msg), "offset %zu: event 1: PCR index 4294967295 is out of range (0-23)", spec);
	refuse(&b, msg, "an extending event on PCR 0xFFFFFFFF");
	b = (struct buf){ .n = 0 };
	spec_id(&b, two, 2);
	event2(&b, UINT32_MAX, EV_NO_ACTION, two, 2, "StartupLocality\0\3", 17);
	snprintf(msg, sizeof(msg), "offset %zu: event 1: StartupLocality event on PCR 4294967295, not 0", spec);
	refuse(&b, msg, "a StartupLocality event elsewhere than PCR 0 (it would decide PCR 0's start)");

	/* An algorithm keystrap has no bank for, declared with its size: stepped over. */
	b = (struct buf){ .n = 0 };
	spec_id(&b, with_sha3, 3);
	event2(&b, 0, EV_S_CRTM_VERSION, with_sha3, 3, "v", 1);
	event2(&b, 7, EV_SEPARATOR, (const struct alg[]){ sha3, SHA256, SHA1 }, 3, "\0\0\0", 4);
	CHECK(parse(&b, &log, err) == 0 && log->n_algs == 3 && log->banks == ref->banks && same_replay(log, ref) &&
	      log->events[1].n_digests == 2 && log->events[2].n_digests == 2,
	      "a declared SHA3-256 digest is stepped over by its declared size, wherever it sits; the rest replays");
	if (log) {
		eventlog_describe(log, &log->events[0], desc, sizeof(desc));
		CHECK(streq(desc, "Spec ID Event03: banks sha1 sha256; not replayed: 0x0027"),
		      "the Spec ID description names the algorithm it does not replay");
	}
	eventlog_free(log);
	b = (struct buf){ .n = 0 };
	spec_id(&b, with_sha3, 3);
	at = b.n;
	event2(&b, 0, EV_S_CRTM_VERSION, (const struct alg[]){ sha3 }, 1, "v", 1);
	CHECK(parse(&b, &log, err) == 0 && log->replay.unknown[bank("sha256")] == 1u && log->replay.unknown_offset[bank("sha256")][0] == at,
	      "an event with only the unknown algorithm's digest leaves PCR 0 unknown in the banks keystrap replays");
	eventlog_free(log);
	b = (struct buf){ .n = 0 };
	spec_id(&b, with_sha3, 3);
	event2(&b, 0, EV_S_CRTM_VERSION, (const struct alg[]){ sha3, sha3 }, 2, "v", 1);
	snprintf(msg, sizeof(msg), "offset %zu: event 1: digest 1: a second 0x0027 digest", spec + 4);
	refuse(&b, msg, "the unknown algorithm twice in one event");
	b = (struct buf){ .n = 0 };
	spec_id(&b, (const struct alg[]){ SHA256, { 0x0027, 0, "SHA256" } }, 2);
	refuse(&b, "offset 0: event 0: the Spec ID event gives algorithm 0x0027 a digest size of 0 (1-64)",
	       "an unknown algorithm with no digest size");
	b = (struct buf){ .n = 0 };
	spec_id(&b, (const struct alg[]){ SHA256, { 0x0027, 65, "SHA256" } }, 2);
	refuse(&b, "offset 0: event 0: the Spec ID event gives algorithm 0x0027 a digest size of 65 (1-64)",
	       "an unknown algorithm with a digest larger than any TPM's");
	b = (struct buf){ .n = 0 };
	spec_id(&b, (const struct alg[]){ SHA256, sha3, sha3 }, 3);
	refuse(&b, "offset 0: event 0: the Spec ID event declares 0x0027 twice", "an unknown algorithm declared twice");

	/* A fixed-size log area: zeros after the last event are padding, not events. */
	b = plain;
	memset(b.d + b.n, 0, 100);
	b.n += 100;
	CHECK(parse(&b, &log, err) == 0 && log->n_events == 3 && log->padding == 100 && same_replay(log, ref),
	      "crypto-agile: 100 zero bytes after the last event are padding");
	eventlog_free(log);
	b.d[b.n - 1] = 1;
	snprintf(msg, sizeof(msg), "offset %zu: event 3: event has no digests", plain.n);
	refuse(&b, msg, "zeros that end in a non-zero byte are an event, and a malformed one");
	l = legacy;
	memset(l.d + l.n, 0, 64);
	l.n += 64;
	CHECK(parse(&l, &log, err) == 0 && log->n_events == 2 && log->padding == 64 && same_replay(log, ref1),
	      "legacy: 64 zero bytes (two all-zero events to a reader that ignores padding) extend nothing");
	eventlog_free(log);
	l = (struct buf){ .n = 64 };
	memset(l.d, 0, 64);
	refuse(&l, "offset 0: event 0: the log is empty (64 zero bytes)", "a log of zeros only");
	l = legacy;
	l.d[l.n - 1] = 0; /* the separator's data "sep" becomes "se\0": still its event, no padding */
	CHECK(parse(&l, &log, err) == 0 && log->n_events == 2 && log->padding == 0,
	      "an event's own trailing zero bytes are its data, not padding");
	eventlog_free(log);

	/* Firmware that logs a separator twice: both extend, as the TPM did. */
	b = (struct buf){ .n = 0 };
	spec_id(&b, (const struct alg[]){ SHA256 }, 1);
	event2(&b, 7, EV_SEPARATOR, (const struct alg[]){ SHA256 }, 1, "\0\0\0", 4);
	event2(&b, 7, EV_SEPARATOR, (const struct alg[]){ SHA256 }, 1, "\0\0\0", 4);
	extend("SHA256", 32, want, "\0\0\0", 4);
	extend("SHA256", 32, want, "\0\0\0", 4);
	CHECK(parse(&b, &log, err) == 0 && memcmp(log->replay.values[bank("sha256")][7], want, 32) == 0,
	      "two separators on PCR 7 both extend it");
	eventlog_free(log);

	/* A crypto-agile log that declares sha1 only (a TPM with the SHA-1 bank alone). */
	b = (struct buf){ .n = 0 };
	spec_id(&b, (const struct alg[]){ SHA1 }, 1);
	event2(&b, 0, EV_S_CRTM_VERSION, (const struct alg[]){ SHA1 }, 1, "v", 1);
	CHECK(parse(&b, &log, err) == 0 && log->agile && log->banks == 1u << bank("sha1") &&
	      memcmp(log->replay.values[bank("sha1")][0], ref->replay.values[bank("sha1")][0], 20) == 0,
	      "a crypto-agile SHA-1-only log replays its one bank");
	eventlog_free(log);

	eventlog_free(ref);
	eventlog_free(ref1);
}

/* Every prefix of a valid log either parses (at an event boundary) or names an offset. */
static void test_truncations(void)
{
	const struct alg two[] = { SHA1, SHA256 };
	struct buf b = { .n = 0 };
	size_t bounds[8], nb = 0;
	bool ok = true;

	spec_id(&b, two, 2);
	bounds[nb++] = b.n;
	event2(&b, 0, EV_S_CRTM_VERSION, two, 2, "v", 1);
	bounds[nb++] = b.n;
	event2(&b, 7, EV_SEPARATOR, two, 2, "\0\0\0", 4);
	bounds[nb++] = b.n;
	for (size_t n = 0; n <= b.n; n++) {
		char err[EVENTLOG_ERROR_MAX];
		struct eventlog *log = NULL;
		bool whole = false;
		size_t last = 0;
		int r = eventlog_parse(b.d, n, &log, err);

		/* Whole events, then nothing or only zeros (a cut inside the next event's PCR index). */
		for (size_t i = 0; i < nb; i++)
			if (bounds[i] <= n) {
				last = bounds[i];
				whole = true;
			}
		for (size_t i = last; whole && i < n; i++)
			whole = b.d[i] == 0;
		if (whole ? r != 0 || log->padding != n - last : (r != -EBADMSG || strncmp(err, "offset ", 7) != 0))
			ok = false;
		eventlog_free(log);
	}
	CHECK(ok, "every truncation parses at an event boundary (zeros after it are padding) and is refused with an offset elsewhere");
}

static void test_many_events(void)
{
	const struct alg algs[] = { SHA256 };
	struct buf *b = calloc(1, sizeof(*b));
	char err[EVENTLOG_ERROR_MAX];
	struct eventlog *log = NULL;

	spec_id(b, algs, 1);
	for (int i = 0; i < 1000; i++)
		event2(b, (uint32_t)(i % 16), EV_IPL, algs, 1, "x", 1);
	CHECK(eventlog_parse(b->d, b->n, &log, err) == 0 && log->n_events == 1001,
	      "1000 events after the Spec ID event all parse (the event table grows)");
	eventlog_free(log);
	free(b);
}

static void test_describe(void)
{
	const struct alg algs[] = { SHA256 };
	struct buf b = { .n = 0 }, v = { .n = 0 }, img = { .n = 0 };
	static const uint8_t guid[16] = { 0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11,
					  0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c };
	const char *name = "SecureBoot", *path = "\\EFI\\BOOT\\BOOTX64.EFI";
	char err[EVENTLOG_ERROR_MAX], desc[256];
	struct eventlog *log;

	put(&v, guid, 16);
	put64(&v, strlen(name));
	put64(&v, 1);
	for (const char *p = name; *p; p++)
		put16(&v, (uint16_t)*p);
	put(&v, "\1", 1);

	put64(&img, 0x1000);
	put64(&img, 4096);
	put64(&img, 0);
	put64(&img, 4 + 2 * (strlen(path) + 1) + 4);
	put(&img, (uint8_t[]){ 4, 4 }, 2);
	put16(&img, (uint16_t)(4 + 2 * (strlen(path) + 1)));
	for (const char *p = path; *p; p++)
		put16(&img, (uint16_t)*p);
	put16(&img, 0);
	put(&img, (uint8_t[]){ 0x7f, 0xff, 4, 0 }, 4);

	spec_id(&b, algs, 1);
	event2(&b, 7, EV_EFI_VARIABLE_DRIVER_CONFIG, algs, 1, v.d, v.n);
	event2(&b, 4, EV_EFI_BOOT_SERVICES_APPLICATION, algs, 1, img.d, img.n);
	event2(&b, 8, EV_IPL, algs, 1, "l\0i\0n\0u\0x\0\0\0", 12);
	event2(&b, 5, EV_EFI_ACTION, algs, 1, "Exit Boot Services\x01\xff", 20);
	CHECK(parse(&b, &log, err) == 0, "a log with variable, image, UCS-2 and binary events parses");
	if (!log)
		return;
	eventlog_describe(log, &log->events[1], desc, sizeof(desc));
	CHECK(streq(desc, "variable SecureBoot (8be4df61-93ca-11d2-aa0d-00e098032b8c), 1 byte"),
	      "a UEFI variable is described by name, GUID and size");
	eventlog_describe(log, &log->events[2], desc, sizeof(desc));
	CHECK(streq(desc, "image at 0x1000, 4096 bytes: \\EFI\\BOOT\\BOOTX64.EFI"),
	      "an image load event is described by its file path");
	eventlog_describe(log, &log->events[3], desc, sizeof(desc));
	CHECK(streq(desc, "linux"), "a UCS-2 string is decoded");
	eventlog_describe(log, &log->events[4], desc, sizeof(desc));
	CHECK(streq(desc, "Exit Boot Services??"), "bytes that are not printable ASCII are replaced");
	eventlog_describe(log, &log->events[1], desc, 12);
	CHECK(strlen(desc) == 11, "a description is cut to the buffer, never past it");
	eventlog_free(log);
}

int main(void)
{
	test_legacy();
	test_agile();
	test_missing_digest();
	test_sm3();
	test_locality();
	test_errors();
	test_quirks();
	test_truncations();
	test_many_events();
	test_describe();
	return TAP_DONE();
}
