/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

static enum log_level max_level = LOG_LVL_INFO;
static char *capture;
static size_t capture_size;

void log_capture(char *buf, size_t size)
{
	capture = buf;
	capture_size = size;
	if (buf && size)
		buf[0] = 0;
}

void log_set_level(enum log_level level)
{
	max_level = level;
}

enum log_level log_get_level(void)
{
	return max_level;
}

void log_set_level_from_env(void)
{
	const char *e = secure_getenv("KEYSTRAP_LOG_LEVEL");

	if (!e)
		return;
	if (streq(e, "debug"))
		max_level = LOG_LVL_DEBUG;
	else if (streq(e, "info"))
		max_level = LOG_LVL_INFO;
	else if (streq(e, "warning"))
		max_level = LOG_LVL_WARNING;
	else if (streq(e, "error"))
		max_level = LOG_LVL_ERROR;
}

int log_full_errno(enum log_level level, int err, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (err < 0)
		err = -err;
	if (capture && level == LOG_LVL_ERROR) {
		/* The first error is the cause; later ones only report that it failed. */
		if (!capture[0]) {
			va_start(ap, fmt);
			errno = err ? err : saved;
			vsnprintf(capture, capture_size, fmt, ap);
			va_end(ap);
		}
	} else if (level <= max_level) {
		/* Each binary under its own name: keystrap, keystrap-server, the test helpers. One
		 * line whole: the server's worker threads log too (debug). */
		flockfile(stderr);
		fprintf(stderr, "%s: ", program_invocation_short_name);
		va_start(ap, fmt);
		/* %m is the error given, not whatever errno the caller's last call left. */
		errno = err ? err : saved;
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
		funlockfile(stderr);
	}
	errno = saved;
	return -err;
}

bool log_limit_pass(struct log_limit *l, int64_t now_us, uint64_t *ret_held)
{
	if (l->logged && now_us - l->last_us < 1000000 && now_us >= l->last_us) {
		l->held++;
		return false;
	}
	*ret_held = l->held;
	l->held = 0;
	l->last_us = now_us;
	l->logged = true;
	return true;
}
