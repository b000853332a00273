/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening the TPM and a LUKS2 header, each failure said in one line naming the device. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#include "log.h"
#include "luks.h"
#include "open.h"

int tpm_connect(struct tpm **ret)
{
	const char *conf = secure_getenv("KEYSTRAP_TCTI");
	int r;

	r = tpm_open(ret);
	if (r == -EINVAL)
		return log_error_errno(r, "KEYSTRAP_TPM_TIMEOUT='%s' is not a number of seconds (%g to %g)",
				       secure_getenv("KEYSTRAP_TPM_TIMEOUT"), TPM_TIMEOUT_MIN_MS / 1000.0,
				       TPM_TIMEOUT_MAX_MS / 1000.0);
	if (r == -ETIMEDOUT)
		return log_error_errno(r, "%s", tpm_silence_reason());
	if (r < 0)
		return log_error_errno(r, "no TPM reachable via TCTI '%s'",
				       conf && *conf ? conf : TPM_TCTI_DEFAULT);
	return 0;
}

const char *tpm_failure_reason(int err)
{
	switch (-err) {
	case ENOLCK:
		return "the TPM is in dictionary-attack lockout";
	case ENOKEY:
		return "the sealed key does not belong to this TPM's storage key (TPM cleared, "
		       "a different TPM or SRK, or a corrupted tpm2-blob)";
	case EPERM:
		return "the TPM's PCR values do not satisfy the policy";
	case EAGAIN:
		return "PCRs kept changing while unsealing";
	case EBADMSG:
		return "tpm2-blob is not a well-formed sealed object";
	case ENODEV:
		return "the TPM is not usable (not started up, or in failure mode)";
	case EIO:
		return "the TPM connection failed";
	case EOPNOTSUPP:
		return "the TPM does not support a required PCR bank";
	case EBUSY:
		/* Only a TPM reached without a resource manager fills up: what a killed run loaded stays. */
		return "the TPM has no free object or session slots: without a resource manager, "
		       "what a killed program loaded stays loaded; flush it with 'tpm2_flushcontext -t', "
		       "'-l' and '-s' (or reboot), or use the TCTI device:/dev/tpmrm0";
	case ETIMEDOUT:
		return tpm_silence_reason();
	default:
		return "the TPM refused the operation";
	}
}

int luks_load(const char *path, struct crypt_device **ret)
{
	int r = luks_open(path, ret);

	if (r == -EPROTONOSUPPORT)
		return log_error_errno(r, "'%s' is LUKS1; keystrap needs LUKS2 (cryptsetup convert "
				       "--type luks2)", path);
	if (r == -ENOENT)
		return log_error_errno(r, "no such device '%s'", path);
	if (r == -EINVAL)
		return log_error_errno(r, "'%s' is not a LUKS2 device: no LUKS header", path);
	if (r < 0)
		return log_error_errno(r, "cannot read the LUKS2 header of '%s': %s", path, strerror(-r));
	return 0;
}

void format_slots(const char *what, uint32_t mask, char *buf, size_t size)
{
	size_t o = 0;
	int n = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < 32; i++)
		if (mask & (1u << i))
			n++;
	if (n == 0)
		return;
	o = (size_t)snprintf(buf, size, "%s%s ", what, n > 1 ? "s" : "");
	for (unsigned i = 0; i < 32 && o < size; i++)
		if (mask & (1u << i))
			o += (size_t)snprintf(buf + o, size - o, "%s%u", buf[o - 1] == ' ' ? "" : ",", i);
}

int luks_repair_logged(struct crypt_device *cd, const char *path, bool dry_run, uint32_t *ret_tokens)
{
	struct luks_repaired done;
	char ks[128], ts[128];
	int r;

	r = luks_repair(cd, dry_run, &done);
	if (r < 0)
		return log_error_errno(r, "cannot remove what an interrupted keystrap enroll left in '%s': %s",
				       path, strerror(-r));
	format_slots("keyslot", done.keyslots, ks, sizeof(ks));
	if (done.pending) {
		format_slots("token", done.pending, ts, sizeof(ts));
		if (dry_run)
			log_info("'%s' holds %s%s%s left by an interrupted keystrap enroll; keystrap enroll "
				 "or unlock (without --dry-run) removes %s", path, ks, *ks ? " and " : "", ts,
				 *ks || done.pending & (done.pending - 1) ? "them" : "it");
		else
			log_info("removed %s%s%s of '%s', left by an interrupted keystrap enroll", ks,
				 *ks ? " and " : "", ts, path);
	}
	if (done.unbound) {
		bool many = done.unbound & (done.unbound - 1);

		format_slots("keystrap token", done.unbound, ts, sizeof(ts));
		if (dry_run)
			log_info("'%s' holds %s, bound to no keyslot (%s removed); keystrap enroll or "
				 "unlock (without --dry-run) removes %s", path, ts,
				 many ? "their keyslots were" : "its keyslot was", many ? "them" : "it");
		else
			log_info("removed %s of '%s', bound to no keyslot (%s removed)", ts, path,
				 many ? "their keyslots were" : "its keyslot was");
	}
	if (done.replaced) {
		bool many = done.replaced & (done.replaced - 1);

		format_slots("token", done.replaced, ts, sizeof(ts));
		if (dry_run)
			log_info("'%s' holds %s, which a reseal cut short replaced; keystrap unlock (without "
				 "--dry-run) removes %s", path, ts, many ? "them" : "it");
		else
			log_info("removed %s of '%s' with %s keyslot%s, which a reseal cut short replaced", ts, path,
				 many ? "their" : "its", many ? "s" : "");
	}
	*ret_tokens = done.pending | done.unbound | done.replaced;
	return 0;
}

int luks_load_repaired(const char *device, char **ret_path, struct crypt_device **ret_cd, uint32_t *ret_tokens)
{
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	_cleanup_free_ char *path = NULL;
	uint32_t tokens;
	int r;

	r = luks_resolve(device, &path);
	if (r < 0)
		return log_error_errno(r, "no device matches '%s'", device);
	r = luks_load(path, &cd);
	if (r < 0)
		return r;
	r = luks_repair_logged(cd, path, false, &tokens);
	if (r < 0)
		return r;
	*ret_path = TAKE_PTR(path);
	*ret_cd = TAKE_PTR(cd);
	*ret_tokens = tokens;
	return 0;
}
