/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "config.h"
#include "encode.h"
#include "keystrap.h"
#include "log.h"
#include "enroll.h"
#include "luks.h"
#include "measure.h"
#include "open.h"
#include "pcr.h"
#include "token.h"

#define PASSPHRASE_MAX 4096

static const char usage[] =
	"keystrap enroll --device DEV [--pcrs LIST] [--pcr-bank BANK] [--primary-alg ecc|rsa]\n"
	"                       [--srk] [--unlock-key-file FILE] [--config FILE]";

static void show_help(void)
{
	printf("Usage: %s\n\n"
	       "Seal a new 256-bit disk key in the TPM under a PCR policy and add it to the LUKS2\n"
	       "volume DEV as a keyslot plus a systemd-tpm2 token (readable by systemd-cryptsetup).\n\n"
	       "  --device DEV          LUKS2 device or image, or UUID=...\n"
	       "  --pcrs LIST           PCRs to bind: 7 (current value), 15:0 (all zero), 11:HEX\n"
	       "                        (that digest); default 7,15:0\n"
	       "  --pcr-bank BANK       sha1, sha256 (default), sha384 or sha512\n"
	       "  --primary-alg ALG     storage primary key: ecc (default) or rsa\n"
	       "  --srk                 seal under the persistent TCG SRK (noDA) at 0x81000001, created\n"
	       "                        if absent: unaffected by DA lockout, readable by systemd >= 254\n"
	       "                        but not by systemd 252, which only knows its transient primary\n"
	       "  --unlock-key-file F   existing key file authorising the new keyslot; without it the\n"
	       "                        existing passphrase is read from the terminal or stdin\n"
	       "  --config FILE         keystrap.conf to vet before anything is written (default\n"
	       "                        " CONFIG_PATH " when it exists): it must parse strictly\n"
	       "                        and hold nothing that looks like a secret\n\n"
	       "The TPM is reached through KEYSTRAP_TCTI (default " TPM_TCTI_DEFAULT ").\n",
	       usage);
}

static int read_existing(const char *key_file, const char *device, struct secbuf **ret)
{
	int r;

	if (key_file) {
		r = secbuf_read_file(key_file, PASSPHRASE_MAX, ret);
		if (r < 0)
			return log_error_errno(r, "cannot read key file '%s': %s", key_file,
					       r == -EFBIG ? "larger than 4 KiB" :
					       r == -ENODATA ? "empty" : strerror(-r));
		return 0;
	}
	r = secbuf_read_line(STDIN_FILENO, "Existing passphrase: ", PASSPHRASE_MAX, ret);
	if (r < 0)
		return log_error_errno(r, "no existing passphrase for '%s' given on stdin", device);
	return 0;
}

int cmd_enroll(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "pcrs", required_argument, NULL, 'p' },
		{ "pcr-bank", required_argument, NULL, 'b' },
		{ "primary-alg", required_argument, NULL, 'a' },
		{ "unlock-key-file", required_argument, NULL, 'k' },
		{ "srk", no_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *device = NULL, *pcrs = "7,15:0", *bank_name = "sha256", *key_file = NULL;
	const char *config = NULL;
	_cleanup_secbuf_ struct secbuf *existing = NULL;
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	_cleanup_free_ char *path = NULL, *bad = NULL;
	const struct pcr_bank *bank;
	struct pcr_spec spec;
	uint16_t alg = TPM2_ALG_ECC;
	uint32_t leftovers;
	bool srk = false;
	int opt, r, slot, token;
	char mask[80];

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (opt) {
		case 'd': device = optarg; break;
		case 'p': pcrs = optarg; break;
		case 'b': bank_name = optarg; break;
		case 'k': key_file = optarg; break;
		case 's': srk = true; break;
		case 'c': config = optarg; break;
		case 'a':
			if (streq(optarg, "ecc"))
				alg = TPM2_ALG_ECC;
			else if (streq(optarg, "rsa"))
				alg = TPM2_ALG_RSA;
			else
				return usage_error(usage, "--primary-alg '%s' is neither ecc nor rsa", optarg);
			break;
		case 'h': show_help(); return 0;
		default: return usage_error(usage, "invalid option");
		}
	}
	if (optind < argc)
		return usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!device)
		return usage_error(usage, "--device is required");
	bank = pcr_bank_by_name(bank_name);
	if (!bank)
		return usage_error(usage, "--pcr-bank '%s' is not one of sha1, sha256, sha384, sha512",
				   bank_name);
	if (pcr_spec_parse(pcrs, bank, &spec, &bad) < 0)
		return usage_error(usage, "--pcrs: '%s' is not a PCR 0-23, optionally with :0 or :HEX "
				   "(%u hex digits for %s), listed once", bad ? bad : pcrs,
				   2 * bank->size, bank->name);

	/* The config ends up in a public initramfs: refuse to set up a machine around a leaky one. */
	if (!config && access(CONFIG_PATH, F_OK) == 0)
		config = CONFIG_PATH;
	if (config && config_check(config, NULL) < 0)
		return 1;

	r = luks_resolve(device, &path);
	if (r < 0)
		return log_error_errno(r, "no device matches '%s'", device), 1;
	if (luks_load(path, &cd) < 0 || luks_repair_logged(cd, path, false, &leftovers) < 0)
		return 1;

	r = read_existing(key_file, path, &existing);
	if (r < 0)
		return 1;
	if (srk && alg == TPM2_ALG_RSA)
		return usage_error(usage, "--srk and --primary-alg rsa exclude each other: the SRK is ECC");
	r = enroll_volume(cd, path, existing, key_file ? "key file" : "passphrase", &spec, alg, srk, &slot, &token);
	if (r < 0)
		return 1;

	pcr_mask_format(spec.mask, mask, sizeof(mask));
	printf("enrolled %s: keyslot %d, token %d, PCRs %s (%s), primary %s\n", path, slot, token, mask,
	       bank->name, srk ? "SRK 0x81000001" : alg == TPM2_ALG_RSA ? "rsa" : "ecc");
	return 0;
}
