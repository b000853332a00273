/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap unlock: which volumes (options or [Unlock]), then node/unlock.c per volume (a volume
 * the attested token opened gets its stale strict tokens resealed, node/reseal.c), then the lock.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "encode.h"
#include "keystrap.h"
#include "log.h"
#include "luks.h"
#include "measure.h"
#include "reseal.h"
#include "unlock.h"

static const char usage[] =
	"keystrap unlock (--device DEV --name NAME | --all | --config FILE) [--tpm2-signature FILE]\n"
	"                [--dry-run] [--no-lock]";

static void show_help(void)
{
	printf("Usage: %s\n\n"
	       "Unseal the disk key of each systemd-tpm2 token (written by keystrap enroll or\n"
	       "systemd-cryptenroll) and open the LUKS2 volume with it. When every volume asked for\n"
	       "is open, extend PCR 15 so no sealed key can be unsealed again in this boot.\n"
	       "Only when no systemd-tpm2 token opens a volume and it has a keystrap-attested token\n"
	       "(enroll --attested): this TPM's share, then an attestation to [Attest] Server= for\n"
	       "the server's share. [Unlock] Offline=no: strict tokens beside an attested one are\n"
	       "not used.\n\n"
	       "  --device DEV   LUKS2 device or image, or UUID=...\n"
	       "  --name NAME    device-mapper name to open it as\n"
	       "  --all          every crypto_LUKS block device with a systemd-tpm2 or\n"
	       "                 keystrap-attested token,\n"
	       "                 opened as luks-UUID\n"
	       "  --config FILE  the volume, its name and Lock= from [Unlock] in FILE (normally\n"
	       "                 " CONFIG_PATH "), which is measured into PCR 12 before\n"
	       "                 it is used\n"
	       "  --tpm2-signature FILE\n"
	       "                 systemd's PCR signature file (systemd-measure sign) for tokens\n"
	       "                 systemd-cryptenroll --tpm2-public-key wrote; default [Unlock]\n"
	       "                 TPM2Signature=, else tpm2-pcr-signature.json in /etc/systemd,\n"
	       "                 /run/systemd, /usr/local/lib/systemd, /usr/lib/systemd, and in the\n"
	       "                 initrd /.extra (where systemd-stub puts a UKI's .pcrsig)\n"
	       "  --dry-run      only prove the unsealed key opens its keyslot; open nothing, extend\n"
	       "                 nothing but the configuration's measurement\n"
	       "  --no-lock      do not extend PCR 15 (run 'keystrap lock' later)\n\n"
	       "The TPM is reached through KEYSTRAP_TCTI (default " TPM_TCTI_DEFAULT "); a TPM\n"
	       "that does not answer within KEYSTRAP_TPM_TIMEOUT seconds (default 5) fails it.\n",
	       usage);
}

int cmd_unlock(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "name", required_argument, NULL, 'n' },
		{ "all", no_argument, NULL, 'A' },
		{ "config", required_argument, NULL, 'c' },
		{ "dry-run", no_argument, NULL, 'D' },
		{ "no-lock", no_argument, NULL, 'L' },
		{ "tpm2-signature", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	_cleanup_config_ struct keystrap_config *conf = NULL;
	const char *device = NULL, *name = NULL, *config = NULL, *signature = NULL;
	bool all = false, dry_run = false, no_lock = false;
	struct volume vols[UNLOCK_VOLUMES_MAX] = { 0 };
	_cleanup_tpm_ struct tpm *t = NULL;
	struct unlock_options uo = {};
	size_t n = 0, opened = 0;
	int opt, r, ret = 0;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (opt) {
		case 'd': device = optarg; break;
		case 'n': name = optarg; break;
		case 'A': all = true; break;
		case 'c': config = optarg; break;
		case 'D': dry_run = true; break;
		case 'L': no_lock = true; break;
		case 'S': signature = optarg; break;
		case 'h': show_help(); return 0;
		default: return usage_error(usage, "invalid option");
		}
	}
	if (optind < argc)
		return usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (config && (all || device || name))
		return usage_error(usage, "--config names the volume itself: not with --device, --name or --all");
	if (config) {
		/* The configuration is only ever read through the path that measures it first. */
		if (config_load(NULL, config, &conf) < 0)
			return 1;
		if (!conf->device)
			return log_error("%s has no [Unlock] Device=", config), 1;
		all = streq(conf->device, "all");
		device = all ? NULL : conf->device;
		name = conf->name;
		no_lock = no_lock || !conf->lock;
		if (!signature)
			signature = conf->signature;
		if (device && !name && !dry_run)
			return log_error("%s: [Unlock] Device=%s needs Name= (or --dry-run)", config, device), 1;
	}
	if (all == !!device)
		return usage_error(usage, "give either --device or --all");
	if (device && !name && !dry_run)
		return usage_error(usage, "--device needs --name (or --dry-run)");
	if (name && (strchr(name, '/') || !*name || strlen(name) > 127))
		return usage_error(usage, "--name '%s' is not a valid device-mapper name", name);

	if (all) {
		r = unlock_find_all(vols, &n);
		if (r < 0 || n == 0)
			return log_error("no LUKS2 device with a systemd-tpm2 token found"), 1;
	} else {
		r = luks_resolve(device, &vols[0].path);
		if (r < 0)
			return log_error("no device matches '%s'", device), 1;
		vols[0].name = strdup(name ? name : "");
		n = 1;
	}

	uo.signature = signature;
	uo.dry_run = dry_run;
	uo.attested = reseal_attested;
	uo.config = conf;
	/* Without --config, an attested token's [Attest] and Offline= are the installed file's. */
	if (!conf && access(CONFIG_PATH, F_OK) == 0)
		uo.config_path = CONFIG_PATH;
	else if (conf)
		uo.config_path = config;
	for (size_t i = 0; i < n; i++) {
		r = unlock_volume(&t, &vols[i], &uo);
		if (r == 0)
			opened++;
		else
			ret = 1;
	}
	if (!dry_run && !no_lock && opened == n) {
		r = lock_volumes(t);
		if (r < 0)
			ret = 1;
	}
	for (size_t i = 0; i < n; i++) {
		free(vols[i].path);
		free(vols[i].name);
	}
	config_free(uo.loaded);
	return ret;
}
