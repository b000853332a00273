/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "eventlog.h"
#include "fileio.h"
#include "keystrap.h"
#include "log.h"

int usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fputs("keystrap: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nUsage: %s\n", usage);
	return EXIT_USAGE;
}

int parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

int read_event_log(const char *path, uint8_t **ret_data, struct eventlog **ret_log)
{
	_cleanup_eventlog_ struct eventlog *log = NULL;
	_cleanup_free_ uint8_t *data = NULL;
	char err[EVENTLOG_ERROR_MAX];
	size_t size;
	int r;

	r = read_file(path, FIRMWARE_LOG_MAX, &data, &size);
	if (r < 0)
		return log_error_errno(r, "cannot read event log '%s': %s", path,
				       r == -EFBIG ? "larger than 16 MiB" : strerror(-r));
	r = eventlog_parse(data, size, &log, err);
	if (r < 0)
		return log_error_errno(r, "%s: %s", path, r == -EBADMSG ? err : strerror(-r));
	*ret_data = TAKE_PTR(data);
	*ret_log = TAKE_PTR(log);
	return 0;
}
