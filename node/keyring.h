/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "node-credentials.h"
#include "secbuf.h"

/*
 * Node credentials in kernel keyrings (keyrings(7)), through the raw add_key/keyctl syscalls.
 *
 * One keyring named "keystrap" holds one "user" key per credential: "key" (the node key,
 * PKCS#8 DER), "certificate" and "chain" (PEM), "secret:NAME" for each secret payload, and
 * "status" (non-secret facts for keystrap status). Every key and the keyring time out when the
 * certificate expires. The possessor (root, through the parent keyring) may do anything; the
 * configured owner uid and group may view and read; nobody else may do anything.
 *
 * The keyring is linked into root's user keyring: it lives as long as the kernel (the user
 * namespace's keyring register since Linux 5.3), so it survives switch_root, and it has no
 * idle expiry of its own (the persistent keyring does: /proc/sys/kernel/keys/
 * persistent_keyring_expiry, three days by default, after which everything in it is gone).
 */

#define KEYRING_NAME "keystrap"
#define KEYRING_SECRET_PREFIX "secret:"
#define KEYRING_DESC_MAX (sizeof(KEYRING_SECRET_PREFIX) + NODE_SECRET_NAME_MAX)
#define KEYRING_PAYLOAD_MAX 32767 /* the kernel's limit for a "user" key */
#define KEYRING_STATUS_MAX 4096

/* Special keyring ids (linux/keyctl.h). */
#define KEYRING_SPEC_PROCESS (-2)
#define KEYRING_SPEC_SESSION (-3)
#define KEYRING_SPEC_USER (-4)

struct keyring_owner {
	uid_t uid; /* (uid_t)-1: the keys stay root's */
	gid_t gid; /* (gid_t)-1: no group may read */
};

/*
 * Where handoff links the keyring: root's user keyring, or the session keyring when
 * $KEYSTRAP_KEYRING=session (tests, so that a `keyctl session` holds everything they make).
 * -EINVAL for any other value.
 */
int keyring_parent(int32_t *ret);

/*
 * Makes the caller possess everything under parent (links it into the process keyring), so
 * that root may still read, time out and replace keys it has given to another uid.
 */
int keyring_possess(int32_t parent);

/*
 * Builds a new "keystrap" keyring off to the side (in the process keyring) holding c and the
 * status text, hands its keys to o, and links it into parent, which replaces any previous one
 * in a single link operation; the previous keyring and its keys are then invalidated. Every
 * key times out after node_credentials_remaining(c, now) seconds. On any failure whatever was
 * made is invalidated and the previous keyring is untouched. -ESTALE when nothing remains,
 * -EINVAL for a bad secret name, -ENOTUNIQ for a name given twice, -EDQUOT when the owner's key
 * quota cannot take it.
 */
int keyring_store(const struct node_credentials *c, const struct keyring_owner *o, const char *status,
		  int64_t now, int32_t parent, int32_t *ret_id);

/*
 * Replaces the "keystrap" keyring in parent, as keyring_store does (one link, then the previous
 * keyring's keys invalidated), with one that holds only the status text, for timeout seconds:
 * the credentials are gone at once and whoever reads them learns why from the status.
 */
int keyring_store_status(const struct keyring_owner *o, const char *status, unsigned timeout, int32_t parent,
			 int32_t *ret_id);

/* The "keystrap" keyring in parent, for root (after keyring_possess). -ENOKEY if none. */
int keyring_find_in(int32_t parent, int32_t *ret);

/*
 * The "keystrap" keyring this process may view and read as its uid and groups, found through
 * /proc/keys. One owned by root or by the caller is taken first (nobody else can make one:
 * giving a key to another uid needs CAP_SYS_ADMIN); one owned by another uid but in one of the
 * caller's groups only when there is none such (any member of the group can make that one, by
 * keyctl chgrp). -ENOKEY if none.
 */
int keyring_find_visible(int32_t *ret);

/*
 * What get and status use: root finds the keyring through keyring_parent() (possessing it);
 * anyone else through keyring_find_visible() after joining a fresh session keyring, so that
 * only its uid and groups count (a session inherited from root grants nothing extra).
 */
int keyring_find_for_caller(int32_t *ret);

/*
 * The key called desc in keyring, read into a secure buffer. -ENOKEY if it holds none, -EAGAIN
 * if the keyring or the key changed while it was read (look again).
 */
int keyring_read(int32_t keyring, const char *desc, struct secbuf **ret);

/* The key called desc in keyring given a new payload in place (its permissions and timeout stay). */
int keyring_update(int32_t keyring, const char *desc, const void *p, size_t n);

struct keyring_entry {
	int32_t id;
	char desc[KEYRING_DESC_MAX + 1];
	uid_t uid;
	gid_t gid;
	uint32_t perm;
	size_t size; /* payload bytes (the size only; nothing is read) */
};

/* The keys in keyring, described. -EAGAIN if keys were added while it was read (look again). */
int keyring_list(int32_t keyring, struct keyring_entry **ret, size_t *ret_n);

/* "type;uid;gid;perm;description" as KEYCTL_DESCRIBE gives it. Pure, fuzzed. */
int keyring_describe_parse(const char *s, char *ret_type, size_t type_size, uid_t *ret_uid, gid_t *ret_gid,
			   uint32_t *ret_perm, char *ret_desc, size_t desc_size);

/* The key ids in /proc/keys text whose line names a keyring called name. Pure, fuzzed. */
int keyring_proc_candidates(const char *text, size_t size, const char *name, int32_t **ret, size_t *ret_n);

/* Whether desc may name a credential: "key", "certificate", "chain", "status", "secret:NAME". */
bool keyring_desc_valid(const char *desc);
