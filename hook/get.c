/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap get NAME: prints one credential from the "keystrap" kernel keyring to stdout, for
 * the consumer service the handoff gave it to. The bytes pass through a secure buffer only.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "keyring.h"
#include "keystrap.h"
#include "log.h"

static const char usage[] = "keystrap get key|certificate|chain|status|secret:NAME";

int cmd_get(int argc, char **argv)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, {} };
	_cleanup_secbuf_ struct secbuf *b = NULL;
	const char *name;
	int o, r = -ENOKEY;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (o) {
		case 'h':
			printf("Usage: %s\n\n"
			       "Print one credential that keystrap handoff left in the kernel keyring:\n"
			       "  key            the node's private key (PKCS#8 DER)\n"
			       "  certificate    its certificate (PEM)\n"
			       "  chain          the issuing CA chain (PEM)\n"
			       "  secret:NAME    a secret payload, byte for byte\n"
			       "  status         what keystrap status shows, as name=value lines\n"
			       "Only the uid and group given in [Handoff] of keystrap.conf may read them.\n",
			       usage);
			return 0;
		default:
			return usage_error(usage, "unknown option");
		}
	if (optind + 1 != argc)
		return usage_error(usage, optind == argc ? "which credential?" : "one credential at a time");
	name = argv[optind];
	if (!keyring_desc_valid(name))
		return usage_error(usage, "'%s' is not a credential name", name);

	/* A handoff may replace the keyring between finding and reading it: look again. */
	for (int attempt = 0; attempt < 3 && r < 0; attempt++) {
		int32_t ring;

		r = keyring_find_for_caller(&ring);
		if (r == -ENOKEY)
			break;
		if (r < 0) {
			log_error("cannot search the kernel keyrings: %s", strerror(-r));
			return 1;
		}
		r = keyring_read(ring, name, &b);
		if (r == -ENOKEY) {
			log_error("no credential '%s' in the keystrap keyring (keystrap status lists them)", name);
			return 1;
		}
		if (r == -EACCES)
			break;
	}
	if (r == -ENOKEY || r == -EACCES) {
		log_error("permission denied: no keystrap credentials are readable by uid %u gid %u "
			  "(not the [Handoff] Owner=/Group=, or nothing handed off)", (unsigned)geteuid(),
			  (unsigned)getegid());
		return 1;
	}
	if (r < 0) {
		log_error("cannot read '%s' from the keystrap keyring: %s", name, strerror(-r));
		return 1;
	}
	r = write_full(STDOUT_FILENO, b->data, b->size);
	if (r < 0) {
		log_error("cannot write to stdout: %s", strerror(-r));
		return 1;
	}
	return 0;
}
