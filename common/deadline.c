/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <time.h>

#include "deadline.h"

int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int fd_wait(int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int64_t left = deadline_ms - mono_ms();
		int k;

		if (left <= 0)
			return -ETIMEDOUT;
		k = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (k > 0)
			return 0;
		if (k == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int64_t retry_wait_ms(unsigned retried, long retry_after_s, uint32_t random, int64_t left_ms)
{
	int64_t floor = retry_after_s > 0 ? (int64_t)retry_after_s * 1000 : 0;
	/* 250 ms << 4 is the 4 s cap. */
	int64_t span = retried < 4 ? (int64_t)RETRY_BASE_MS << retried : RETRY_CAP_MS;

	if (floor >= left_ms)
		return -ETIMEDOUT;
	if (span > left_ms - 1 - floor)
		span = left_ms - 1 - floor;
	return floor + (int64_t)(random % (uint64_t)(span + 1));
}
