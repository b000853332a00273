/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap config get SECTION.KEY: one value of keystrap.conf through the strict parser, for
 * the shell of the initramfs integrations (the dracut module, the mkinitcpio hooks,
 * keystrap-generator), so that none of them reads the file with a parser of its own.
 *
 * It never measures, and it must not: keystrap-generator asks before anything in the initrd has
 * measured the file, and only to decide which units start. What acts on the file (keystrap
 * unlock, keystrap handoff) loads it itself, measuring those bytes into PCR 12 before using them.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "keystrap.h"
#include "log.h"
#include "measure.h"

static const char usage[] = "keystrap config get SECTION.KEY [--config FILE]";

static void show_help(void)
{
	printf("Usage: %s\n\n"
	       "Print one value of keystrap.conf: the file is parsed strictly (as keystrap measure\n"
	       "--config FILE --check does, never measured), and the value is printed as keystrap uses\n"
	       "it, the default when the key has one and the file does not set it (yes/no, numbers,\n"
	       "continue/emergency). For the initramfs hooks' shell, and for scripts.\n\n"
	       "  SECTION.KEY    a key of keystrap.conf(5), like Attest.Server or Unlock.Device\n"
	       "  --config FILE  default " CONFIG_PATH "\n\n"
	       "Exit status 1, naming the key, when the file does not set a key without a default or\n"
	       "there is no such key; 1 when the file cannot be read or is refused; 2 usage.\n",
	       usage);
}

int cmd_config(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	_cleanup_config_ struct keystrap_config *c = NULL;
	_cleanup_free_ char *section = NULL, *value = NULL;
	const char *config = CONFIG_PATH, *key, *dot;
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'h': show_help(); return 0;
		default: return usage_error(usage, "invalid option");
		}
	}
	if (optind >= argc)
		return usage_error(usage, "give a command (get)");
	if (!streq(argv[optind], "get"))
		return usage_error(usage, "unknown config command '%s'", argv[optind]);
	if (optind + 1 >= argc)
		return usage_error(usage, "give SECTION.KEY");
	if (optind + 2 < argc)
		return usage_error(usage, "unexpected argument '%s'", argv[optind + 2]);
	key = argv[optind + 1];
	dot = strchr(key, '.');
	if (!dot || dot == key || !dot[1] || strchr(dot + 1, '.'))
		return usage_error(usage, "'%s' is not SECTION.KEY (like Attest.Server)", key);
	section = strndup(key, (size_t)(dot - key));
	if (!section) {
		log_error("out of memory");
		return 1;
	}

	if (config_check(config, &c) < 0)
		return 1;
	r = config_value(c, section, dot + 1, &value);
	if (r == -ENOENT)
		log_error("keystrap.conf has no key [%s] %s= (keystrap.conf(5) lists them)", section, dot + 1);
	else if (r == -ENODATA)
		log_error("[%s] %s= is not set in %s", section, dot + 1, config);
	else if (r < 0)
		log_error("cannot read [%s] %s= of %s: %s", section, dot + 1, config, strerror(-r));
	if (r < 0)
		return 1;
	puts(value);
	return 0;
}
