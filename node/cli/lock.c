/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <stdio.h>

#include "keystrap.h"
#include "log.h"

static const char usage[] = "keystrap lock";

int lock_volumes(struct tpm *t)
{
	int r;

	/*
	 * The volumes-unlocked phase: "keystrap:volumes-unlocked" into PCR 15, logged like every
	 * other measurement. Public and fixed: what matters is that PCR 15 leaves the value keys
	 * are sealed against.
	 */
	r = measure_phase(t, "volumes-unlocked");
	if (r < 0)
		return r;
	printf("PCR %d extended: disk keys sealed to this boot can no longer be unsealed\n", LOCK_PCR);
	return 0;
}

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
