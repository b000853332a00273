/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include "macro.h"

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARNING, LOG_LVL_NOTICE, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_set_level(enum log_level level);
void log_set_level_from_env(void);
enum log_level log_get_level(void);

/* Logs and returns -abs(err) so boundaries can "return log_error_errno(r, ...)". */
int log_full_errno(enum log_level level, int err, const char *fmt, ...) _printf_(3, 4);

#define log_error(...) (void) log_full_errno(LOG_LVL_ERROR, 0, __VA_ARGS__)
#define log_warning(...) (void) log_full_errno(LOG_LVL_WARNING, 0, __VA_ARGS__)
#define log_info(...) (void) log_full_errno(LOG_LVL_INFO, 0, __VA_ARGS__)
#define log_debug(...) (void) log_full_errno(LOG_LVL_DEBUG, 0, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_LVL_ERROR, (e), __VA_ARGS__)
#define log_debug_errno(e, ...) log_full_errno(LOG_LVL_DEBUG, (e), __VA_ARGS__)

/*
 * While buf is set, the first error logged goes there (without the program's name) instead of
 * to stderr, so a caller can say in one line what failed and what it did about it; NULL ends it.
 */
void log_capture(char *buf, size_t size);

/*
 * At most one line a second for one kind of failure, however often it happens: a struct
 * log_limit per kind (static, zeroed), and log_limit_pass says whether this occurrence may be
 * logged and how many were held back since the last one that was.
 */
struct log_limit {
	int64_t last_us;
	uint64_t held;
	bool logged;
};
bool log_limit_pass(struct log_limit *l, int64_t now_us, uint64_t *ret_held);
