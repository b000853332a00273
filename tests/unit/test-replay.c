/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A verifier's replay (common/replay.c, eventlog_parse_banks, cel_replay, server/evidence.c):
 * a real machine's firmware log replayed in the quoted bank only equals tpm2_eventlog's values
 * there, and leaves every PCR it extends unknown in the bank not replayed; a quote in that
 * bank is then refused, never judged on values nobody computed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "cel.h"
#include "encode.h"
#include "eventlog.h"
#include "evidence.h"
#include "fileio.h"
#include "macro.h"
#include "tap.h"

/* A real machine's log (59 events, sha1 and sha256, PCRs 0-9), copied from ../shared/testdata. */
#define LOG "tests/data/eventlogs/event-postcode.bin"
#define LOG_PCRS 0x3ffu
/* tpm2_eventlog LOG, under pcrs: sha256: (tpm2-tools, the oracle tests/data/eventlogs names). */
#define PCR0 "d60c30777ea9cad0ac8868eda11a00608a26f0a2f9b5d5fbdd4a84d7884ea946"
#define PCR7 "cea0b7475867ab2ced4f6a278530c0a57e0f826cfefdf747c0e670ca09140ea5"
#define PCR9 "fa774bed1acc7f2c6c4f0457bd33d8f584d018f9d8563463f308d2990453f492"
/* ... and under sha1:, for the bank when it is the one replayed. */
#define SHA1_PCR7 "e8145f6a55372158d87f55c33b17abe7c35987ef"

static size_t bank(const char *name)
{
	return pcr_bank_index(pcr_bank_by_name(name));
}

static bool is_hex(const uint8_t *d, size_t n, const char *hex)
{
	char h[2 * PCR_DIGEST_MAX + 1];

	hex_encode(d, n, h);
	return streq(h, hex);
}

/* Where the first event extending pcr starts: the offset an unknown value must name. */
static size_t first_event(const struct eventlog *log, unsigned pcr)
{
	for (size_t i = 0; i < log->n_events; i++)
		if (log->events[i].type != EV_NO_ACTION && log->events[i].pcr == pcr)
			return log->events[i].offset;
	return SIZE_MAX;
}

/* Field by field: the structs' padding is not part of what the parser says. */
static bool same_events(const struct eventlog *a, const struct eventlog *b)
{
	if (a->n_events != b->n_events)
		return false;
	for (size_t i = 0; i < a->n_events; i++) {
		const struct eventlog_event *x = &a->events[i], *y = &b->events[i];

		if (x->offset != y->offset || x->pcr != y->pcr || x->type != y->type || x->n_digests != y->n_digests ||
		    x->data_offset != y->data_offset || x->data_size != y->data_size)
			return false;
		for (unsigned j = 0; j < x->n_digests; j++)
			if (x->digests[j].bank != y->digests[j].bank || x->digests[j].offset != y->digests[j].offset)
				return false;
	}
	return true;
}

static void test_quoted_bank_only(const uint8_t *data, size_t size)
{
	const size_t s1 = bank("sha1"), s256 = bank("sha256");
	_cleanup_eventlog_ struct eventlog *all = NULL, *one = NULL;
	char err[EVENTLOG_ERROR_MAX];
	bool offsets = true, reset_values = true, others = true;

	CHECK(eventlog_parse(data, size, &all, err) == 0 && all->replay.banks == PCR_BANKS_ALL &&
	      all->replay.unknown[s1] == 0 && all->replay.unknown[s256] == 0,
	      "the real log replays in every bank by default, sha1 and sha256 known");
	CHECK(eventlog_parse_banks(data, size, 1u << s256, &one, err) == 0 && one->replay.banks == 1u << s256,
	      "the same log parses with sha256 alone replayed");
	if (!all || !one)
		return;
	CHECK(is_hex(one->replay.values[s256][0], 32, PCR0) && is_hex(one->replay.values[s256][7], 32, PCR7) &&
	      is_hex(one->replay.values[s256][9], 32, PCR9),
	      "sha256 alone: PCRs 0, 7 and 9 are what tpm2_eventlog computes");
	CHECK(memcmp(one->replay.values[s256], all->replay.values[s256], sizeof(one->replay.values[s256])) == 0 &&
	      one->replay.extended[s256] == LOG_PCRS && one->replay.unknown[s256] == 0,
	      "sha256 alone: every PCR as the replay of every bank has it, PCRs 0-9 extended, none unknown");
	CHECK(same_events(one, all),
	      "the events parse the same whichever banks are replayed");
	CHECK(one->replay.extended[s1] == LOG_PCRS && one->replay.unknown[s1] == LOG_PCRS,
	      "sha1 not replayed: each PCR the log extends is unknown there");
	for (unsigned i = 0; i < PCR_COUNT; i++) {
		uint8_t reset[PCR_DIGEST_MAX] = { 0 };

		reset[19] = i == 0 ? one->locality : 0;
		if (LOG_PCRS & (1u << i))
			offsets = offsets && one->replay.unknown_offset[s1][i] == first_event(one, i);
		reset_values = reset_values && memcmp(one->replay.values[s1][i], reset, 20) == 0;
	}
	CHECK(offsets, "sha1 not replayed: each unknown PCR names its first event's offset");
	CHECK(reset_values, "sha1 not replayed: every PCR keeps its reset value, nothing was computed");
	for (size_t b = 0; b < PCR_BANKS; b++)
		if (b != s1 && b != s256)
			others = others && one->replay.extended[b] == LOG_PCRS && one->replay.unknown[b] == LOG_PCRS;
	CHECK(others, "banks the log has no digests for are unknown, as when every bank is replayed");
	CHECK(all->replay.unknown[s1] == 0 && is_hex(all->replay.values[s1][7], 20, SHA1_PCR7),
	      "twin: replayed in every bank, sha1's PCR 7 is known and tpm2_eventlog's");
}

/* The CEL records on top of a replay honour its banks: keystrap's PCR 12 in sha256 alone. */
static void test_cel(const uint8_t *data, size_t size)
{
	const struct pcr_bank *sha1 = pcr_bank_by_name("sha1"), *sha256 = pcr_bank_by_name("sha256");
	_cleanup_eventlog_ struct eventlog *log = NULL;
	struct cel_digest d[2] = { { sha1 }, { sha256 } };
	uint8_t want[32] = { 0 };
	struct pcr_replay r;
	struct cel c = { 0 };
	char err[EVENTLOG_ERROR_MAX > CEL_ERROR_MAX ? EVENTLOG_ERROR_MAX : CEL_ERROR_MAX], *rec = NULL;

	memset(d[0].value, 0x11, 20);
	memset(d[1].value, 0x22, 32);
	if (eventlog_parse_banks(data, size, 1u << pcr_bank_index(sha256), &log, err) < 0 ||
	    cel_format(12, d, 2, "keystrap:enter-initrd", "phase", "0123456789abcdef0123456789abcdef", 1, &rec) < 0 ||
	    cel_parse(&c, 0, rec, strlen(rec), err) < 0) {
		CHECK(false, "the firmware log and a CEL record parse");
		free(rec);
		return;
	}
	r = log->replay;
	CHECK(cel_replay(&c, &r) == 0, "a CEL record with both digests replays after the firmware log");
	pcr_bank_extend(sha256, want, d[1].value);
	CHECK(memcmp(r.values[pcr_bank_index(sha256)][12], want, 32) == 0 &&
	      r.unknown[pcr_bank_index(sha256)] == 0, "sha256: PCR 12 is the record's extension");
	CHECK(r.unknown[pcr_bank_index(sha1)] == (LOG_PCRS | 1u << 12) &&
	      r.unknown_offset[pcr_bank_index(sha1)][12] == c.records[0].offset,
	      "sha1: PCR 12 unknown as well, naming the record, though the record has a sha1 digest");
	r = log->replay;
	r.banks = PCR_BANKS_ALL;
	CHECK(cel_replay(&c, &r) == 0 && !(r.unknown[pcr_bank_index(sha1)] & (1u << 12)),
	      "twin: replayed in sha1 too, the record's PCR 12 is known there");
	cel_done(&c);
	free(rec);
}

/* The server's replay of a finish: the quoted bank only, so a quote in a bank not replayed cannot pass. */
static void test_evidence(uint8_t *data, size_t size)
{
	struct attest_finish *m = calloc(1, sizeof(*m));
	struct evidence e;
	char reason[ATTEST_REASON_MAX];
	int r;

	if (!m) {
		CHECK(false, "memory");
		return;
	}
	m->bank = pcr_bank_by_name("sha256");
	m->mask = 1u << 0 | 1u << 7;
	m->event_log = data;
	m->event_log_size = size;
	hex_decode(PCR0, m->pcr_values[0], 32);
	hex_decode(PCR7, m->pcr_values[7], 32);
	r = evidence_replay(m, &e, reason);
	CHECK(r == 0 && e.replay.banks == 1u << bank("sha256") && e.replay.unknown[bank("sha1")] == LOG_PCRS &&
	      e.n_events[7] > 0, "a sha256 quote of PCRs 0 and 7 replays, sha256 alone computed, its events collected");
	if (r == 0)
		evidence_done(&e);
	m->pcr_values[7][31] ^= 1;
	r = evidence_replay(m, &e, reason);
	CHECK(r == -EPERM && strstr(reason, "event log does not replay to quoted PCR 7 (sha256)"),
	      "twin: PCR 7 off by one bit is refused, naming it");
	/* sha1 quoted: sha1 is replayed, and tpm2_eventlog's value passes. */
	m->bank = pcr_bank_by_name("sha1");
	m->mask = 1u << 7;
	memset(m->pcr_values, 0, sizeof(m->pcr_values));
	hex_decode(SHA1_PCR7, m->pcr_values[7], 20);
	r = evidence_replay(m, &e, reason);
	CHECK(r == 0 && e.replay.banks == 1u << bank("sha1") && e.replay.unknown[bank("sha256")] == LOG_PCRS,
	      "a sha1 quote is replayed in sha1, sha256 then unknown");
	if (r == 0)
		evidence_done(&e);
	free(m);
}

/*
 * The behaviour the quoted-bank replay changes: a log carrying a bank this OpenSSL cannot hash
 * parses unless that bank is replayed. Only observable on an OpenSSL without SM3.
 */
static void test_uncomputable_bank(void)
{
	EVP_MD *sm3 = EVP_MD_fetch(NULL, "SM3", NULL);

	if (sm3) {
		EVP_MD_free(sm3);
		SKIP("a log with sm3_256 digests parses with sha256 replayed, not with sm3_256", "this OpenSSL has SM3");
		return;
	}
	/* sm3_256 declared but uncomputable: replaying it fails, replaying sha256 alone does not. */
	{
		struct pcr_replay r;
		struct pcr_hashes h = { 0 };
		const struct pcr_bank *banks[2] = { pcr_bank_by_name("sha256"), pcr_bank_by_name("sm3_256") };
		const struct pcr_bank *bad = NULL;
		const uint8_t d[32] = { 1 }, *digests[2] = { d, d };

		pcr_replay_init(&r, PCR_BANKS_ALL, 0);
		CHECK(pcr_replay_event(&r, &h, 1, 0, 2, banks, digests, &bad) == -EOPNOTSUPP && bad == banks[1],
		      "every bank replayed: sm3_256 cannot be computed");
		pcr_replay_init(&r, 1u << bank("sha256"), 0);
		CHECK(pcr_replay_event(&r, &h, 1, 0, 2, banks, digests, &bad) == 0 && (r.unknown[bank("sm3_256")] & 2u),
		      "sha256 alone: the event replays, sm3_256 unknown");
		pcr_hashes_done(&h);
	}
}

int main(void)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t size = 0;

	CHECK(read_file(LOG, 1 << 20, &data, &size) == 0 && size > 0, "the real log " LOG " is read");
	if (data) {
		test_quoted_bank_only(data, size);
		test_cel(data, size);
		test_evidence(data, size);
	}
	test_uncomputable_bank();
	return TAP_DONE();
}
