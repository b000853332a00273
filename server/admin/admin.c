/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "log.h"
#include "server-config.h"

int admin_load(const char *config, struct server_config **ret_config, struct store **ret)
{
	_cleanup_server_config_ struct server_config *c = NULL;

	if (server_config_load(config, &c) < 0)
		return 1;
	/* store_open names the store and why it failed. */
	if (store_open(c->database, ret) < 0)
		return 1;
	if (ret_config)
		*ret_config = TAKE_PTR(c);
	return 0;
}

void admin_operator(char *buf, size_t size)
{
	const char *u = getlogin();

	if (u)
		snprintf(buf, size, "operator:%s", u);
	else
		snprintf(buf, size, "operator:uid=%u", (unsigned)getuid());
}

int admin_open_group(int argc, char **argv, const char *usage, const char **ret_id, const char **ret_group,
		     const char **ret_verb, const char **ret_arg, struct store **ret)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "id", required_argument, NULL, 'i' },
					      { "group", required_argument, NULL, 'g' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	const char *config = NULL;
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'i':
			if (!ret_id)
				goto bad;
			*ret_id = optarg;
			break;
		case 'g':
			if (!ret_group)
				goto bad;
			*ret_group = optarg;
			break;
		case 'h':
			printf("Usage: %s\n", usage);
			return EXIT_HELP;
		default:
			goto bad;
		}
	if (!config || optind >= argc || argc - optind > (ret_arg ? 2 : 1))
		goto bad;
	*ret_verb = argv[optind];
	if (ret_arg)
		*ret_arg = optind + 1 < argc ? argv[optind + 1] : NULL;
	return admin_load(config, NULL, ret);
bad:
	fprintf(stderr, "Usage: %s\n", usage);
	return EXIT_USAGE;
}

int admin_open(int argc, char **argv, const char *usage, const char **ret_id, const char **ret_verb,
	       const char **ret_arg, struct store **ret)
{
	return admin_open_group(argc, argv, usage, ret_id, NULL, ret_verb, ret_arg, ret);
}
