/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC: what every deadline is measured on (a wrong RTC cannot move it). */
int64_t mono_ms(void);

/* Until fd is ready for events (poll(2) flags): 0, -ETIMEDOUT once deadline_ms has passed, or -errno. */
int fd_wait(int fd, short events, int64_t deadline_ms);
