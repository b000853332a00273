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
#include "luks.h"
#include "pcr.h"
#include "token.h"

#define SECRET_SIZE 32
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

struct enroll_ctx {
	struct tpm2_token token;
};

static int make_token(int slot, void *userdata, char **ret_json)
{
	struct enroll_ctx *c = userdata;

	c->token.keyslot = slot;
	return token_format(&c->token, ret_json);
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

static int seal_new_key(struct pcr_spec *spec, uint16_t alg, bool srk, struct enroll_ctx *c,
			struct secbuf **ret_passphrase)
{
	_cleanup_secbuf_ struct secbuf *secret = NULL, *passphrase = NULL;
	_cleanup_tpm_ struct tpm *t = NULL;
	uint8_t current[PCR_COUNT][PCR_DIGEST_MAX];
	ESYS_TR primary = ESYS_TR_NONE;
	char pcrs[80];
	int r;

	r = tpm_connect(&t);
	if (r < 0)
		return r;
	pcr_mask_format(spec->mask, pcrs, sizeof(pcrs));

	/* Read even when every value is given: a bank this TPM has not allocated would seal a key
	 * that can never be unsealed. */
	r = tpm_pcr_read(t, spec->bank, spec->mask, current);
	if (r < 0)
		return log_error_errno(r, "cannot read PCRs %s from bank %s: %s", pcrs, spec->bank->name,
				       tpm_failure_reason(r));
	for (unsigned i = 0; i < PCR_COUNT; i++)
		if (spec->mask & ~spec->given & (1u << i))
			memcpy(spec->values[i], current[i], spec->bank->size);
	spec->given = spec->mask;
	r = pcr_policy_digest(spec, c->token.policy_hash);
	if (r < 0)
		return log_error_errno(r, "cannot compute the PCR policy digest");

	secret = secbuf_new(SECRET_SIZE);
	if (!secret)
		return log_error_errno(-ENOMEM, "out of memory");
	if (getrandom(secret->data, SECRET_SIZE, 0) != SECRET_SIZE)
		return log_error_errno(-errno, "getrandom failed: %m");

	if (srk)
		r = tpm_srk_ensure(t, &primary, c->token.srk, sizeof(c->token.srk), &c->token.srk_size);
	else
		r = tpm_primary_create(t, alg, &primary);
	if (r == -ENOKEY)
		return log_error_errno(r, "the object at 0x%x is not a storage key; it cannot be the SRK",
				       TPM_SRK_HANDLE);
	if (r < 0)
		return log_error_errno(r, "cannot %s the TPM storage primary key: %s",
				       srk ? "create and persist" : "create", tpm_failure_reason(r));
	r = tpm_seal(t, primary, c->token.policy_hash, secret, c->token.blob, sizeof(c->token.blob),
		     &c->token.blob_size);
	tpm_flush(t, &primary);
	if (r < 0)
		return log_error_errno(r, "cannot seal the disk key: %s", tpm_failure_reason(r));

	/* The LUKS passphrase is base64 of the key, as systemd-cryptsetup derives it. */
	passphrase = secbuf_new(base64_encoded_len(SECRET_SIZE) + 1);
	if (!passphrase)
		return log_error_errno(-ENOMEM, "out of memory");
	base64_encode(secret->data, SECRET_SIZE, (char *)passphrase->data);
	passphrase->size = base64_encoded_len(SECRET_SIZE);

	c->token.pcr_mask = spec->mask;
	c->token.bank = spec->bank;
	c->token.primary_alg = alg;
	c->token.values_mask = spec->mask;
	memcpy(c->token.values, spec->values, sizeof(spec->values));
	*ret_passphrase = TAKE_PTR(passphrase);
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
	_cleanup_secbuf_ struct secbuf *existing = NULL, *passphrase = NULL;
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	_cleanup_free_ struct enroll_ctx *c = NULL;
	_cleanup_free_ char *path = NULL, *bad = NULL;
	const struct pcr_bank *bank;
	struct pcr_spec spec;
	uint16_t alg = TPM2_ALG_ECC;
	enum luks_leftover leftover;
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
	if (config && config_check(config) < 0)
		return 1;

	r = luks_resolve(device, &path);
	if (r < 0)
		return log_error_errno(r, "no device matches '%s'", device), 1;
	if (luks_load(path, &cd) < 0 || luks_repair_logged(cd, path, false, &leftovers) < 0)
		return 1;

	r = read_existing(key_file, path, &existing);
	if (r < 0)
		return 1;
	c = calloc(1, sizeof(*c));
	if (!c)
		return log_error("out of memory"), 1;
	if (srk && alg == TPM2_ALG_RSA)
		return usage_error(usage, "--srk and --primary-alg rsa exclude each other: the SRK is ECC");
	r = seal_new_key(&spec, alg, srk, c, &passphrase);
	if (r < 0)
		return 1;

	r = luks_enroll(cd, existing, passphrase, make_token, c, &slot, &token, &leftover);
	if (r == -EACCES)
		return log_error("the existing %s does not open any keyslot of '%s'",
				 key_file ? "key file" : "passphrase", path), 1;
	if (r == -ENOBUFS)
		return log_error("all 32 LUKS2 token slots of '%s' are in use; nothing was added "
				 "(free one with 'cryptsetup token remove')", path), 1;
	if (r == -EMLINK)
		return log_error("all LUKS2 keyslots of '%s' are in use; nothing was added "
				 "(free one with 'cryptsetup luksKillSlot')", path), 1;
	if (r < 0)
		return log_error("cannot add keyslot and token to '%s': %s; %s", path,
				 r == -E2BIG ? "the LUKS2 header has no room left for them" : strerror(-r),
				 leftover == LUKS_LEFT_ENROLLED ?
					 "the new keyslot and token were written all the same and open the "
					 "volume (see cryptsetup luksDump)" :
				 leftover == LUKS_LEFT_PENDING ?
					 "what was written could not be removed now: keystrap enroll or unlock "
					 "removes it when next run" :
					 "nothing was added"), 1;

	pcr_mask_format(spec.mask, mask, sizeof(mask));
	printf("enrolled %s: keyslot %d, token %d, PCRs %s (%s), primary %s\n", path, slot, token, mask,
	       bank->name, srk ? "SRK 0x81000001" : alg == TPM2_ALG_RSA ? "rsa" : "ecc");
	return 0;
}
