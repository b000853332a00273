/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keystrap-server log-key generate FILE --name NAME: the audit log's signing key. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>

#include "admin.h"
#include "log-key.h"
#include "note.h"

static const char usage[] = "keystrap-server log-key generate FILE --name NAME";

int cmd_log_key(int argc, char **argv)
{
	static const struct option opts[] = { { "name", required_argument, NULL, 'n' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	const char *name = NULL;
	char vkey[NOTE_KEY_MAX], why[PATH_MAX + 256];
	int opt;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (opt) {
		case 'n': name = optarg; break;
		case 'h': printf("Usage: %s\n", usage); return EXIT_HELP;
		default: fprintf(stderr, "Usage: %s\n", usage); return EXIT_USAGE;
		}
	if (argc - optind != 2 || !streq(argv[optind], "generate") || !name) {
		fprintf(stderr, "Usage: %s\n", usage);
		return EXIT_USAGE;
	}
	if (log_key_generate(argv[optind + 1], name, vkey, why, sizeof(why)) < 0)
		return admin_refuse("%s", why);
	/* What nodes pin ([Attest] LogKey=) and auditors pass to audit verify --log-key. */
	printf("%s\n", vkey);
	return 0;
}
