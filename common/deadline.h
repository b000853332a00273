/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC: what every deadline is measured on (a wrong RTC cannot move it). */
int64_t mono_ms(void);
/* The same clock in microseconds, for what is measured finer than deadlines (the server's loop lag). */
int64_t mono_us(void);

/* Until fd is ready for events (poll(2) flags): 0, -ETIMEDOUT once deadline_ms has passed, or -errno. */
int fd_wait(int fd, short events, int64_t deadline_ms);

/*
 * The wait before the next try of a request that got a busy answer (429, 503...) or none:
 * the server's Retry-After (seconds; -1: none) at least, then "full jitter", a part of
 * [0, min(4 s, 250 ms x 2^retried)] chosen by random, so that nodes sent away together (a
 * fleet rebooting at once) do not come back together. The random part is cut to end before
 * left_ms; -ETIMEDOUT when the Retry-After alone does not. Pure: random is the caller's.
 */
#define RETRY_BASE_MS 250
#define RETRY_CAP_MS 4000
int64_t retry_wait_ms(unsigned retried, long retry_after_s, uint32_t random, int64_t left_ms);
