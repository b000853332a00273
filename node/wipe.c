/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Removing a token with its keyslots. A keyslot bound to no TPM token is presumed to be how a
 * person opens the volume (a passphrase, a key file, a recovery key): the last of them stays,
 * whatever the caller asks, and so does the last keyslot of all.
 */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "open.h"
#include "wipe.h"

/* After a failed write: what is on the disk now, for the one line that says so. */
static const char *left_behind(const char *path, int token, uint32_t keyslots)
{
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	struct luks_removal now;

	if (luks_open(path, &cd) < 0)
		return "the header could not be read again: see cryptsetup luksDump";
	if (luks_removal_plan(cd, token, &now) == -ENOENT)
		return "the token is gone all the same";
	if (now.keyslots == keyslots)
		return "nothing was removed";
	return now.keyslots ? "some of its keyslots are gone and the token is left: keystrap wipe "
			      "removes the rest when run again" :
			      "its keyslots are gone and the token, bound to none, is left: keystrap "
			      "wipe removes it when run again";
}

int wipe_token(struct crypt_device *cd, const char *path, int token, bool force, struct luks_removal *ret)
{
	struct luks_removal p;
	int r;

	r = luks_removal_plan(cd, token, &p);
	if (r == -ENOENT)
		return log_error_errno(r, "'%s' has no token %d", path, token);
	if (r < 0)
		return log_error_errno(r, "cannot read token %d of '%s': %s", token, path, strerror(-r));
	if (!p.tpm && !force)
		return log_error_errno(-EPERM, "token %d of '%s' is a '%s' token, not a TPM one; --force "
				       "removes it", token, path, p.type);
	switch (p.refusal) {
	case LUKS_REMOVE_SHARED:
		return log_error_errno(-EPERM, "refusing to remove token %d of '%s': its keyslot %d is also "
				       "bound to token %d", token, path, p.keyslot, p.other);
	case LUKS_REMOVE_LAST_HUMAN:
		return log_error_errno(-EPERM, "refusing to remove token %d of '%s': its keyslot %d is the "
				       "last one bound to no TPM token, the last a person can open the "
				       "volume with", token, path, p.keyslot);
	case LUKS_REMOVE_LAST:
		return log_error_errno(-EPERM, "refusing to remove token %d of '%s': its keyslot %d is the "
				       "last keyslot", token, path, p.keyslot);
	case LUKS_REMOVE_OK:
		break;
	}
	r = luks_remove_token(cd, token);
	if (r < 0)
		return log_error_errno(r, "cannot remove token %d of '%s': %s; %s", token, path,
				       strerror(-r), left_behind(path, token, p.keyslots));
	*ret = p;
	return 0;
}
