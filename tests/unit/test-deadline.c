/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * common/deadline.c's retry_wait_ms: Retry-After is the least wait, the random part is full
 * jitter over a doubling span capped at 4 s, every wait ends before the budget, and a
 * Retry-After past the budget is -ETIMEDOUT; random values spread the waits.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "deadline.h"
#include "tap.h"

int main(void)
{
	bool all = true;
	int64_t lo = INT64_MAX, hi = 0;

	CHECK(retry_wait_ms(0, -1, 0, 100000) == 0, "no Retry-After, random 0: no wait (full jitter starts at 0)");
	CHECK(retry_wait_ms(0, -1, 250, 100000) == 250, "the first span is 250 ms, ends included");
	CHECK(retry_wait_ms(0, -1, 251, 100000) == 0, "... and wraps past it");
	CHECK(retry_wait_ms(3, -1, 2000, 100000) == 2000, "the span doubles: 2 s at the fourth retry");
	CHECK(retry_wait_ms(9, -1, 4000, 100000) == 4000 && retry_wait_ms(9, -1, 4001, 100000) == 0,
	      "... capped at 4 s");
	CHECK(retry_wait_ms(40, -1, 4000, 100000) == 4000, "a large exponent does not overflow");
	CHECK(retry_wait_ms(0, 2, 0, 100000) == 2000, "Retry-After is the least wait");
	CHECK(retry_wait_ms(2, 2, 1000, 100000) == 3000, "... then the jitter on top");
	CHECK(retry_wait_ms(0, 2, 0, 2000) == -ETIMEDOUT, "a Retry-After ending at the budget: -ETIMEDOUT");
	CHECK(retry_wait_ms(4, 2, 499, 2500) == 2499 && retry_wait_ms(4, 2, 500, 2500) == 2000, "the jitter is cut to end before the budget");
	CHECK(retry_wait_ms(0, -1, 7, 0) == -ETIMEDOUT, "no budget left: -ETIMEDOUT");
	CHECK(retry_wait_ms(0, 0, 0, 10) == 0, "Retry-After 0: at once");
	for (uint32_t r = 0; r < 100000; r += 7) {
		int64_t w = retry_wait_ms(4, 1, r * 2654435761u, 60000);

		all &= w >= 1000 && w <= 5000;
		lo = w < lo ? w : lo;
		hi = w > hi ? w : hi;
	}
	CHECK(all && lo < 1100 && hi > 4900, "random values spread the waits over [Retry-After, Retry-After + 4 s]");
	return TAP_DONE();
}
