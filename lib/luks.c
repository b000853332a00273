/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <blkid/blkid.h>

#include "log.h"
#include "luks.h"
#include "token.h"

int luks_resolve(const char *spec, char **ret)
{
	char *path;

	if (strncmp(spec, "UUID=", 5) == 0) {
		blkid_cache cache = NULL;

		/* A private, empty cache: a stale /run/blkid entry for a reused device must not hide the UUID. */
		if (blkid_get_cache(&cache, "/dev/null") < 0)
			return -ENOMEM;
		path = blkid_evaluate_tag("UUID", spec + 5, &cache);
		blkid_put_cache(cache);
		if (!path)
			return -ENOENT;
	} else {
		path = strdup(spec);
		if (!path)
			return -ENOMEM;
	}
	*ret = path;
	return 0;
}

/* libcryptsetup prints its own lines on stderr; keystrap says one line itself, at the boundary. */
static void log_crypt(int level, const char *msg, void *userdata)
{
	(void)level;
	(void)userdata;
	log_debug("libcryptsetup: %.*s", (int)strcspn(msg, "\n"), msg);
}

int luks_open(const char *path, struct crypt_device **ret)
{
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	const char *type;
	int r;

	crypt_set_log_callback(NULL, log_crypt, NULL);
	/* crypt_init says -ENOTBLK for a path that does not exist at all. */
	if (access(path, F_OK) < 0)
		return -errno;
	r = crypt_init(&cd, path);
	if (r < 0)
		return r;
	r = crypt_load(cd, CRYPT_LUKS, NULL);
	if (r < 0)
		return -EINVAL;
	type = crypt_get_type(cd);
	if (!type || !streq(type, CRYPT_LUKS2))
		return -EPROTONOSUPPORT;
	*ret = TAKE_PTR(cd);
	return 0;
}

static bool no_free_token(struct crypt_device *cd)
{
	for (int tok = 0; tok < 32; tok++)
		if (crypt_token_status(cd, tok, NULL) == CRYPT_TOKEN_INACTIVE)
			return false;
	return true;
}

int luks_enroll(struct crypt_device *cd, const struct secbuf *existing, const struct secbuf *passphrase,
		int (*make_token)(int slot, void *userdata, char **ret_json), void *userdata,
		int *ret_slot, int *ret_token)
{
	/* The key is 256 bits from getrandom: a slow KDF adds boot time and no security. */
	struct crypt_pbkdf_type pbkdf = {
		.type = CRYPT_KDF_PBKDF2,
		.hash = "sha512",
		.iterations = 1000,
		.flags = CRYPT_PBKDF_NO_BENCHMARK,
	};
	_cleanup_free_ char *json = NULL;
	int slot, token, r;

	r = crypt_set_pbkdf_type(cd, &pbkdf);
	if (r < 0)
		return log_debug_errno(r, "crypt_set_pbkdf_type: %m");
	slot = crypt_keyslot_add_by_passphrase(cd, CRYPT_ANY_SLOT, (const char *)existing->data,
					       existing->size, (const char *)passphrase->data,
					       passphrase->size);
	if (slot < 0)
		return slot == -EPERM ? -EACCES : slot;

	r = make_token(slot, userdata, &json);
	if (r >= 0) {
		token = crypt_token_json_set(cd, CRYPT_ANY_TOKEN, json);
		r = token;
	}
	if (r == -EINVAL && no_free_token(cd))
		r = -ENOSPC;
	if (r < 0) {
		/* Roll back: a keyslot without its token is an orphan nobody can use or explain. */
		if (crypt_keyslot_destroy(cd, slot) < 0)
			log_error("could not remove keyslot %d after a failed enroll; remove it by hand", slot);
		return r;
	}
	*ret_slot = slot;
	*ret_token = token;
	return 0;
}

int luks_next_tpm2_token(struct crypt_device *cd, int after, const char **ret_json)
{
	for (int tok = after + 1; tok < 32; tok++) {
		const char *type = NULL;
		crypt_token_info info = crypt_token_status(cd, tok, &type);

		if (info == CRYPT_TOKEN_INACTIVE || info == CRYPT_TOKEN_INVALID || !type ||
		    !streq(type, TOKEN_TYPE_TPM2))
			continue;
		if (crypt_token_json_get(cd, tok, ret_json) < 0)
			continue;
		return tok;
	}
	return -ENOENT;
}

bool luks_keyslot_in_use(struct crypt_device *cd, int slot)
{
	crypt_keyslot_info ki = crypt_keyslot_status(cd, slot);

	return ki == CRYPT_SLOT_ACTIVE || ki == CRYPT_SLOT_ACTIVE_LAST;
}

int luks_activate(struct crypt_device *cd, const char *name, int slot, const struct secbuf *passphrase)
{
	int r;

	r = crypt_activate_by_passphrase(cd, name, slot, (const char *)passphrase->data, passphrase->size,
					 0);
	return r < 0 ? r : 0;
}
