/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <stdio.h>

#include "keystrap.h"
#include "log.h"
#include "measure.h"

static const char usage[] = "keystrap lock";

int cmd_lock(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		if (opt == 'h') {
			printf("Usage: %s\n\nExtend PCR 15 in every active bank so that no disk key sealed "
			       "against its boot value\ncan be unsealed again until the next boot. "
			       "'keystrap unlock' does this itself once\nevery volume it was asked "
			       "for is open.\n", usage);
			return 0;
		}
		return usage_error(usage, "invalid option");
	}
	if (optind < argc)
		return usage_error(usage, "unexpected argument '%s'", argv[optind]);
	return lock_volumes(NULL) < 0 ? 1 : 0;
}
