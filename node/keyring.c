/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Raw add_key(2)/keyctl(2) rather than libkeyutils: five calls, and one library less in the
 * initramfs (the dracut and mkinitcpio images would otherwise have to carry libkeyutils.so).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <openssl/x509.h>

#include "fileio.h"
#include "keyring.h"
#include "log.h"

/* linux/keyctl.h, spelled out so no kernel header is needed. */
enum {
	KEYCTL_GET_KEYRING_ID = 0,
	KEYCTL_JOIN_SESSION_KEYRING = 1,
	KEYCTL_UPDATE = 2,
	KEYCTL_CHOWN = 4,
	KEYCTL_SETPERM = 5,
	KEYCTL_DESCRIBE = 6,
	KEYCTL_LINK = 8,
	KEYCTL_UNLINK = 9,
	KEYCTL_SEARCH = 10,
	KEYCTL_READ = 11,
	KEYCTL_SET_TIMEOUT = 15,
	KEYCTL_INVALIDATE = 21,
};

#define POS_ALL 0x3f000000u
#define USR_VIEW_READ 0x00030000u
#define GRP_VIEW_READ 0x00000300u

#define PROC_KEYS_MAX (4u << 20)

static long keyctl(int op, unsigned long a, unsigned long b, unsigned long c, unsigned long d)
{
	return syscall(SYS_keyctl, op, a, b, c, d);
}

static int32_t add_key(const char *type, const char *desc, const void *p, size_t n, int32_t ring)
{
	return (int32_t)syscall(SYS_add_key, type, desc, p, n, ring);
}

#define KID(id) ((unsigned long)(long)(id))

bool keyring_desc_valid(const char *desc)
{
	if (streq(desc, "key") || streq(desc, "certificate") || streq(desc, "chain") || streq(desc, "status"))
		return true;
	return strncmp(desc, KEYRING_SECRET_PREFIX, strlen(KEYRING_SECRET_PREFIX)) == 0 &&
	       secret_name_valid(desc + strlen(KEYRING_SECRET_PREFIX));
}

int keyring_parent(int32_t *ret)
{
	const char *e = secure_getenv("KEYSTRAP_KEYRING");

	if (!e || !*e || streq(e, "user"))
		*ret = KEYRING_SPEC_USER;
	else if (streq(e, "session"))
		*ret = KEYRING_SPEC_SESSION;
	else
		return -EINVAL;
	return 0;
}

int keyring_possess(int32_t parent)
{
	if (parent == KEYRING_SPEC_SESSION)
		return 0; /* possessed already */
	if (keyctl(KEYCTL_LINK, KID(parent), KID(KEYRING_SPEC_PROCESS), 0, 0) < 0)
		return -errno;
	return 0;
}

int keyring_find_in(int32_t parent, int32_t *ret)
{
	long id = keyctl(KEYCTL_SEARCH, KID(parent), (unsigned long)"keyring", (unsigned long)KEYRING_NAME, 0);

	if (id < 0)
		return errno == ENOKEY || errno == EKEYREVOKED || errno == EKEYEXPIRED ? -ENOKEY : -errno;
	*ret = (int32_t)id;
	return 0;
}

/* The PKCS#8 DER of key, built in a secure buffer (OpenSSL clears its own copies on free). */
static int key_der(EVP_PKEY *key, struct secbuf **ret)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
	struct secbuf *b = NULL;
	uint8_t *p;
	int n;

	if (!p8)
		return -EINVAL;
	n = i2d_PKCS8_PRIV_KEY_INFO(p8, NULL);
	if (n > 0 && (b = secbuf_new((size_t)n))) {
		p = b->data;
		if (i2d_PKCS8_PRIV_KEY_INFO(p8, &p) != n) {
			secbuf_free(b);
			b = NULL;
		}
	}
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (!b)
		return -ENOMEM;
	*ret = b;
	return 0;
}

struct made {
	int32_t ids[8 + 256];
	size_t n;
};

static void invalidate_all(struct made *m)
{
	/* The keyring (first) last: its keys may only be reachable through it. */
	for (size_t i = m->n; i-- > 0;)
		(void)keyctl(KEYCTL_INVALIDATE, KID(m->ids[i]), 0, 0, 0);
	m->n = 0;
}

static int add_one(struct made *m, int32_t ring, const char *desc, const void *p, size_t n, unsigned timeout)
{
	int32_t id;

	if (n == 0 || n > KEYRING_PAYLOAD_MAX)
		return -EMSGSIZE;
	if (m->n >= ELEMENTSOF(m->ids))
		return -E2BIG;
	id = add_key("user", desc, p, n, ring);
	if (id < 0)
		return -errno;
	m->ids[m->n++] = id;
	/* Possessor only while it is built: nobody sees a half-filled keyring. */
	if (keyctl(KEYCTL_SETPERM, KID(id), POS_ALL, 0, 0) < 0 ||
	    keyctl(KEYCTL_SET_TIMEOUT, KID(id), timeout, 0, 0) < 0)
		return -errno;
	return 0;
}

static int check_credentials(const struct node_credentials *c, int64_t now, unsigned *ret_timeout)
{
	if (!c->key || !c->certificate)
		return -EINVAL;
	int64_t left = node_credentials_remaining(c, now);

	if (left <= 0)
		return -ESTALE;
	for (size_t i = 0; i < c->n_secrets; i++) {
		if (!secret_name_valid(c->secrets[i].name) || !c->secrets[i].value)
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (streq(c->secrets[i].name, c->secrets[j].name))
				return -ENOTUNIQ;
	}
	if (c->n_secrets > ELEMENTSOF(((struct made *)NULL)->ids) - 8)
		return -E2BIG;
	*ret_timeout = left > UINT32_MAX ? UINT32_MAX : (unsigned)left;
	return 0;
}

/* Everything into ring, possessor-only; the caller hands it over and links it. */
static int fill(struct made *m, int32_t ring, const struct node_credentials *c, const char *status,
		unsigned timeout)
{
	_cleanup_secbuf_ struct secbuf *der = NULL;
	char desc[KEYRING_DESC_MAX + 1];
	int r;

	if ((r = key_der(c->key, &der)) < 0 || (r = add_one(m, ring, "key", der->data, der->size, timeout)) < 0 ||
	    (r = add_one(m, ring, "certificate", c->certificate, strlen(c->certificate), timeout)) < 0 ||
	    (c->chain && *c->chain && (r = add_one(m, ring, "chain", c->chain, strlen(c->chain), timeout)) < 0) ||
	    (r = add_one(m, ring, "status", status, strlen(status), timeout)) < 0)
		return r;
	for (size_t i = 0; i < c->n_secrets; i++) {
		snprintf(desc, sizeof(desc), KEYRING_SECRET_PREFIX "%s", c->secrets[i].name);
		r = add_one(m, ring, desc, c->secrets[i].value->data, c->secrets[i].value->size, timeout);
		if (r < 0)
			return r;
	}
	return 0;
}

static int hand_over(const struct made *m, const struct keyring_owner *o)
{
	uint32_t perm = POS_ALL | (o->uid != (uid_t)-1 ? USR_VIEW_READ : 0) | (o->gid != (gid_t)-1 ? GRP_VIEW_READ : 0);

	/* Keys first, keyring last: a consumer can list the keyring only once every key is its. */
	for (size_t i = m->n; i-- > 0;) {
		if ((o->uid != (uid_t)-1 || o->gid != (gid_t)-1) &&
		    keyctl(KEYCTL_CHOWN, KID(m->ids[i]), o->uid, o->gid, 0) < 0)
			return -errno;
		if (keyctl(KEYCTL_SETPERM, KID(m->ids[i]), perm, 0, 0) < 0)
			return -errno;
	}
	return 0;
}

/* c NULL: the status alone. */
static int replace(const struct node_credentials *c, const struct keyring_owner *o, const char *status,
		   unsigned timeout, int32_t parent, int32_t *ret_id)
{
	struct made m = {};
	int32_t ring, old = 0;
	int r;

	if (strlen(status) > KEYRING_STATUS_MAX)
		return -EMSGSIZE;
	r = keyring_find_in(parent, &old);
	if (r < 0 && r != -ENOKEY)
		return r;

	/* Off to the side: the process keyring, which goes away with this process anyway. */
	ring = add_key("keyring", KEYRING_NAME, NULL, 0, KEYRING_SPEC_PROCESS);
	if (ring < 0)
		return -errno;
	m.ids[m.n++] = ring;
	if (keyctl(KEYCTL_SETPERM, KID(ring), POS_ALL, 0, 0) < 0 ||
	    keyctl(KEYCTL_SET_TIMEOUT, KID(ring), timeout, 0, 0) < 0) {
		r = -errno;
		goto fail;
	}
	if (c)
		r = fill(&m, ring, c, status, timeout);
	else
		r = add_one(&m, ring, "status", status, strlen(status), timeout);
	if (r < 0 || (r = hand_over(&m, o)) < 0)
		goto fail;
	/* One link: it displaces the previous keyring of the same name in parent atomically. */
	if (keyctl(KEYCTL_LINK, KID(ring), KID(parent), 0, 0) < 0) {
		r = -errno;
		goto fail;
	}
	(void)keyctl(KEYCTL_UNLINK, KID(ring), KID(KEYRING_SPEC_PROCESS), 0, 0);
	if (old > 0) {
		_cleanup_free_ struct keyring_entry *e = NULL;
		size_t n = 0;

		/* The old credentials go now rather than when they expire. */
		if (keyring_list(old, &e, &n) >= 0)
			for (size_t i = 0; i < n; i++)
				(void)keyctl(KEYCTL_INVALIDATE, KID(e[i].id), 0, 0, 0);
		(void)keyctl(KEYCTL_INVALIDATE, KID(old), 0, 0, 0);
	}
	*ret_id = ring;
	return 0;
fail:
	invalidate_all(&m);
	return r;
}

int keyring_store(const struct node_credentials *c, const struct keyring_owner *o, const char *status,
		  int64_t now, int32_t parent, int32_t *ret_id)
{
	unsigned timeout;
	int r;

	if ((r = check_credentials(c, now, &timeout)) < 0)
		return r;
	return replace(c, o, status, timeout, parent, ret_id);
}

int keyring_store_status(const struct keyring_owner *o, const char *status, unsigned timeout, int32_t parent,
			 int32_t *ret_id)
{
	if (timeout == 0)
		return -ESTALE;
	return replace(NULL, o, status, timeout, parent, ret_id);
}

static int describe(int32_t id, char *buf, size_t size)
{
	long n = keyctl(KEYCTL_DESCRIBE, KID(id), (unsigned long)buf, size, 0);

	if (n < 0)
		return -errno;
	if ((size_t)n > size)
		return -ENAMETOOLONG;
	buf[size - 1] = 0;
	return 0;
}

int keyring_describe_parse(const char *s, char *ret_type, size_t type_size, uid_t *ret_uid, gid_t *ret_gid,
			   uint32_t *ret_perm, char *ret_desc, size_t desc_size)
{
	const char *f[5];
	unsigned long v[3];
	size_t n;

	f[0] = s;
	for (int i = 1; i < 5; i++) {
		const char *semi = strchr(f[i - 1], ';');

		if (!semi)
			return -EBADMSG;
		f[i] = semi + 1;
	}
	/* Fields 1-3: uid, gid (decimal, -1 allowed), perm (hex). */
	for (int i = 1; i < 4; i++) {
		char *end;

		errno = 0;
		v[i - 1] = i == 3 ? strtoul(f[i], &end, 16) : (unsigned long)strtol(f[i], &end, 10);
		if (errno || end == f[i] || *end != ';')
			return -EBADMSG;
	}
	n = (size_t)(f[1] - f[0] - 1);
	if (n == 0 || n >= type_size || strlen(f[4]) >= desc_size)
		return -EBADMSG;
	memcpy(ret_type, f[0], n);
	ret_type[n] = 0;
	strcpy(ret_desc, f[4]);
	*ret_uid = (uid_t)v[0];
	*ret_gid = (gid_t)v[1];
	*ret_perm = (uint32_t)v[2];
	return 0;
}

int keyring_list(int32_t keyring, struct keyring_entry **ret, size_t *ret_n)
{
	_cleanup_free_ int32_t *ids = NULL;
	_cleanup_free_ struct keyring_entry *e = NULL;
	long size = keyctl(KEYCTL_READ, KID(keyring), 0, 0, 0), got;
	size_t n = 0;

	if (size < 0)
		return -errno;
	ids = malloc((size_t)size + sizeof(int32_t));
	if (!ids)
		return -ENOMEM;
	/* KEYCTL_READ returns the keyring's size now, not what it copied: one that grew is -EAGAIN. */
	got = keyctl(KEYCTL_READ, KID(keyring), (unsigned long)ids, (unsigned long)size, 0);
	if (got < 0)
		return -errno;
	if (got > size)
		return -EAGAIN;
	size = got;
	e = calloc((size_t)size / sizeof(int32_t) + 1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < (size_t)size / sizeof(int32_t); i++) {
		char buf[512], type[32];
		long len;

		/* A key that went away, or that this caller may not view, is not listed. */
		if (describe(ids[i], buf, sizeof(buf)) < 0 ||
		    keyring_describe_parse(buf, type, sizeof(type), &e[n].uid, &e[n].gid, &e[n].perm, e[n].desc,
					   sizeof(e[n].desc)) < 0 ||
		    !streq(type, "user"))
			continue;
		len = keyctl(KEYCTL_READ, KID(ids[i]), 0, 0, 0);
		e[n].size = len < 0 ? 0 : (size_t)len;
		e[n].id = ids[i];
		n++;
	}
	*ret = TAKE_PTR(e);
	*ret_n = n;
	return 0;
}

int keyring_read(int32_t keyring, const char *desc, struct secbuf **ret)
{
	_cleanup_free_ struct keyring_entry *e = NULL;
	size_t n = 0;
	int r = keyring_list(keyring, &e, &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		_cleanup_secbuf_ struct secbuf *b = NULL;
		long len;

		if (!streq(e[i].desc, desc))
			continue;
		/* Sized again: the key may have been replaced since it was listed. */
		len = keyctl(KEYCTL_READ, KID(e[i].id), 0, 0, 0);
		if (len < 0)
			return -errno;
		if (len > KEYRING_PAYLOAD_MAX || !(b = secbuf_new((size_t)len)))
			return -ENOMEM;
		len = keyctl(KEYCTL_READ, KID(e[i].id), (unsigned long)b->data, b->size, 0);
		if (len < 0)
			return -errno;
		if ((size_t)len > b->size)
			return -EAGAIN;
		b->size = (size_t)len;
		*ret = TAKE_PTR(b);
		return 0;
	}
	return -ENOKEY;
}

int keyring_update(int32_t keyring, const char *desc, const void *p, size_t n)
{
	_cleanup_free_ struct keyring_entry *e = NULL;
	size_t count = 0;
	int r = keyring_list(keyring, &e, &count);

	if (r < 0)
		return r;
	for (size_t i = 0; i < count; i++)
		if (streq(e[i].desc, desc))
			return keyctl(KEYCTL_UPDATE, KID(e[i].id), (unsigned long)p, n, 0) < 0 ? -errno : 0;
	return -ENOKEY;
}

int keyring_proc_candidates(const char *text, size_t size, const char *name, int32_t **ret, size_t *ret_n)
{
	_cleanup_free_ int32_t *ids = NULL;
	size_t n = 0, cap = 0, nlen = strlen(name);

	for (size_t off = 0; off < size;) {
		const char *line = text + off, *nl = memchr(line, '\n', size - off);
		size_t len = nl ? (size_t)(nl - line) : size - off;
		const char *k = memmem(line, len, " keyring ", 9);
		unsigned long id;
		char *end;

		off += len + 1;
		/* "ID FLAGS USAGE TIMEOUT PERM UID GID keyring   NAME: ..." — a hint only: each
		 * candidate is described again by the kernel, which is what counts. */
		if (!k || len < 9)
			continue;
		k += 9;
		while (k < line + len && *k == ' ')
			k++;
		if ((size_t)(line + len - k) <= nlen || memcmp(k, name, nlen) != 0 || k[nlen] != ':')
			continue;
		errno = 0;
		id = strtoul(line, &end, 16);
		if (errno || end != line + 8 || id == 0 || id > INT32_MAX)
			continue;
		/*
		 * Flags "IRDQUNi": a replaced keyring is invalidated at once but lingers, still
		 * readable, until the kernel's garbage collector reaps it. Only instantiated ones
		 * that are not revoked, dead, negative, invalidated or expired are candidates.
		 */
		if (len < 28 || line[8] != ' ' || line[9] != 'I' || line[10] != '-' || line[11] != '-' ||
		    line[14] != '-' || line[15] != '-' || memmem(line + 16, 12, "expd", 4))
			continue;
		if (n == cap) {
			int32_t *p = reallocarray(ids, cap = cap ? cap * 2 : 8, sizeof(*ids));

			if (!p)
				return -ENOMEM;
			ids = p;
		}
		ids[n++] = (int32_t)id;
	}
	*ret = TAKE_PTR(ids);
	*ret_n = n;
	return 0;
}

static bool in_groups(gid_t gid)
{
	gid_t groups[256];
	int n;

	if (gid == getegid())
		return true;
	n = getgroups(ELEMENTSOF(groups), groups);
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

int keyring_find_visible(int32_t *ret)
{
	_cleanup_free_ uint8_t *text = NULL;
	_cleanup_free_ int32_t *ids = NULL;
	size_t size = 0, n = 0;
	int r;

	r = read_file("/proc/keys", PROC_KEYS_MAX, &text, &size);
	if (r < 0)
		return r;
	r = keyring_proc_candidates((const char *)text, size, KEYRING_NAME, &ids, &n);
	if (r < 0)
		return r;
	/*
	 * Owned by root or by the caller first: anyone may make a keyring called "keystrap" and give
	 * it to one of their own groups, so a group match is only taken when there is nothing else
	 * (the [Handoff] Group= reader who is not the Owner=).
	 */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			char buf[512], type[32], desc[KEYRING_DESC_MAX + 1];
			uid_t uid;
			gid_t gid;
			uint32_t perm;

			if (describe(ids[i], buf, sizeof(buf)) < 0 ||
			    keyring_describe_parse(buf, type, sizeof(type), &uid, &gid, &perm, desc, sizeof(desc)) < 0 ||
			    !streq(type, "keyring") || !streq(desc, KEYRING_NAME))
				continue;
			if (pass == 0 ? uid != 0 && uid != geteuid() : !in_groups(gid))
				continue;
			/* Live and readable: a revoked, invalidated or expired one fails here. */
			if (keyctl(KEYCTL_READ, KID(ids[i]), 0, 0, 0) < 0)
				continue;
			*ret = ids[i];
			return 0;
		}
	return -ENOKEY;
}

int keyring_find_for_caller(int32_t *ret)
{
	int32_t parent;
	int r;

	if (geteuid() == 0) {
		if ((r = keyring_parent(&parent)) < 0 || (r = keyring_possess(parent)) < 0)
			return r;
		return keyring_find_in(parent, ret);
	}
	if (keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0) < 0)
		return -errno;
	return keyring_find_visible(ret);
}
