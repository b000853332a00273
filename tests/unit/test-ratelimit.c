/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * server/ratelimit.c: the token bucket per address (burst, refill, Retry-After rounded up,
 * one report per second with the count), addresses kept apart, and the fixed table: a flood
 * of new addresses evicts idle entries, never one that keeps sending.
 */
#include <stdio.h>
#include <string.h>

#include "../../server/ratelimit.c"
#include "tap.h"

#define S 1000000LL

int main(void)
{
	struct ratelimit *l = NULL, *off = NULL;
	struct ratelimit_verdict v;
	bool all = true, ok;
	char a[48];

	CHECK(ratelimit_new(0, 5, &off) == 0 && !off, "rate 0: no limit, no table");
	ratelimit_take(off, "10.0.0.1", 0, &v);
	CHECK(v.allowed, "rate 0 allows");

	CHECK(ratelimit_new(1, 3, &l) == 0 && l, "a table");
	for (int i = 0; i < 3; i++) {
		ratelimit_take(l, "10.0.0.1", 100 * S, &v);
		all &= v.allowed;
	}
	CHECK(all, "the burst passes");
	ratelimit_take(l, "10.0.0.1", 100 * S, &v);
	CHECK(!v.allowed && v.retry_after == 1 && v.report && v.refused == 1,
	      "the next is refused, Retry-After 1 s, reported");
	ratelimit_take(l, "10.0.0.1", 100 * S + 1000, &v);
	CHECK(!v.allowed && !v.report && v.refused == 1, "refused again within the second: counted, not reported");
	ratelimit_take(l, "10.0.0.1", 100 * S + 2000, &v);
	CHECK(!v.allowed && !v.report && v.refused == 2, "the count grows");
	ratelimit_take(l, "10.0.0.2", 100 * S + 2000, &v);
	CHECK(v.allowed, "another address has its own bucket");
	ratelimit_take(l, "10.0.0.1", 101 * S + 2000, &v);
	CHECK(v.allowed, "one second later one token is back");
	ratelimit_take(l, "10.0.0.1", 101 * S + 3000, &v);
	CHECK(!v.allowed && v.report && v.refused == 3, "the next refusal a second after the last report reports 3");
	ratelimit_free(l);

	CHECK(ratelimit_new(0.25, 1, &l) == 0, "a slow table");
	ratelimit_take(l, "::1", 0, &v);
	ratelimit_take(l, "::1", S / 2, &v);
	/* 0.125 tokens, 0.875 missing at 0.25/s: 3.5 s, rounded up. */
	CHECK(!v.allowed && v.retry_after == 4, "Retry-After rounds up to whole seconds");
	ratelimit_free(l);

	CHECK(ratelimit_new(1, 1, &l) == 0, "a table to flood");
	ratelimit_take(l, "flooder", 0, &v);
	ratelimit_take(l, "flooder", 0, &v);
	ok = !v.allowed;
	for (int i = 0; i < 10 * RATELIMIT_SLOTS; i++) {
		snprintf(a, sizeof(a), "10.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255);
		/* A microsecond apart: 82 ms in all, too little to earn the flooder a token. */
		ratelimit_take(l, a, 2 * i + 1, &v);
		ratelimit_take(l, "flooder", 2 * i + 2, &v);
		ok &= !v.allowed;
	}
	CHECK(ok, "an address that keeps sending stays limited while 40960 others pass through the table");
	ratelimit_take(l, "idle", 100000, &v);
	ratelimit_take(l, "idle", 100000, &v);
	CHECK(!v.allowed, "an idle address, limited");
	for (int i = 0; i < 10 * RATELIMIT_SLOTS; i++) {
		snprintf(a, sizeof(a), "11.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255);
		ratelimit_take(l, a, 100001 + i, &v);
	}
	ratelimit_take(l, "idle", 200000, &v);
	CHECK(v.allowed, "once evicted by new addresses it starts again with a full bucket (memory is fixed)");
	ratelimit_free(l);
	return TAP_DONE();
}
