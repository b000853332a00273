/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Secrets at rest (envelope.h): each version sealed under a data key of its own, the data key
 * wrapped by the KEK; the store's KEK record; KEK rotation; and the one-time encryption of what
 * earlier versions kept in clear. Both backends store the same blobs: all the cryptography is
 * here.
 *
 * One data key per version rather than one per store: a version's key is drawn when the version
 * is set and is never used for anything else, so deleting a version (its wrapped key with it)
 * leaves nothing in the database that opens it, a data key seen once (a core dump of a read)
 * opens one value, and GCM's random-IV budget under one key never comes into it. The price is
 * one unwrap per secret a node receives (an AES-GCM of 32 bytes with a file KEK), and a
 * rotation that re-wraps every version instead of one key: both small at a fleet's secret
 * counts.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "attest-msg.h"
#include "envelope.h"
#include "log.h"
#include "payload.h"
#include "secbuf.h"
#include "store-backend.h"

#define AAD_MAX 128
/* What the KEK record's verifier is wrapped for: a value nothing else is. */
#define AAD_CHECK "keystrap-kek-check"

/* The record's identity, as each blob's associated data: a blob moved elsewhere does not open. */
static const char *aad_value(char buf[AAD_MAX], const char *name, int64_t version)
{
	snprintf(buf, AAD_MAX, "keystrap-secret|%s|%lld", name, (long long)version);
	return buf;
}

static const char *aad_data_key(char buf[AAD_MAX], const char *name, int64_t version)
{
	snprintf(buf, AAD_MAX, "keystrap-data-key|%s|%lld", name, (long long)version);
	return buf;
}

static const char *aad_share(char buf[AAD_MAX], const char *what, const char *ek_hash, const char *volume)
{
	snprintf(buf, AAD_MAX, "keystrap-disk-share%s|%s|%s", what, ek_hash, volume);
	return buf;
}
#define SHARE_VALUE ""
#define SHARE_KEY "-key"

/* When the store itself records something (the KEK record, the encryption of clear values). */
static int64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A secret_row copied out of a backend's callback. */
struct row_copy {
	char name[SECRET_NAME_MAX + 1];
	int64_t version, created_us, deleted_us, size;
	char kek_id[KEK_ID_HEX + 1];
	uint8_t *wrapped_key, *ciphertext;
	size_t wrapped_key_size, ciphertext_size;
};

static void row_copy_done(struct row_copy *c)
{
	free(c->wrapped_key);
	free(c->ciphertext);
	c->wrapped_key = c->ciphertext = NULL;
}

static uint8_t *blob_dup(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);

	if (d && n)
		memcpy(d, p, n);
	return d;
}

static int row_copy_from(struct row_copy *c, const struct secret_row *r)
{
	/* The database is not trusted to keep the bounds the writer kept. */
	if (strlen(r->name) > SECRET_NAME_MAX || strlen(r->kek_id) > KEK_ID_HEX)
		return -EBADMSG;
	*c = (struct row_copy){ .version = r->version, .created_us = r->created_us, .deleted_us = r->deleted_us,
				.size = r->size, .wrapped_key_size = r->wrapped_key_size,
				.ciphertext_size = r->ciphertext_size };
	memcpy(c->name, r->name, strlen(r->name) + 1);
	memcpy(c->kek_id, r->kek_id, strlen(r->kek_id) + 1);
	c->wrapped_key = blob_dup(r->wrapped_key, r->wrapped_key_size);
	c->ciphertext = blob_dup(r->ciphertext, r->ciphertext_size);
	if (!c->wrapped_key || !c->ciphertext) {
		row_copy_done(c);
		return -ENOMEM;
	}
	return 0;
}

struct rows {
	struct row_copy *v;
	size_t n, cap;
};

static void rows_done(struct rows *r)
{
	for (size_t i = 0; i < r->n; i++)
		row_copy_done(&r->v[i]);
	free(r->v);
	*r = (struct rows){};
}

static int collect(const struct secret_row *row, void *userdata)
{
	struct rows *r = userdata;

	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		struct row_copy *v = reallocarray(r->v, cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	if (row_copy_from(&r->v[r->n], row) < 0)
		return -EBADMSG;
	r->n++;
	return 0;
}

/* name NULL: every version of every secret. */
static int rows_get(struct store *s, const char *name, bool newest_only, struct rows *ret)
{
	struct rows r = {};
	int k = s->ops->secret_foreach(s, name, newest_only, collect, &r);

	if (k < 0) {
		rows_done(&r);
		return k;
	}
	*ret = r;
	return 0;
}

/* name's newest version (deleted or not): -ENOENT never set. */
static int newest(struct store *s, const char *name, struct row_copy *ret)
{
	struct rows r = {};
	int k = rows_get(s, name, true, &r);

	if (k < 0)
		return k;
	if (r.n == 0) {
		rows_done(&r);
		return -ENOENT;
	}
	*ret = r.v[0];
	r.v[0] = (struct row_copy){};
	rows_done(&r);
	return 0;
}

/* The data key of a version, unwrapped: -EBADMSG when k did not wrap it for that identity. */
static int row_data_key(struct kek *k, const struct row_copy *c, struct secbuf **ret)
{
	char aad[AAD_MAX];

	return kek_unwrap(k, aad_data_key(aad, c->name, c->version), c->wrapped_key, c->wrapped_key_size, ret);
}

static int row_open(struct kek *k, const struct row_copy *c, struct secbuf **ret)
{
	_cleanup_secbuf_ struct secbuf *data_key = NULL, *value = NULL;
	char aad[AAD_MAX];
	int r;

	if (c->deleted_us)
		return -ENOENT;
	if ((r = row_data_key(k, c, &data_key)) < 0 ||
	    (r = envelope_open(data_key, aad_value(aad, c->name, c->version), c->ciphertext, c->ciphertext_size,
			       &value)) < 0)
		return r;
	if (value->size != (size_t)c->size)
		return -EBADMSG;
	*ret = TAKE_PTR(value);
	return 0;
}

/* Whether k opens the store's KEK record: 0, -EKEYREJECTED, -ENOENT (no record). */
static int kek_check(struct store *s, struct kek *k, char ret_store_id[KEK_ID_HEX + 1])
{
	_cleanup_secbuf_ struct secbuf *v = NULL;
	_cleanup_free_ uint8_t *check = NULL;
	char id[KEK_ID_HEX + 1];
	size_t n;
	int r;

	if ((r = s->ops->kek_get(s, id, &check, &n)) < 0)
		return r;
	if (ret_store_id)
		memcpy(ret_store_id, id, sizeof(id));
	r = kek_unwrap(k, AAD_CHECK, check, n, &v);
	return r == -EBADMSG ? -EKEYREJECTED : r;
}

static int kek_record_put(struct store *s, struct kek *k, int64_t now_us)
{
	_cleanup_secbuf_ struct secbuf *v = NULL;
	_cleanup_free_ uint8_t *check = NULL;
	size_t n;
	int r;

	if ((r = data_key_new(&v)) < 0 || (r = kek_wrap(k, AAD_CHECK, v, &check, &n)) < 0)
		return r;
	return s->ops->kek_put(s, kek_id(k), check, n, now_us);
}

/* Under the writer lock: the store is still under this process's KEK (no rotation since it opened). */
static int kek_current(struct store *s)
{
	char why[512];
	int r = kek_check(s, s->kek, NULL);

	if (r != -EKEYREJECTED)
		return r;
	if (kek_reload(s->kek, why, sizeof(why)) < 0)
		return log_debug_errno(-EKEYREJECTED, "%s", why);
	return kek_check(s, s->kek, NULL);
}

struct put_args {
	const char *name;
	const struct secbuf *value;
	int64_t created_us;
	int64_t version;
};

static int put_fn(struct store *s, void *userdata)
{
	struct put_args *a = userdata;
	_cleanup_(row_copy_done) struct row_copy last = {};
	_cleanup_secbuf_ struct secbuf *data_key = NULL;
	_cleanup_free_ uint8_t *ct = NULL, *wrapped = NULL;
	struct secret_row row;
	size_t ct_size, wrapped_size;
	char aad[AAD_MAX];
	int64_t version = 1;
	int r;

	if (!secret_name_valid(a->name))
		return -EINVAL;
	if ((r = kek_current(s)) < 0)
		return r;
	r = newest(s, a->name, &last);
	if (r >= 0)
		version = last.version + 1;
	else if (r != -ENOENT)
		return r;
	if ((r = data_key_new(&data_key)) < 0 ||
	    (r = envelope_seal(data_key, aad_value(aad, a->name, version), a->value, &ct, &ct_size)) < 0 ||
	    (r = kek_wrap(s->kek, aad_data_key(aad, a->name, version), data_key, &wrapped, &wrapped_size)) < 0)
		return r;
	row = (struct secret_row){ .name = a->name, .version = version, .created_us = a->created_us,
				   .size = (int64_t)a->value->size, .kek_id = kek_id(s->kek),
				   .wrapped_key = wrapped, .wrapped_key_size = wrapped_size, .ciphertext = ct,
				   .ciphertext_size = ct_size };
	if ((r = s->ops->secret_insert(s, &row)) < 0)
		return r;
	a->version = version;
	return 0;
}

int store_secret_put(struct store *s, const char *name, const struct secbuf *value, int64_t now_us,
		     int64_t *ret_version)
{
	struct put_args a = { .name = name, .value = value, .created_us = now_us };
	int r = store_transaction_do(s, put_fn, &a);

	if (r < 0)
		return r;
	if (ret_version)
		*ret_version = a.version;
	return 0;
}

int store_secret_get(struct store *s, const char *name, struct secbuf **ret, int64_t *ret_version)
{
	_cleanup_(row_copy_done) struct row_copy c = {};
	_cleanup_secbuf_ struct secbuf *v = NULL;
	char why[512];
	int r;

	if ((r = newest(s, name, &c)) < 0)
		return r;
	if (c.deleted_us)
		return -ENOENT;
	/* Another process rotated the KEK and put the new one where ours came from: take it. */
	if (!streq(c.kek_id, kek_id(s->kek)) && kek_reload(s->kek, why, sizeof(why)) < 0)
		log_debug("%s", why);
	r = row_open(s->kek, &c, &v);
	if (r == -EBADMSG && !streq(c.kek_id, kek_id(s->kek)))
		return log_debug_errno(-EKEYREJECTED, "secret %s version %lld: wrapped by KEK id %s, not %s", c.name,
				       (long long)c.version, c.kek_id, kek_id(s->kek));
	if (r < 0)
		return r;
	*ret = TAKE_PTR(v);
	if (ret_version)
		*ret_version = c.version;
	return 0;
}

struct share_args {
	const char *ek_hash, *volume;
	const struct secbuf *share;
	int64_t now_us;
};

static int share_put_fn(struct store *s, void *userdata)
{
	struct share_args *a = userdata;
	_cleanup_secbuf_ struct secbuf *data_key = NULL;
	_cleanup_free_ uint8_t *ct = NULL, *wrapped = NULL;
	struct disk_share_row row;
	size_t ct_size, wrapped_size;
	char aad[AAD_MAX];
	int r;

	if ((r = kek_current(s)) < 0)
		return r;
	if ((r = data_key_new(&data_key)) < 0 ||
	    (r = envelope_seal(data_key, aad_share(aad, SHARE_VALUE, a->ek_hash, a->volume), a->share, &ct, &ct_size)) < 0 ||
	    (r = kek_wrap(s->kek, aad_share(aad, SHARE_KEY, a->ek_hash, a->volume), data_key, &wrapped, &wrapped_size)) < 0)
		return r;
	row = (struct disk_share_row){ .ek_hash = a->ek_hash, .volume = a->volume, .created_us = a->now_us,
				       .kek_id = kek_id(s->kek), .wrapped_key = wrapped, .wrapped_key_size = wrapped_size,
				       .ciphertext = ct, .ciphertext_size = ct_size };
	return s->ops->disk_share_put(s, &row);
}

int store_disk_share_put(struct store *s, const char *ek_hash, const char *volume, const struct secbuf *share,
			 int64_t now_us)
{
	struct share_args a = { ek_hash, volume, share, now_us };

	return store_transaction_do(s, share_put_fn, &a);
}

static int share_data_key(struct kek *k, const struct disk_share_row *row, struct secbuf **ret)
{
	char aad[AAD_MAX];

	return kek_unwrap(k, aad_share(aad, SHARE_KEY, row->ek_hash, row->volume), row->wrapped_key,
			  row->wrapped_key_size, ret);
}

static int share_open_cb(const struct disk_share_row *row, void *userdata)
{
	struct store *s = ((void **)userdata)[0];
	struct secbuf **value = ((void **)userdata)[1];
	_cleanup_secbuf_ struct secbuf *data_key = NULL;
	char aad[AAD_MAX], why[512];
	int r;

	/* Another process rotated the KEK and put the new one where ours came from: take it. */
	if (!streq(row->kek_id, kek_id(s->kek)) && kek_reload(s->kek, why, sizeof(why)) < 0)
		log_debug("%s", why);
	r = share_data_key(s->kek, row, &data_key);
	if (r == -EBADMSG && !streq(row->kek_id, kek_id(s->kek)))
		return -EKEYREJECTED;
	if (r < 0)
		return r;
	return envelope_open(data_key, aad_share(aad, SHARE_VALUE, row->ek_hash, row->volume), row->ciphertext,
			     row->ciphertext_size, value);
}

int store_disk_share_get(struct store *s, const char *ek_hash, const char *volume, struct secbuf **ret)
{
	_cleanup_secbuf_ struct secbuf *v = NULL;
	void *args[2] = { s, &v };
	int r = s->ops->disk_share_foreach(s, ek_hash, volume, share_open_cb, args);

	if (r < 0)
		return r;
	if (!v || v->size != ATTEST_DISK_SHARE_SIZE)
		return -EBADMSG;
	*ret = TAKE_PTR(v);
	return 0;
}

/* A rotation's copy of every share row, to re-wrap once the read is done. */
struct share_copy {
	char ek_hash[EK_HASH_HEX + 1], volume[ATTEST_VOLUME_LEN + 1];
	int64_t created_us;
	uint8_t *wrapped_key, *ciphertext;
	size_t wrapped_key_size, ciphertext_size;
};

struct share_copies {
	struct share_copy *v;
	size_t n;
};

static void share_copies_done(struct share_copies *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].wrapped_key);
		free(c->v[i].ciphertext);
	}
	free(c->v);
	*c = (struct share_copies){};
}

static int share_collect(const struct disk_share_row *row, void *userdata)
{
	struct share_copies *c = userdata;
	struct share_copy *v = reallocarray(c->v, c->n + 1, sizeof(*v)), *e;

	if (!v)
		return -ENOMEM;
	c->v = v;
	if (strlen(row->ek_hash) > EK_HASH_HEX || strlen(row->volume) > ATTEST_VOLUME_LEN)
		return -EBADMSG;
	e = &v[c->n];
	*e = (struct share_copy){ .created_us = row->created_us, .wrapped_key_size = row->wrapped_key_size,
				  .ciphertext_size = row->ciphertext_size };
	memcpy(e->ek_hash, row->ek_hash, strlen(row->ek_hash) + 1);
	memcpy(e->volume, row->volume, strlen(row->volume) + 1);
	e->wrapped_key = blob_dup(row->wrapped_key, row->wrapped_key_size);
	e->ciphertext = blob_dup(row->ciphertext, row->ciphertext_size);
	c->n++;
	return e->wrapped_key && e->ciphertext ? 0 : -ENOMEM;
}

/* In store_kek_rotate's transaction: every share's data key re-wrapped to new_kek. */
static int shares_rewrap(struct store *s, struct kek *new_kek, int64_t *count, char *why, size_t why_size)
{
	struct share_copies c = {};
	int r = s->ops->disk_share_foreach(s, NULL, NULL, share_collect, &c);

	if (r < 0)
		snprintf(why, why_size, "cannot read the disk shares: %s", strerror(-r));
	for (size_t i = 0; i < c.n && r >= 0; i++) {
		const struct share_copy *e = &c.v[i];
		struct disk_share_row row = { .ek_hash = e->ek_hash, .volume = e->volume, .created_us = e->created_us,
					      .wrapped_key = e->wrapped_key, .wrapped_key_size = e->wrapped_key_size,
					      .ciphertext = e->ciphertext, .ciphertext_size = e->ciphertext_size };
		_cleanup_secbuf_ struct secbuf *data_key = NULL;
		_cleanup_free_ uint8_t *wrapped = NULL;
		char aad[AAD_MAX];
		size_t size;

		if ((r = share_data_key(s->kek, &row, &data_key)) < 0 ||
		    (r = kek_wrap(new_kek, aad_share(aad, SHARE_KEY, e->ek_hash, e->volume), data_key, &wrapped, &size)) < 0)
			snprintf(why, why_size, "cannot re-wrap the disk share of EK %s, volume %s: %s", e->ek_hash,
				 e->volume, strerror(-r));
		else {
			row.kek_id = kek_id(new_kek);
			row.wrapped_key = wrapped;
			row.wrapped_key_size = size;
			if ((r = s->ops->disk_share_put(s, &row)) < 0)
				snprintf(why, why_size, "cannot store the disk share of EK %s, volume %s: %s",
					 e->ek_hash, e->volume, strerror(-r));
			else
				++*count;
		}
	}
	share_copies_done(&c);
	return r;
}

struct foreach_args {
	int (*cb)(const struct secret_info *i, void *userdata);
	void *userdata;
};

static int info_of(const struct secret_row *row, void *userdata)
{
	const struct foreach_args *a = userdata;
	struct secret_info i = { .name = row->name, .version = row->version, .created_us = row->created_us,
				 .deleted_us = row->deleted_us, .size = row->size };

	return a->cb(&i, a->userdata);
}

int store_secret_foreach(struct store *s, const char *name, int (*cb)(const struct secret_info *i, void *userdata),
			 void *userdata)
{
	struct foreach_args a = { cb, userdata };

	return s->ops->secret_foreach(s, name, !name, info_of, &a);
}

struct delete_args {
	const char *name;
	int64_t now_us, count;
};

static int delete_fn(struct store *s, void *userdata)
{
	struct delete_args *a = userdata;
	int r = s->ops->secret_delete(s, a->name, a->now_us);

	if (r < 0)
		return r;
	a->count = r;
	return r == 0 ? -ENOENT : 0;
}

int store_secret_delete(struct store *s, const char *name, int64_t now_us, int64_t *ret_versions)
{
	struct delete_args a = { name, now_us, 0 };
	int r = store_transaction_do(s, delete_fn, &a);

	if (r < 0)
		return r;
	if (ret_versions)
		*ret_versions = a.count;
	return 0;
}

static void row_fault(const struct row_copy *c, struct kek *k, int r, char *why, size_t why_size)
{
	if (r == -EBADMSG && !streq(c->kek_id, kek_id(k)))
		snprintf(why, why_size, "secret %s version %lld is wrapped by KEK id %s, not by KEK '%s' (id %s)", c->name,
			 (long long)c->version, c->kek_id, kek_name(k), kek_id(k));
	else if (r == -EBADMSG)
		snprintf(why, why_size,
			 "secret %s version %lld does not decrypt under KEK '%s' (id %s): its row was altered, or moved "
			 "from another secret or version",
			 c->name, (long long)c->version, kek_name(k), kek_id(k));
	else
		snprintf(why, why_size, "secret %s version %lld: %s", c->name, (long long)c->version, strerror(-r));
}

int store_secret_verify(struct store *s, int64_t *ret_count, char *why, size_t why_size)
{
	struct rows rows = {};
	int64_t n = 0;
	int r;

	if ((r = rows_get(s, NULL, false, &rows)) < 0) {
		snprintf(why, why_size, "cannot read the secrets: %s", strerror(-r));
		return r;
	}
	for (size_t i = 0; i < rows.n; i++) {
		_cleanup_secbuf_ struct secbuf *v = NULL;

		if (rows.v[i].deleted_us)
			continue;
		if ((r = row_open(s->kek, &rows.v[i], &v)) < 0) {
			row_fault(&rows.v[i], s->kek, r, why, why_size);
			rows_done(&rows);
			return r;
		}
		n++;
	}
	rows_done(&rows);
	*ret_count = n;
	return 0;
}

int store_kek_rotate(struct store *s, struct kek *new_kek, int64_t *ret_count, char *why, size_t why_size)
{
	struct rows rows = {};
	char store_id[KEK_ID_HEX + 1] = "";
	int64_t n = 0;
	int r;

	if (!s->ops->in_transaction(s))
		return -EBUSY;
	r = kek_check(s, s->kek, store_id);
	if (r == -EKEYREJECTED && kek_check(s, new_kek, NULL) == 0)
		return -EALREADY;
	if (r == -EKEYREJECTED) {
		snprintf(why, why_size, "the store is under KEK id %s, which is neither KEK '%s' (id %s) nor '%s' (id %s)",
			 store_id, kek_name(s->kek), kek_id(s->kek), kek_name(new_kek), kek_id(new_kek));
		return r;
	}
	if (r < 0) {
		snprintf(why, why_size, "cannot read the store's KEK record: %s", strerror(-r));
		return r;
	}
	if (streq(kek_id(s->kek), kek_id(new_kek)))
		return -EALREADY;
	if ((r = rows_get(s, NULL, false, &rows)) < 0) {
		snprintf(why, why_size, "cannot read the secrets: %s", strerror(-r));
		return r;
	}
	for (size_t i = 0; i < rows.n && r >= 0; i++) {
		const struct row_copy *c = &rows.v[i];
		_cleanup_secbuf_ struct secbuf *data_key = NULL;
		_cleanup_free_ uint8_t *wrapped = NULL;
		char aad[AAD_MAX];
		size_t size;

		if (c->deleted_us)
			continue;
		if ((r = row_data_key(s->kek, c, &data_key)) < 0) {
			row_fault(c, s->kek, r, why, why_size);
			break;
		}
		if ((r = kek_wrap(new_kek, aad_data_key(aad, c->name, c->version), data_key, &wrapped, &size)) < 0 ||
		    (r = s->ops->secret_rewrap(s, c->name, c->version, kek_id(new_kek), wrapped, size)) < 0)
			snprintf(why, why_size, "cannot re-wrap secret %s version %lld: %s", c->name,
				 (long long)c->version, strerror(-r));
		else
			n++;
	}
	rows_done(&rows);
	if (r < 0)
		return r;
	if ((r = shares_rewrap(s, new_kek, &n, why, why_size)) < 0)
		return r;
	if ((r = kek_record_put(s, new_kek, wall_us())) < 0) {
		snprintf(why, why_size, "cannot write the KEK record: %s", strerror(-r));
		return r;
	}
	*ret_count = n;
	return 0;
}

struct bind_args {
	char *why;
	size_t why_size;
	int64_t migrated;
};

static int legacy_count(const char *name, const struct secbuf *value, int64_t changed_us, void *userdata)
{
	(void)name, (void)value, (void)changed_us;
	++*(int64_t *)userdata;
	return 0;
}

struct migrate_args {
	struct store *s;
	int64_t count;
	char *why;
	size_t why_size;
};

static int legacy_encrypt(const char *name, const struct secbuf *value, int64_t changed_us, void *userdata)
{
	struct migrate_args *m = userdata;
	struct put_args a = { .name = name, .value = value, .created_us = changed_us };
	int r = put_fn(m->s, &a);

	if (r < 0) {
		snprintf(m->why, m->why_size, "cannot encrypt secret '%s' kept in clear by an earlier version: %s", name,
			 r == -EINVAL ? "not a valid secret name" : strerror(-r));
		return r;
	}
	m->count++;
	return 0;
}

static int bind_fn(struct store *s, void *userdata)
{
	struct bind_args *b = userdata;
	struct migrate_args m = { s, 0, b->why, b->why_size };
	struct rows rows = {};
	char store_id[KEK_ID_HEX + 1], reasons[256];
	struct audit_rec a;
	int r = kek_check(s, s->kek, store_id);

	if (r == -ENOENT) {
		/* No record, yet versions: the record was removed. Binding them to whatever KEK came
		 * first would hide that. */
		if ((r = rows_get(s, NULL, true, &rows)) < 0)
			return r;
		r = rows.n ? -EBADMSG : 0;
		rows_done(&rows);
		if (r < 0) {
			snprintf(b->why, b->why_size, "it holds encrypted secrets but no record of their KEK");
			return r;
		}
		if ((r = kek_record_put(s, s->kek, wall_us())) < 0)
			return r;
	} else if (r < 0)
		return r;
	r = s->ops->legacy_foreach(s, legacy_encrypt, &m);
	if (r == -ENOENT)
		return 0;
	if (r < 0 || (r = s->ops->legacy_drop(s)) < 0)
		return r;
	snprintf(reasons, sizeof(reasons),
		 "%lld secrets kept in clear by an earlier version encrypted under KEK id %s; their clear copies "
		 "may remain in older backups",
		 (long long)m.count, kek_id(s->kek));
	a = (struct audit_rec){ .time_us = wall_us(), .peer = "local", .ek_hash = "", .node_id = "",
				.action = "secrets-encrypt", .decision = "allow", .reasons = reasons };
	b->migrated = m.count;
	return store_audit_append(s, &a);
}

int store_kek_bind(struct store *s, char *why, size_t why_size)
{
	struct bind_args b = { why, why_size, 0 };
	char store_id[KEK_ID_HEX + 1] = "";
	int64_t legacy = 0;
	int r = kek_check(s, s->kek, store_id), k;

	if (r == -EKEYREJECTED) {
		snprintf(why, why_size, "its secrets are under KEK id %s, and KEK '%s' is id %s: not the store's KEK",
			 store_id, kek_name(s->kek), kek_id(s->kek));
		return r;
	}
	if (r < 0 && r != -ENOENT) {
		snprintf(why, why_size, "cannot read its KEK record: %s", strerror(-r));
		return r;
	}
	k = s->ops->legacy_foreach(s, legacy_count, &legacy);
	if (k < 0 && k != -ENOENT)
		return k;
	if (r == 0 && k == -ENOENT)
		return 0;
	/* A record to write, or values in clear to encrypt: under the writer lock, checked again. */
	if ((r = store_transaction_do(s, bind_fn, &b)) < 0) {
		if (r == -EKEYREJECTED)
			snprintf(why, why_size, "its secrets are under another KEK than '%s' (id %s)", kek_name(s->kek),
				 kek_id(s->kek));
		return r;
	}
	if (b.migrated > 0) {
		s->ops->scrub(s);
		log_warning("encrypted the %lld secrets an earlier version kept in clear (KEK '%s', id %s); copies "
			    "of the database made before hold them in clear: change those secrets' values",
			    (long long)b.migrated, kek_name(s->kek), kek_id(s->kek));
	}
	return 0;
}
