/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>

#include "keystrap.h"

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
