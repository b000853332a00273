/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keystrap-server serve: the command line of the service (server/serve.c runs it). */
#include <getopt.h>
#include <stdio.h>

#include "admin.h"
#include "serve.h"
#include "server-config.h"

static const char usage[] = "keystrap-server serve --config FILE";

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	const char *config = NULL;
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			printf("Usage: %s\n", usage);
			return 0;
		default:
			fprintf(stderr, "Usage: %s\n", usage);
			return EXIT_USAGE;
		}
	if (!config || optind != argc) {
		fprintf(stderr, "keystrap-server: serve takes --config FILE and nothing else\nUsage: %s\n", usage);
		return EXIT_USAGE;
	}
	return serve_run(config);
}
