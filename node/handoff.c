/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "encode.h"
#include "handoff-status.h"
#include "handoff.h"
#include "log.h"

static int parse_id(const char *s, unsigned long *ret)
{
	char *end;

	if (strspn(s, "0123456789") != strlen(s))
		return -EINVAL;
	errno = 0;
	*ret = strtoul(s, &end, 10);
	return errno || *end || *ret >= 4294967295UL ? -ERANGE : 0;
}

/* A numeric id, or a name through NSS; NULL or "": (uint32_t)-1. */
static int resolve(const char *s, bool user, uint32_t *ret)
{
	unsigned long id;

	if (!s || !*s)
		id = (uint32_t)-1;
	else if (parse_id(s, &id) < 0) {
		struct passwd *pw = user ? getpwnam(s) : NULL;
		struct group *gr = user ? NULL : getgrnam(s);

		if (!pw && !gr)
			return -ESRCH;
		id = pw ? pw->pw_uid : gr->gr_gid;
	}
	*ret = (uint32_t)id;
	return 0;
}

int handoff_owner(const char *owner, const char *group, struct keyring_owner *ret)
{
	uint32_t uid, gid;
	int r;

	if ((r = resolve(owner, true, &uid)) < 0 || (r = resolve(group, false, &gid)) < 0)
		return r;
	ret->uid = (uid_t)uid;
	ret->gid = (gid_t)gid;
	return 0;
}

int handoff_store(const struct node_credentials *c, const struct keyring_owner *o, const char *pcrs, int64_t now,
		  int32_t *ret_id)
{
	_cleanup_free_ char *text = NULL;
	uint8_t generation[HANDOFF_GENERATION_SIZE];
	struct handoff_status s = {
		.policy_version = c->policy_version,
		.attested_at = now,
		.not_after = c->not_after,
		.clock_skew = c->clock_skew,
		.uid = o->uid == (uid_t)-1 ? -1 : (int64_t)o->uid,
		.gid = o->gid == (gid_t)-1 ? -1 : (int64_t)o->gid,
	};
	int32_t parent;
	int r;

	snprintf(s.node_id, sizeof(s.node_id), "%s", c->node_id);
	snprintf(s.server, sizeof(s.server), "%s", c->server);
	snprintf(s.result, sizeof(s.result), "attested");
	if (pcrs && strlen(pcrs) < sizeof(s.pcrs))
		snprintf(s.pcrs, sizeof(s.pcrs), "%s", pcrs);
	if (handoff_status_set_checkpoint(&s, c->checkpoint) < 0)
		log_warning("the audit log checkpoint is too long to keep in the status: the next attestation "
			    "cannot prove the log consistent with it");
	if (getrandom(generation, sizeof(generation), 0) != sizeof(generation))
		return -errno;
	hex_encode(generation, sizeof(generation), s.generation);
	if ((r = keyring_parent(&parent)) < 0)
		return -EBADR;
	if ((r = handoff_status_format(&s, &text)) < 0)
		return r;
	if ((r = keyring_possess(parent)) < 0)
		return r;
	return keyring_store(c, o, text, now, parent, ret_id);
}

int handoff_revoke(const struct handoff_status *st, int64_t now)
{
	_cleanup_free_ char *text = NULL;
	uint8_t generation[HANDOFF_GENERATION_SIZE];
	struct handoff_status s = *st;
	struct keyring_owner o = { .uid = st->uid < 0 ? (uid_t)-1 : (uid_t)st->uid,
				   .gid = st->gid < 0 ? (gid_t)-1 : (gid_t)st->gid };
	int64_t left = handoff_status_expiry(st) - now;
	int32_t parent, id;
	int r;

	if (left <= 0)
		return -ESTALE;
	snprintf(s.result, sizeof(s.result), "revoked");
	s.revoked_at = now;
	if (getrandom(generation, sizeof(generation), 0) != sizeof(generation))
		return -errno;
	hex_encode(generation, sizeof(generation), s.generation);
	if ((r = keyring_parent(&parent)) < 0)
		return -EBADR;
	if ((r = handoff_status_format(&s, &text)) < 0 || (r = keyring_possess(parent)) < 0)
		return r;
	return keyring_store_status(&o, text, left > UINT32_MAX ? UINT32_MAX : (unsigned)left, parent, &id);
}

const char *handoff_reason(int r)
{
	switch (-r) {
	case ESTALE:
		return "the certificate has already expired";
	case EINVAL:
		return "a secret name is not 1-64 characters of A-Z a-z 0-9 . _ - (or the key or certificate is missing)";
	case ENOTUNIQ:
		return "a secret name appears twice";
	case EDQUOT:
		return "the owner's key quota cannot hold the credentials (/proc/sys/kernel/keys/maxbytes, maxkeys)";
	case EMSGSIZE:
		return "a credential is empty or larger than a key may hold (32767 bytes)";
	case EBADR:
		return "$KEYSTRAP_KEYRING is neither 'user' nor 'session'";
	case EACCES:
	case EPERM:
		return "the kernel refused (keystrap handoff runs as root)";
	case ENOSYS:
	case EOPNOTSUPP:
		return "this kernel has no key retention service (CONFIG_KEYS)";
	default:
		return strerror(-r);
	}
}
