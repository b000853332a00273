/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <blkid/blkid.h>

#include "encode.h"
#include "keystrap.h"
#include "log.h"
#include "luks.h"
#include "token.h"

#define MAX_VOLUMES 64

static const char usage[] =
	"keystrap unlock (--device DEV --name NAME | --all | --config FILE) [--dry-run] [--no-lock]";

static void show_help(void)
{
	printf("Usage: %s\n\n"
	       "Unseal the disk key of each systemd-tpm2 token (written by keystrap enroll or\n"
	       "systemd-cryptenroll) and open the LUKS2 volume with it. When every volume asked for\n"
	       "is open, extend PCR 15 so no sealed key can be unsealed again in this boot.\n\n"
	       "  --device DEV   LUKS2 device or image, or UUID=...\n"
	       "  --name NAME    device-mapper name to open it as\n"
	       "  --all          every crypto_LUKS block device with a systemd-tpm2 token,\n"
	       "                 opened as luks-UUID\n"
	       "  --config FILE  the volume, its name and Lock= from [Unlock] in FILE (normally\n"
	       "                 " CONFIG_PATH "), which is measured into PCR 12 before\n"
	       "                 it is used\n"
	       "  --dry-run      only prove the unsealed key opens its keyslot; open nothing, extend\n"
	       "                 nothing but the configuration's measurement\n"
	       "  --no-lock      do not extend PCR 15 (run 'keystrap lock' later)\n\n"
	       "The TPM is reached through KEYSTRAP_TCTI (default " TPM_TCTI_DEFAULT ").\n",
	       usage);
}

struct volume {
	char *path;
	char *name;
};

/* Names each bound PCR whose value differs from what the token was sealed against. */
static void explain_policy_failure(struct tpm *t, const char *path, int tok, const struct tpm2_token *k)
{
	uint8_t now[PCR_COUNT][PCR_DIGEST_MAX];
	char msg[1024] = "", pcrs[80];
	size_t o = 0;

	pcr_mask_format(k->pcr_mask, pcrs, sizeof(pcrs));
	if (k->values_mask != k->pcr_mask || tpm_pcr_read(t, k->bank, k->pcr_mask, now) < 0) {
		log_error("%s token %d: PCR policy not satisfied: the current values of PCRs %s (%s) "
			  "differ from those it was sealed against (the token does not record which)",
			  path, tok, pcrs, k->bank->name);
		return;
	}
	for (unsigned i = 0; i < PCR_COUNT; i++) {
		char have[2 * PCR_DIGEST_MAX + 1], want[2 * PCR_DIGEST_MAX + 1];

		if (!(k->pcr_mask & (1u << i)) || memcmp(now[i], k->values[i], k->bank->size) == 0)
			continue;
		hex_encode(now[i], k->bank->size, have);
		hex_encode(k->values[i], k->bank->size, want);
		o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%sPCR %u is %.16s… but policy wants %.16s…",
				      o ? "; " : "", i, have, want);
		if (o >= sizeof(msg))
			break;
	}
	if (o == 0)
		log_error("%s token %d: PCR policy not satisfied although PCRs %s (%s) hold the enrolled "
			  "values (policy hash does not match them)", path, tok, pcrs, k->bank->name);
	else
		log_error("%s token %d: PCR mismatch (%s): %s", path, tok, k->bank->name, msg);
}

static int try_token(struct tpm *t, const char *path, const char *name, struct crypt_device *cd,
		     int tok, const char *json)
{
	_cleanup_secbuf_ struct secbuf *secret = NULL, *passphrase = NULL;
	_cleanup_free_ struct tpm2_token *k = malloc(sizeof(*k));
	ESYS_TR parent = ESYS_TR_NONE;
	const char *why;
	int r;

	if (!k)
		return log_error_errno(-ENOMEM, "out of memory");
	r = token_parse(json, strlen(json), k, &why);
	if (r < 0)
		return log_error_errno(r, "%s token %d is malformed: %s", path, tok, why);
	if (!luks_keyslot_in_use(cd, k->keyslot))
		return log_error_errno(-ENOENT, "%s token %d points at keyslot %d, which holds no key "
				       "of this volume", path, tok, k->keyslot);
	if (k->pin)
		return log_error_errno(-EOPNOTSUPP, "%s token %d needs a PIN; keystrap unlocks "
				       "unattended only", path, tok);
	if (k->signed_policy)
		return log_error_errno(-EOPNOTSUPP, "%s token %d uses a signed PCR policy, which "
				       "keystrap does not support", path, tok);

	if (k->srk_size > 0)
		r = tpm_srk_load(t, k->srk, k->srk_size, &parent);
	else
		r = tpm_primary_create(t, k->primary_alg, &parent);
	if (r == -ENOKEY)
		return log_error_errno(r, "%s token %d: the TPM's SRK at 0x%x is not the one the volume "
				       "was sealed under", path, tok, TPM_SRK_HANDLE);
	if (r < 0)
		return log_error_errno(r, "%s token %d: %s", path, tok, tpm_failure_reason(r));

	r = tpm_unseal(t, parent, k->blob, k->blob_size, k->bank, k->pcr_mask, &secret);
	tpm_flush(t, &parent);
	if (r == -EPERM) {
		explain_policy_failure(t, path, tok, k);
		return r;
	}
	if (r < 0)
		return log_error_errno(r, "%s token %d: %s", path, tok, tpm_failure_reason(r));

	passphrase = secbuf_new(base64_encoded_len(secret->size) + 1);
	if (!passphrase)
		return log_error_errno(-ENOMEM, "out of memory");
	base64_encode(secret->data, secret->size, (char *)passphrase->data);
	passphrase->size = base64_encoded_len(secret->size);

	r = luks_activate(cd, name, k->keyslot, passphrase);
	if (r == -EPERM)
		return log_error_errno(r, "%s token %d: the unsealed key does not open keyslot %d", path,
				       tok, k->keyslot);
	if (r < 0)
		return log_error_errno(r, "%s: cannot open as '%s': %s", path, name ? name : "(dry run)",
				       r == -ENOTSUP || r == -ENODEV ?
					       "device-mapper is not available (dm_crypt module not loaded?)" :
					       strerror(-r));
	if (name)
		printf("%s: opened as /dev/mapper/%s (token %d, keyslot %d)\n", path, name, tok, k->keyslot);
	else
		printf("%s: token %d unseals a key that opens keyslot %d (dry run)\n", path, tok, k->keyslot);
	return 0;
}

static int unlock_volume(struct tpm **t, const struct volume *v, bool dry_run)
{
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	uint32_t leftovers = 0;
	const char *json;
	int r, tok = -1, tried = 0, skipped = 0;

	r = luks_load(v->path, &cd);
	if (r < 0)
		return r;
	/* What an enroll cut short leaves opens nothing; removing it is a write, so a dry run
	 * only says so, once, and skips it. */
	(void)luks_repair_logged(cd, v->path, dry_run, &leftovers);
	if (!dry_run && crypt_status(NULL, v->name) == CRYPT_ACTIVE) {
		printf("%s: already open as /dev/mapper/%s\n", v->path, v->name);
		return 0;
	}
	while ((tok = luks_next_tpm2_token(cd, tok, &json)) >= 0) {
		if (leftovers & (1u << tok)) {
			skipped++;
			continue;
		}
		if (!*t && (r = tpm_connect(t)) < 0)
			return r;
		tried++;
		r = try_token(*t, v->path, dry_run ? NULL : v->name, cd, tok, json);
		if (r == 0)
			return 0;
		/* Lockout and a dead TPM will not get better with the next token. */
		if (r == -ENOLCK || r == -EIO || r == -ENODEV)
			return r;
	}
	if (!tried && skipped)
		return -ENOENT;
	if (!tried)
		return log_error_errno(-ENOENT, "'%s' has no systemd-tpm2 token", v->path);
	return -EACCES;
}

static int find_all(struct volume *vols, size_t *n)
{
	blkid_cache cache = NULL;
	blkid_dev_iterate it;
	blkid_dev dev;

	if (blkid_get_cache(&cache, "/dev/null") < 0)
		return -ENOMEM;
	(void)blkid_probe_all(cache);
	it = blkid_dev_iterate_begin(cache);
	(void)blkid_dev_set_search(it, "TYPE", "crypto_LUKS");
	while (blkid_dev_next(it, &dev) == 0 && *n < MAX_VOLUMES) {
		_cleanup_crypt_ struct crypt_device *cd = NULL;
		const char *path = blkid_dev_devname(dev), *json;
		char *uuid;

		dev = blkid_verify(cache, dev);
		if (!dev || luks_open(path, &cd) < 0 || luks_next_tpm2_token(cd, -1, &json) < 0)
			continue;
		uuid = blkid_get_tag_value(cache, "UUID", path);
		if (!uuid)
			continue;
		vols[*n].path = strdup(path);
		if (asprintf(&vols[*n].name, "luks-%s", uuid) < 0)
			vols[*n].name = NULL;
		free(uuid);
		if (vols[*n].path && vols[*n].name)
			(*n)++;
	}
	blkid_dev_iterate_end(it);
	blkid_put_cache(cache);
	return 0;
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
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	_cleanup_config_ struct keystrap_config *conf = NULL;
	const char *device = NULL, *name = NULL, *config = NULL;
	bool all = false, dry_run = false, no_lock = false;
	struct volume vols[MAX_VOLUMES] = { 0 };
	_cleanup_tpm_ struct tpm *t = NULL;
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
		r = find_all(vols, &n);
		if (r < 0 || n == 0)
			return log_error("no LUKS2 device with a systemd-tpm2 token found"), 1;
	} else {
		r = luks_resolve(device, &vols[0].path);
		if (r < 0)
			return log_error("no device matches '%s'", device), 1;
		vols[0].name = strdup(name ? name : "");
		n = 1;
	}

	for (size_t i = 0; i < n; i++) {
		r = unlock_volume(&t, &vols[i], dry_run);
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
	return ret;
}
