/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <blkid/blkid.h>

#include "attest-msg.h"
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

/*
 * The key is 256 bits from getrandom: a slow KDF adds boot time and no security. These exact
 * parameters are also half of how luks_repair knows a keyslot an interrupted enroll added
 * (the other half is the pending record naming it).
 */
static const struct crypt_pbkdf_type keystrap_pbkdf = {
	.type = CRYPT_KDF_PBKDF2,
	.hash = "sha512",
	.iterations = 1000,
	.flags = CRYPT_PBKDF_NO_BENCHMARK,
};

#define LUKS2_TOKENS 32

/*
 * libcryptsetup reports every failed header or keyslot-area write as -EIO. The write(2) that
 * failed set errno, and nothing on libcryptsetup's way out resets it: errno, cleared before the
 * call, names the cause when it is one a write can have. libcryptsetup's own -ENOSPC is a full
 * header (JSON or keyslots area), never a full disk.
 */
static int write_cause(int r)
{
	if (r == -ENOSPC)
		return -E2BIG;
	if (r != -EIO)
		return r;
	switch (errno) {
	case ENOSPC:
	case EDQUOT:
	case EROFS:
	case EFBIG:
	case ENXIO:
	case ENODEV:
	case ENOMEDIUM:
		return -errno;
	default:
		return r;
	}
}

/*
 * One header commit: r is what the libcryptsetup call returned (errno cleared before it). The
 * next commit depends on this one being on the disk, and libcryptsetup ignores what its own
 * fsync says, so this fsync must succeed too.
 */
static int committed(int fd, int r)
{
	r = write_cause(r);
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	return r;
}
#define COMMIT(fd, call)                    \
	({                                  \
		errno = 0;                  \
		committed((fd), (call));    \
	})

/* Where the header lives: a detached header's device, else the volume's. */
static const char *header_path(struct crypt_device *cd)
{
	return crypt_get_metadata_device_name(cd) ?: crypt_get_device_name(cd);
}

/* A descriptor of the header's device, opened before the writes whose errors its fsync reports. */
static int sync_fd(struct crypt_device *cd)
{
	const char *path = header_path(cd);
	int fd;

	if (!path)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Added by keystrap's enroll: its PBKDF, no token, and never the only keyslot left. */
static bool keyslot_is_orphan(struct crypt_device *cd, int slot)
{
	struct crypt_pbkdf_type p;

	if (slot < 0 || crypt_keyslot_status(cd, slot) != CRYPT_SLOT_ACTIVE)
		return false;
	if (crypt_keyslot_get_pbkdf(cd, slot, &p) < 0 || !p.type || !p.hash ||
	    !streq(p.type, keystrap_pbkdf.type) || !streq(p.hash, keystrap_pbkdf.hash) ||
	    p.iterations != keystrap_pbkdf.iterations)
		return false;
	for (int tok = 0; tok < LUKS2_TOKENS; tok++)
		if (crypt_token_is_assigned(cd, tok, slot) == 0)
			return false;
	return true;
}

static int repair(struct crypt_device *cd, int fd, bool dry_run, struct luks_repaired *ret)
{
	struct luks_repaired done = {};
	int r;

	for (int tok = 0; tok < LUKS2_TOKENS; tok++) {
		const char *json = NULL;
		enum token_kind kind;
		int slot = -1;

		if (crypt_token_status(cd, tok, NULL) == CRYPT_TOKEN_INACTIVE ||
		    crypt_token_json_get(cd, tok, &json) < 0)
			continue;
		kind = token_classify(json, strlen(json), &slot);
		if (kind != TOKEN_PENDING && kind != TOKEN_KEYSTRAP_UNBOUND)
			continue;
		/* The keyslot goes first: its record must outlive it, or a crash in between would
		 * leave a keyslot nothing names. */
		if (kind == TOKEN_PENDING && keyslot_is_orphan(cd, slot)) {
			if (!dry_run) {
				r = COMMIT(fd, crypt_keyslot_destroy(cd, slot));
				if (r < 0)
					return log_debug_errno(r, "destroying keyslot %d: %s", slot, strerror(-r));
			}
			done.keyslots |= 1u << slot;
		}
		if (!dry_run) {
			r = COMMIT(fd, crypt_token_json_set(cd, tok, NULL));
			if (r < 0)
				return log_debug_errno(r, "removing token %d: %s", tok, strerror(-r));
		}
		if (kind == TOKEN_PENDING)
			done.pending |= 1u << tok;
		else
			done.unbound |= 1u << tok;
	}
	*ret = done;
	return 0;
}

/* The token old, if its blob is the one want names and it may go; removed unless dry_run. */
static int repair_replaced_one(struct crypt_device *cd, int old, const uint8_t want[32], bool dry_run)
{
	struct luks_removal p;
	const char *json = NULL;
	uint8_t have[32];
	int r;

	if (crypt_token_status(cd, old, NULL) == CRYPT_TOKEN_INACTIVE || crypt_token_json_get(cd, old, &json) < 0 ||
	    token_blob_digest(json, strlen(json), have) < 0 || memcmp(have, want, sizeof(have)) != 0)
		return 0;
	r = luks_removal_plan(cd, old, &p);
	if (r < 0 || p.refusal)
		return 0;
	if (!dry_run) {
		r = luks_remove_token(cd, old);
		if (r < 0)
			return log_debug_errno(r, "removing replaced token %d: %s", old, strerror(-r));
	}
	return 1;
}

/* A reseal cut short between its new token's commit and the stale token's removal. */
static int repair_replaced(struct crypt_device *cd, bool dry_run, uint32_t *ret)
{
	uint32_t gone = 0;
	int r;

	for (int tok = 0; tok < LUKS2_TOKENS; tok++) {
		const char *json = NULL;
		uint8_t want[32];
		int slot = -1;

		/* Only a new token that is all there: keystrap's, bound to a keyslot in use. */
		if (crypt_token_status(cd, tok, NULL) == CRYPT_TOKEN_INACTIVE || crypt_token_json_get(cd, tok, &json) < 0 ||
		    token_classify(json, strlen(json), &slot) != TOKEN_KEYSTRAP || !luks_keyslot_in_use(cd, slot) ||
		    token_replaces(json, strlen(json), want) < 0)
			continue;
		for (int old = 0; old < LUKS2_TOKENS; old++) {
			if (old == tok || (gone & (1u << old)))
				continue;
			r = repair_replaced_one(cd, old, want, dry_run);
			if (r < 0)
				return r;
			if (r > 0)
				gone |= 1u << old;
		}
	}
	*ret = gone;
	return 0;
}

int luks_repair(struct crypt_device *cd, bool dry_run, struct luks_repaired *ret)
{
	_cleanup_close_ int fd = dry_run ? -1 : sync_fd(cd);
	struct luks_repaired done;
	int r;

	if (!dry_run && fd < 0)
		return fd;
	r = repair(cd, fd, dry_run, &done);
	if (r < 0)
		return r;
	r = repair_replaced(cd, dry_run, &done.replaced);
	if (r < 0)
		return r;
	*ret = done;
	return 0;
}

/*
 * After a failed commit libcryptsetup's idea of the header is not the disk's: read again what
 * landed, turn this run's token (if its commit landed after all) back into the pending record,
 * and let repair remove the rest.
 */
static enum luks_leftover undo(const char *path, int slot, int token)
{
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	_cleanup_free_ char *pending = NULL;
	_cleanup_close_ int fd = -1;
	struct luks_repaired done;
	int r;

	r = luks_open(path, &cd);
	if (r < 0)
		return log_debug_errno(r, "reading the header again: %s", strerror(-r)), LUKS_LEFT_PENDING;
	fd = sync_fd(cd);
	if (fd < 0)
		return LUKS_LEFT_PENDING;
	/* Token and keyslot were both free when this run began: a token there bound to the keyslot
	 * is this run's, whatever its type (a systemd-tpm2 or a systemd-recovery token). */
	if (crypt_token_status(cd, token, NULL) != CRYPT_TOKEN_INACTIVE &&
	    crypt_token_is_assigned(cd, token, slot) == 0) {
		r = token_pending_format(slot, &pending);
		if (r >= 0)
			r = COMMIT(fd, crypt_token_json_set(cd, token, pending));
		if (r < 0)
			return log_debug_errno(r, "demoting token %d: %s", token, strerror(-r)), LUKS_LEFT_ENROLLED;
	}
	r = repair(cd, fd, false, &done);
	return r < 0 ? LUKS_LEFT_PENDING : LUKS_LEFT_NOTHING;
}

static int free_keyslot(struct crypt_device *cd)
{
	for (int slot = 0; slot < crypt_keyslot_max(CRYPT_LUKS2); slot++)
		if (crypt_keyslot_status(cd, slot) == CRYPT_SLOT_INACTIVE)
			return slot;
	return -EMLINK;
}

static int free_token(struct crypt_device *cd)
{
	for (int tok = 0; tok < LUKS2_TOKENS; tok++)
		if (crypt_token_status(cd, tok, NULL) == CRYPT_TOKEN_INACTIVE)
			return tok;
	return -ENOBUFS;
}

/* Three commits, each leaving a state repair recognises; see luks.h. */
static int enroll_commits(struct crypt_device *cd, int fd, const struct secbuf *volume_key,
			  const struct secbuf *passphrase, int slot, int token, const char *final_json)
{
	_cleanup_free_ char *pending = NULL;
	int r;

	r = token_pending_format(slot, &pending);
	if (r < 0)
		return r;
	r = COMMIT(fd, crypt_token_json_set(cd, token, pending));
	if (r < 0)
		return log_debug_errno(r, "writing the pending record as token %d: %s", token, strerror(-r));
	r = crypt_set_pbkdf_type(cd, &keystrap_pbkdf);
	if (r < 0)
		return log_debug_errno(r, "crypt_set_pbkdf_type: %s", strerror(-r));
	r = COMMIT(fd, crypt_keyslot_add_by_volume_key(cd, slot, (const char *)volume_key->data,
						      volume_key->size, (const char *)passphrase->data,
						      passphrase->size));
	if (r < 0)
		return log_debug_errno(r, "adding keyslot %d: %s", slot, strerror(-r));
	r = COMMIT(fd, crypt_token_json_set(cd, token, final_json));
	if (r < 0)
		return log_debug_errno(r, "writing token %d: %s", token, strerror(-r));
	return 0;
}

int luks_enroll(struct crypt_device *cd, const struct secbuf *existing, const struct secbuf *passphrase,
		int (*make_token)(int slot, void *userdata, char **ret_json), void *userdata,
		int *ret_slot, int *ret_token, enum luks_leftover *leftover)
{
	_cleanup_secbuf_ struct secbuf *volume_key = NULL;
	_cleanup_free_ char *json = NULL, *path = NULL;
	_cleanup_close_ int fd = -1;
	size_t vk_size;
	int slot, token, r;

	*leftover = LUKS_LEFT_NOTHING;
	/* Everything that can refuse is asked before the first write, so a refusal writes nothing. */
	r = crypt_get_volume_key_size(cd);
	if (r <= 0)
		return -EINVAL;
	volume_key = secbuf_new((size_t)r);
	if (!volume_key)
		return -ENOMEM;
	vk_size = volume_key->size;
	r = crypt_volume_key_get(cd, CRYPT_ANY_SLOT, (char *)volume_key->data, &vk_size,
				 (const char *)existing->data, existing->size);
	if (r < 0)
		return r == -EPERM ? -EACCES : r;
	volume_key->size = vk_size;
	slot = free_keyslot(cd);
	if (slot < 0)
		return slot;
	token = free_token(cd);
	if (token < 0)
		return token;
	r = make_token(slot, userdata, &json);
	if (r < 0)
		return r;
	path = strdup(header_path(cd) ?: "");
	if (!path)
		return -ENOMEM;
	fd = sync_fd(cd);
	if (fd < 0)
		return fd;

	r = enroll_commits(cd, fd, volume_key, passphrase, slot, token, json);
	if (r < 0) {
		*leftover = undo(path, slot, token);
		return r;
	}
	*ret_slot = slot;
	*ret_token = token;
	return 0;
}

int luks_next_token(struct crypt_device *cd, int after, const char *want, const char **ret_json)
{
	for (int tok = after + 1; tok < LUKS2_TOKENS; tok++) {
		const char *type = NULL;
		crypt_token_info info = crypt_token_status(cd, tok, &type);

		if (info == CRYPT_TOKEN_INACTIVE || info == CRYPT_TOKEN_INVALID || !type || !streq(type, want))
			continue;
		if (crypt_token_json_get(cd, tok, ret_json) < 0)
			continue;
		return tok;
	}
	return -ENOENT;
}

int luks_next_tpm2_token(struct crypt_device *cd, int after, const char **ret_json)
{
	return luks_next_token(cd, after, TOKEN_TYPE_TPM2, ret_json);
}

int luks_uuid(struct crypt_device *cd, char ret[static 37])
{
	const char *uuid = crypt_get_uuid(cd);
	char v[37];

	if (!uuid || strlen(uuid) != 36)
		return -EINVAL;
	for (size_t i = 0; i <= 36; i++)
		v[i] = (char)tolower((unsigned char)uuid[i]);
	if (!attest_volume_valid(v))
		return -EINVAL;
	memcpy(ret, v, sizeof(v));
	return 0;
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

/* The keyslots token is bound to. */
static uint32_t token_keyslots(struct crypt_device *cd, int token)
{
	uint32_t m = 0;

	for (int slot = 0; slot < crypt_keyslot_max(CRYPT_LUKS2); slot++)
		if (crypt_token_is_assigned(cd, token, slot) == 0)
			m |= 1u << slot;
	return m;
}

void luks_keyslots_get(struct crypt_device *cd, struct luks_keyslots *ret)
{
	struct luks_keyslots k = {};

	for (int slot = 0; slot < crypt_keyslot_max(CRYPT_LUKS2); slot++)
		if (luks_keyslot_in_use(cd, slot))
			k.active |= 1u << slot;
	for (int tok = 0; tok < LUKS2_TOKENS; tok++) {
		const char *type = NULL;
		crypt_token_info info = crypt_token_status(cd, tok, &type);

		if (info != CRYPT_TOKEN_INACTIVE && info != CRYPT_TOKEN_INVALID && type && token_type_is_tpm(type))
			k.tpm |= token_keyslots(cd, tok);
	}
	k.tpm &= k.active;
	*ret = k;
}

int luks_removal_plan(struct crypt_device *cd, int token, struct luks_removal *ret)
{
	struct luks_removal p = { .keyslot = -1, .other = -1 };
	struct luks_keyslots k;
	const char *type = NULL;
	uint32_t human, left;
	crypt_token_info info;

	if (token < 0 || token >= LUKS2_TOKENS)
		return -ENOENT;
	info = crypt_token_status(cd, token, &type);
	if (info == CRYPT_TOKEN_INACTIVE)
		return -ENOENT;
	snprintf(p.type, sizeof(p.type), "%s", type ?: "");
	p.tpm = info != CRYPT_TOKEN_INVALID && type && token_type_is_tpm(type);
	p.keyslots = token_keyslots(cd, token);

	/* Another token's keyslot would go with this one's and leave that token bound to nothing. */
	for (int tok = 0; tok < LUKS2_TOKENS && !p.refusal; tok++) {
		uint32_t shared;

		if (tok == token || crypt_token_status(cd, tok, NULL) == CRYPT_TOKEN_INACTIVE)
			continue;
		shared = token_keyslots(cd, tok) & p.keyslots;
		if (shared) {
			p.refusal = LUKS_REMOVE_SHARED;
			p.keyslot = __builtin_ctz(shared);
			p.other = tok;
		}
	}
	luks_keyslots_get(cd, &k);
	human = k.active & ~k.tpm;
	left = k.active & ~p.keyslots;
	if (!p.refusal && (p.keyslots & human) && !(human & left)) {
		p.refusal = LUKS_REMOVE_LAST_HUMAN;
		p.keyslot = __builtin_ctz(p.keyslots & human);
	} else if (!p.refusal && (p.keyslots & k.active) && !left) {
		p.refusal = LUKS_REMOVE_LAST;
		p.keyslot = __builtin_ctz(p.keyslots & k.active);
	}
	*ret = p;
	return 0;
}

int luks_remove_token(struct crypt_device *cd, int token)
{
	_cleanup_close_ int fd = -1;
	struct luks_removal p;
	int r;

	r = luks_removal_plan(cd, token, &p);
	if (r < 0)
		return r;
	if (p.refusal)
		return -EPERM;
	fd = sync_fd(cd);
	if (fd < 0)
		return fd;
	/* Keyslots first: a cut in between leaves the token bound to nothing (luks_repair removes
	 * keystrap's, keystrap wipe anyone's), never a keyslot that looks like a person's. */
	for (int slot = 0; slot < crypt_keyslot_max(CRYPT_LUKS2); slot++) {
		if (!(p.keyslots & (1u << slot)))
			continue;
		r = COMMIT(fd, crypt_keyslot_destroy(cd, slot));
		if (r < 0)
			return log_debug_errno(r, "destroying keyslot %d: %s", slot, strerror(-r));
	}
	r = COMMIT(fd, crypt_token_json_set(cd, token, NULL));
	if (r < 0)
		return log_debug_errno(r, "removing token %d: %s", token, strerror(-r));
	return 0;
}
