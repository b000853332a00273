/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keystrap wipe --device DEV --token N [--force]: a token and its keyslot go together. */
#include <getopt.h>
#include <stdio.h>

#include "keystrap.h"
#include "log.h"
#include "luks.h"
#include "open.h"
#include "wipe.h"

static const char usage[] = "keystrap wipe --device DEV --token N [--force]";

static void show_help(void)
{
	printf("Usage: %s\n\n"
	       "Remove token N of the LUKS2 volume DEV together with the keyslots bound to it, the\n"
	       "keyslots first. Never the last keyslot bound to no TPM token (a passphrase, key\n"
	       "file or recovery key: the last way a person can open DEV), never the last keyslot,\n"
	       "never a keyslot another token is bound to too.\n\n"
	       "  --device DEV   LUKS2 device or image, or UUID=...\n"
	       "  --token N      the token to remove (0-31, as cryptsetup luksDump numbers them)\n"
	       "  --force        also remove a token that is not a TPM one (systemd-tpm2 or keystrap's),\n"
	       "                 e.g. a systemd-recovery token with its recovery key\n",
	       usage);
}

int cmd_wipe(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "token", required_argument, NULL, 't' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	_cleanup_free_ char *path = NULL;
	const char *device = NULL, *token_arg = NULL;
	struct luks_removal done;
	uint32_t repaired;
	unsigned token = 0;
	bool force = false;
	char slots[128];
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (opt) {
		case 'd': device = optarg; break;
		case 't': token_arg = optarg; break;
		case 'f': force = true; break;
		case 'h': show_help(); return 0;
		default: return usage_error(usage, "invalid option");
		}
	}
	if (optind < argc)
		return usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!device)
		return usage_error(usage, "--device is required");
	if (!token_arg)
		return usage_error(usage, "--token is required");
	if (parse_uint(token_arg, 0, 31, &token) < 0)
		return usage_error(usage, "--token '%s' is not a token number 0-31", token_arg);

	if (luks_load_repaired(device, &path, &cd, &repaired) < 0)
		return 1;
	/* What an interrupted run left, this token among it, is gone already: the line above said so. */
	if (repaired & (1u << token))
		return 0;
	if (wipe_token(cd, path, (int)token, force, &done) < 0)
		return 1;
	format_slots("keyslot", done.keyslots, slots, sizeof(slots));
	printf("removed token %u (%s) of %s%s%s\n", token, done.type, path, *slots ? " with " : ", bound to no keyslot",
	       slots);
	return 0;
}
