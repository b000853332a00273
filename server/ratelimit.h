/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/*
 * Per-peer-address token buckets in a fixed table (memory does not grow with the number of
 * peers): RATELIMIT_SLOTS entries, RATELIMIT_WAYS-way set associative on a keyed hash of the
 * address; a new address takes the least recently seen entry of its set. An evicted address
 * starts again with a full bucket: the table bounds memory, not what an attacker with more
 * addresses than slots can send.
 */
#define RATELIMIT_SLOTS 4096
#define RATELIMIT_WAYS 8

struct ratelimit;

struct ratelimit_verdict {
	bool allowed;
	int64_t retry_after;  /* refused: whole seconds until the next token */
	bool report;          /* refused: the first refusal of this peer in a second, worth a record */
	uint64_t refused;     /* refused: how many since the last report, this one included */
};

/* rate 0: every request allowed, no table. */
int ratelimit_new(double rate, double burst, struct ratelimit **ret);
void ratelimit_free(struct ratelimit *l);
void ratelimit_take(struct ratelimit *l, const char *addr, int64_t now_us, struct ratelimit_verdict *ret);
