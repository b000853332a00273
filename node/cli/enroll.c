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
#include "fileio.h"
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
	"                       [--srk] [--unlock-key-file FILE] [--config FILE] [--replace]\n"
	"                       [--recovery-key] [--attested]";

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
	       "                        and hold nothing that looks like a secret\n"
	       "  --replace             rotate: once the new keyslot and token are written, remove\n"
	       "                        every systemd-tpm2 token there was, with its keyslot\n"
	       "  --recovery-key        also add a recovery key keyslot (systemd-cryptenroll's\n"
	       "                        format and token) and print the key, once, alone on stdout;\n"
	       "                        the other lines go to stderr\n"
	       "  --attested            instead, a keyslot that needs this TPM's share (sealed under\n"
	       "                        --pcrs) and one keystrap-server keeps and releases only to an\n"
	       "                        attestation its policy accepts ([Attest] of --config); written\n"
	       "                        only once the server accepted this node's attestation, with a\n"
	       "                        keystrap-attested token. [Unlock] Offline=no: the systemd-tpm2\n"
	       "                        tokens go once it is written\n\n"
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
		{ "replace", no_argument, NULL, 'R' },
		{ "recovery-key", no_argument, NULL, 'K' },
		{ "attested", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *device = NULL, *pcrs = "7,15:0", *bank_name = "sha256", *key_file = NULL;
	const char *config = NULL;
	_cleanup_secbuf_ struct secbuf *existing = NULL, *recovery_key = NULL;
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	_cleanup_free_ char *path = NULL, *bad = NULL;
	_cleanup_config_ struct keystrap_config *cfg = NULL;
	const struct pcr_bank *bank;
	struct pcr_spec spec;
	uint16_t alg = TPM2_ALG_ECC;
	uint32_t leftovers, old = 0, replaced = 0;
	bool srk = false, replace = false, recovery = false, attested = false;
	int opt, r, slot, token, rslot, rtoken;
	char mask[80], slots[128];
	FILE *out;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (opt) {
		case 'd': device = optarg; break;
		case 'p': pcrs = optarg; break;
		case 'b': bank_name = optarg; break;
		case 'k': key_file = optarg; break;
		case 's': srk = true; break;
		case 'c': config = optarg; break;
		case 'R': replace = true; break;
		case 'K': recovery = true; break;
		case 'T': attested = true; break;
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
	if (attested && replace)
		return usage_error(usage, "--attested adds an attested keyslot and --replace rotates the "
				   "systemd-tpm2 one: not both at once");
	if (attested && !config)
		return usage_error(usage, "--attested needs the [Attest] section of keystrap.conf: --config FILE "
				   "(or " CONFIG_PATH ")");
	if (config && config_check(config, attested ? &cfg : NULL) < 0)
		return 1;
	if (attested && (!cfg->server || !cfg->ca))
		return log_error("%s: [Attest] Server= and CA= are needed for --attested", config), 1;

	if (luks_load_repaired(device, &path, &cd, &leftovers) < 0)
		return 1;

	r = read_existing(key_file, path, &existing);
	if (r < 0)
		return 1;
	if (srk && alg == TPM2_ALG_RSA)
		return usage_error(usage, "--srk and --primary-alg rsa exclude each other: the SRK is ECC");
	if (replace && enroll_replace_check(cd, path, TOKEN_TYPE_TPM2, &old) < 0)
		return 1;
	if (attested) {
		struct enroll_attested_result res;
		enum attest_failure failure = ATTEST_FAILED_LOCAL;
		struct attest_options a;

		attest_options_from_config(cfg, TPM_EK_RSA2048, &a);
		r = enroll_attested(cd, path, existing, key_file ? "key file" : "passphrase", &spec, alg, srk, &a,
				    cfg->offline, &res, &failure);
		if (r == -ECANCELED)
			return attest_exit_status(failure);
		if (r < 0)
			return 1;
		slot = res.keyslot;
		token = res.token;
		old = res.replaced;
		replaced = res.keyslots_removed;
		replace = old != 0;
	} else {
		r = enroll_volume(cd, path, existing, key_file ? "key file" : "passphrase", &spec, alg, srk, &slot,
				  &token);
		if (r < 0)
			return 1;
		if (replace && enroll_replace(cd, path, slot, token, old, &replaced) < 0)
			return 1;
	}

	/* With a recovery key, stdout is the key's alone: what a script captures or a printer gets. */
	out = recovery ? stderr : stdout;
	pcr_mask_format(spec.mask, mask, sizeof(mask));
	fprintf(out, "enrolled %s: %skeyslot %d, token %d, PCRs %s (%s), primary %s", path, attested ? "attested " : "",
		slot, token, mask, bank->name, srk ? "SRK 0x81000001" : alg == TPM2_ALG_RSA ? "rsa" : "ecc");
	if (attested)
		fprintf(out, ", server share held by %s", cfg->server);
	if (replace) {
		format_slots("token", old, mask, sizeof(mask));
		format_slots("keyslot", replaced, slots, sizeof(slots));
		fprintf(out, "; replaced %s%s%s", old ? mask : "no token", *slots ? " with " : "", slots);
	}
	fputc('\n', out);
	if (!recovery)
		return 0;
	fflush(stderr);

	r = enroll_recovery(cd, path, existing, key_file ? "key file" : "passphrase", &recovery_key, &rslot, &rtoken);
	if (r < 0)
		return 1;
	fprintf(stderr, "recovery key: keyslot %d, token %d; it is shown once, below, and stored nowhere\n",
		rslot, rtoken);
	fflush(stderr);
	/* Straight to the descriptor: a copy in stdio's buffer would outlive the secbuf's wipe. */
	fflush(stdout);
	r = write_full(STDOUT_FILENO, recovery_key->data, recovery_key->size);
	if (r >= 0)
		r = write_full(STDOUT_FILENO, "\n", 1);
	if (r < 0)
		return log_error_errno(r, "the recovery key was added as keyslot %d of '%s' but cannot be "
				       "written to stdout: %s; remove it with 'keystrap wipe --device %s "
				       "--token %d --force'", rslot, path, strerror(-r), path, rtoken), 1;
	return 0;
}
