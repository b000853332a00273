/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one place that knows which database backs the store: store_open picks the backend from
 * the spec, and every other call goes through that backend's table.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "utf8.h"
#include "store-backend.h"

static const char *const state_names[_NODE_STATE_MAX] = { "requested", "approved", "revoked" };

const char *node_state_name(enum node_state s)
{
	return s < _NODE_STATE_MAX ? state_names[s] : "?";
}

int node_state_from_name(const char *s, enum node_state *ret)
{
	for (int i = 0; i < _NODE_STATE_MAX; i++)
		if (s && streq(s, state_names[i])) {
			*ret = (enum node_state)i;
			return 0;
		}
	return -EBADMSG;
}

static bool is_pg(const char *spec)
{
	return strncmp(spec, "postgresql://", 13) == 0 || strncmp(spec, "postgres://", 11) == 0;
}

/* Copies s[0..n) into the buffer at *pos, as far as it fits. */
static void put(char *buf, size_t size, size_t *pos, const char *s, size_t n)
{
	while (n-- > 0 && *pos + 1 < size)
		buf[(*pos)++] = *s++;
	buf[*pos] = 0;
}

const char *store_spec_display(const char *spec, char *buf, size_t size)
{
	const char *p = spec, *at, *colon, *end;
	size_t pos = 0;

	if (!size)
		return "";
	buf[0] = 0;
	if (!is_pg(spec)) {
		put(buf, size, &pos, spec, strlen(spec));
		return buf;
	}
	/* postgresql://user:PASSWORD@host/db?password=PASSWORD: both places are masked. */
	p = strstr(spec, "://") + 3;
	end = p + strcspn(p, "/?");
	at = memrchr(p, '@', (size_t)(end - p));
	colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
	if (colon) {
		put(buf, size, &pos, spec, (size_t)(colon + 1 - spec));
		put(buf, size, &pos, "***", 3);
		p = at;
	} else
		p = spec;
	while (*p) {
		const char *key = strstr(p, "password=");

		if (!key) {
			put(buf, size, &pos, p, strlen(p));
			break;
		}
		put(buf, size, &pos, p, (size_t)(key + 9 - p));
		p = key + 9;
		if (key[-1] == '?' || key[-1] == '&') {
			put(buf, size, &pos, "***", 3);
			p += strcspn(p, "&");
		}
	}
	return buf;
}

int store_open_why(const char *spec, const char *kek, struct store **ret, char *why, size_t why_size)
{
	const struct store_ops *ops = is_pg(spec) ? &store_pg_ops : &store_sqlite_ops;
	_cleanup_kek_ struct kek *k = NULL;
	struct store *s = NULL;
	char reason[512] = "", shown[512];
	int r;

	store_spec_display(spec, shown, sizeof(shown));
	if (!is_pg(spec) && strncmp(spec, "sqlite:", 7) != 0 && strstr(spec, "://")) {
		snprintf(why, why_size, "cannot open the store '%s': not a path, sqlite:PATH or postgresql:// URI", shown);
		return -EPROTONOSUPPORT;
	}
	/* "host=db dbname=keystrap" would otherwise become an SQLite file of that name. */
	if (!is_pg(spec) && strncmp(spec, "sqlite:", 7) != 0 && strchr(spec, '=') && !strchr(spec, '/')) {
		snprintf(why, why_size, "cannot open the store: the database looks like libpq's key=value form, which "
			 "is not taken: use a postgresql:// URI (or sqlite:PATH for a file with '=' in its name)");
		return -EPROTONOSUPPORT;
	}
	/* Before the database: a missing or loose KEK is refused without touching it. */
	if ((r = kek_load(kek, &k, why, why_size)) < 0)
		return r;
	r = ops->open(spec, &s, reason, sizeof(reason));
	if (r >= 0) {
		s->kek = TAKE_PTR(k);
		if ((r = store_kek_bind(s, reason, sizeof(reason))) < 0 ||
		    (r = store_log_bind(s, reason, sizeof(reason))) < 0)
			store_close(s);
	}
	if (r < 0) {
		snprintf(why, why_size, "cannot open the store '%s': %s", shown, reason[0] ? reason : strerror(-r));
		return r;
	}
	*ret = s;
	return 0;
}

int store_open(const char *spec, const char *kek, struct store **ret)
{
	char why[1024];
	int r = store_open_why(spec, kek, ret, why, sizeof(why));

	if (r < 0)
		log_error("%s", why);
	return r;
}

static void queue_free(struct store *s);

void store_close(struct store *s)
{
	if (!s)
		return;
	queue_free(s);
	kek_free(s->kek);
	s->kek = NULL;
	store_set_log_cosigner(s, NULL);
	store_set_log_signer(s, NULL);
	s->ops->close(s);
}

struct kek *store_kek(struct store *s)
{
	return s->kek;
}

/* Commits made to wait for the disk again, after a batch's that did not: before any other. */
static int durable_again(struct store *s)
{
	int r;

	if (!s->not_durable)
		return 0;
	if ((r = s->ops->set_durable(s, true)) < 0)
		return r;
	s->not_durable = false;
	return 0;
}

int store_begin(struct store *s)
{
	int r = durable_again(s);

	return r < 0 ? r : s->ops->begin(s);
}

int store_begin_batch(struct store *s)
{
	int r = 0;

	if (s->sync_deferred) {
		if ((r = s->ops->set_durable(s, false)) < 0)
			return r;
		s->not_durable = true;
	}
	r = s->ops->begin_batch ? s->ops->begin_batch(s) : s->ops->begin(s);
	if (r < 0) {
		(void)durable_again(s);
		return r;
	}
	s->deferred = true;
	return 0;
}

int store_defer_sync(struct store *s, char **ret_path)
{
	_cleanup_free_ char *path = NULL;
	int r;

	assert(!s->ops->in_transaction(s));
	if (!s->ops->sync_path)
		return -EOPNOTSUPP;
	if ((r = s->ops->sync_path(s, &path)) < 0)
		return r;
	/* The WAL's directory entry too, once: SQLite syncs it at the first sync of a new WAL, which
	 * a batch's commit no longer is. */
	if ((r = store_sync(path)) < 0 || (r = fsync_parent_dir(path)) < 0)
		return r;
	s->sync_deferred = true;
	*ret_path = TAKE_PTR(path);
	return 0;
}

int store_sync(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fdatasync(fd) < 0)
		return -errno;
	return 0;
}

static void queue_free(struct store *s)
{
	for (size_t i = 0; i < s->n_queued; i++)
		for (size_t j = 0; j < ELEMENTSOF(s->queue[i].text); j++)
			free(s->queue[i].text[j]);
	free(s->queue);
	s->queue = NULL;
	s->n_queued = s->queue_cap = 0;
}

/* What lasts only as long as the transaction: another instance may append after it. */
static void transaction_done(struct store *s)
{
	s->log_grew = s->edge_valid = s->head_valid = s->deferred = false;
	queue_free(s);
}

/* The chain's head as the transaction has it (read once, under the writer lock). */
static int head_load(struct store *s)
{
	int k;

	if (s->head_valid)
		return 0;
	k = s->ops->audit_head(s, &s->head_seq, s->head_hash);
	if (k == -ENOENT) {
		s->head_seq = 0;
		memset(s->head_hash, 0, sizeof(s->head_hash));
	} else if (k < 0)
		return k;
	s->head_valid = true;
	return 0;
}

/*
 * Queued records from first on, chained to the head: seq, prev_hash and hash, then their rows
 * and their leaves, each in one statement where the backend can (a batch's sequencing window
 * is a few round trips however many records it has). Under the writer lock.
 */
static int audit_chain(struct store *s, size_t first)
{
	_cleanup_free_ const struct audit_rec **recs = NULL;
	size_t n = s->n_queued - first;
	int64_t seq;
	uint8_t prev[32];
	int k;

	if (n == 0)
		return 0;
	if ((k = head_load(s)) < 0)
		return k;
	if (!(recs = calloc(n, sizeof(*recs))))
		return -ENOMEM;
	seq = s->head_seq;
	memcpy(prev, s->head_hash, sizeof(prev));
	for (size_t i = 0; i < n; i++) {
		struct audit_rec *r = &s->queue[first + i].rec;

		r->seq = ++seq;
		memcpy(r->prev_hash, prev, sizeof(prev));
		if ((k = audit_rec_hash(r, r->hash)) < 0)
			return k;
		memcpy(prev, r->hash, sizeof(prev));
		recs[i] = r;
	}
	if (s->ops->audit_insert_many)
		k = s->ops->audit_insert_many(s, recs, n);
	else
		for (size_t i = 0; i < n && k >= 0; i++)
			k = s->ops->audit_insert(s, recs[i]);
	if (k < 0 || (k = audit_log_append_many(s, recs, n)) < 0) {
		s->head_valid = false;
		return k;
	}
	for (size_t i = 0; i < n; i++)
		s->queue[first + i].appended = true;
	s->head_seq = seq;
	memcpy(s->head_hash, prev, sizeof(prev));
	return 0;
}

int store_sequence(struct store *s)
{
	size_t first = 0;
	int k;

	if (!s->deferred)
		return 0;
	/* Nothing queued (a batch that only read, say a finish's reads before its verification on a
	 * worker): nothing to append, so no lock to wait for. */
	if (s->n_queued == 0) {
		s->deferred = false;
		return 0;
	}
	if (s->ops->lock && (k = s->ops->lock(s)) < 0)
		return k;
	s->deferred = false;
	/* The queue is appended in order: whatever is in it is appended from the first not yet. */
	while (first < s->n_queued && s->queue[first].appended)
		first++;
	return audit_chain(s, first);
}

/* A transaction that appended audit records commits with a checkpoint of them, or not at all. */
int store_commit(struct store *s)
{
	int r;

	if ((r = store_sequence(s)) < 0 || (s->log_grew && s->log_signer && (r = store_checkpoint_sign(s)) < 0))
		return r;
	r = s->ops->commit(s);
	transaction_done(s);
	/* At once, so that no write outside a batch, in a transaction or not, goes without it
	 * (should this fail, the next store_begin tries again before it begins). */
	(void)durable_again(s);
	return r;
}

void store_rollback(struct store *s)
{
	transaction_done(s);
	s->ops->rollback(s);
	(void)durable_again(s);
}

int store_node_get(struct store *s, const char *ek_hash, struct node_rec *ret)
{
	return s->ops->node_get(s, ek_hash, ret);
}

int store_node_get_by_id(struct store *s, const char *node_id, struct node_rec *ret)
{
	return s->ops->node_get_by_id(s, node_id, ret);
}

int store_node_set_certificate(struct store *s, const char *ek_hash, int64_t attested_us, const char *serial,
			       int64_t not_before, int64_t not_after)
{
	return s->ops->node_set_certificate(s, ek_hash, attested_us, serial, not_before, not_after);
}

int store_node_certificates(struct store *s, const char *ek_hash, int64_t limit,
			    int (*cb)(const struct cert_rec *c, void *userdata), void *userdata)
{
	return s->ops->node_certificates(s, ek_hash, limit, cb, userdata);
}

int store_node_request(struct store *s, const char *ek_hash, const char *peer, int64_t now_us)
{
	return s->ops->node_request(s, ek_hash, peer, now_us);
}

int store_node_set_state(struct store *s, const char *ek_hash, enum node_state state, const char *node_id,
			 const char *group, int64_t now_us)
{
	return s->ops->node_set_state(s, ek_hash, state, node_id, group, now_us);
}

int store_node_set_counters(struct store *s, const char *ek_hash, int64_t reset_count, int64_t restart_count)
{
	return s->ops->node_set_counters(s, ek_hash, reset_count, restart_count);
}

int store_node_foreach(struct store *s, int (*cb)(const struct node_rec *n, void *userdata), void *userdata)
{
	return s->ops->node_foreach(s, cb, userdata);
}

int store_revoked_foreach(struct store *s, int64_t now,
			  int (*cb)(const char *serial, int64_t revoked_us, void *userdata), void *userdata)
{
	return s->ops->revoked_foreach(s, now, cb, userdata);
}

int store_revoked_version(struct store *s, int64_t ret[2])
{
	return s->ops->revoked_version(s, ret);
}

static int crl_number_next(struct store *s, void *userdata)
{
	return s->ops->crl_number_next(s, userdata);
}

int store_crl_number_next(struct store *s, int64_t *ret)
{
	return store_transaction_do(s, crl_number_next, ret);
}

/* The upper bounds of the attestation ages but the last two (older, never), seconds. */
static const int64_t age_bounds[NODE_AGE_OLDER] = { 3600, 86400, 7 * 86400, 30 * 86400 };

struct census_walk {
	int64_t now;
	struct node_census c;
};

static int census_node(const struct node_rec *n, void *userdata)
{
	struct census_walk *w = userdata;
	size_t a = 0;

	w->c.state[n->state]++;
	if (n->state != NODE_APPROVED)
		return 0;
	if (n->attested_us == 0)
		a = NODE_AGE_NEVER;
	else
		while (a < NODE_AGE_OLDER && w->now - n->attested_us / 1000000 >= age_bounds[a])
			a++;
	w->c.attested[a]++;
	if (n->cert_not_after > 0 && n->cert_not_after <= w->now)
		w->c.overdue++;
	else if (n->cert_not_after > 0 && n->cert_not_after <= w->now + 7 * 86400)
		w->c.expiring++;
	return 0;
}

int store_node_census(struct store *s, int64_t now_us, struct node_census *ret)
{
	struct census_walk w = { .now = now_us / 1000000 };
	int r = store_node_foreach(s, census_node, &w);

	if (r < 0)
		return r;
	*ret = w.c;
	return 0;
}

int store_node_count(struct store *s, int64_t ret[_NODE_STATE_MAX])
{
	struct node_census c;
	int r = store_node_census(s, 0, &c);

	if (r < 0)
		return r;
	memcpy(ret, c.state, sizeof(c.state));
	return 0;
}

int store_node_id_taken(struct store *s, const char *node_id, const char *except_ek_hash)
{
	return s->ops->node_id_taken(s, node_id, except_ek_hash);
}

int store_nonce_put(struct store *s, const struct nonce_rec *n, int64_t now_us)
{
	return s->ops->nonce_put(s, n, now_us);
}

int store_nonce_get(struct store *s, const char *session, struct nonce_rec *ret)
{
	return s->ops->nonce_get(s, session, ret);
}

int store_nonce_take(struct store *s, const char *session, int64_t now_us)
{
	return s->ops->nonce_take(s, session, now_us);
}

int store_transaction_do(struct store *s, int (*fn)(struct store *s, void *userdata), void *userdata)
{
	int r;

	if (s->ops->in_transaction(s))
		return fn(s, userdata);
	if ((r = store_begin(s)) < 0)
		return r;
	if ((r = fn(s, userdata)) < 0 || (r = store_commit(s)) < 0) {
		store_rollback(s);
		return r;
	}
	return 0;
}

static int probe_write(struct store *s, void *userdata)
{
	return s->ops->probe_write(s, *(const int64_t *)userdata);
}

int store_probe(struct store *s, int64_t now_us)
{
	if (s->ops->in_transaction(s))
		return -EBUSY;
	return store_transaction_do(s, probe_write, &now_us);
}

struct policy_put_args {
	int64_t version;
	const char *text;
	size_t text_size;
	const char *signatures;
	int64_t now_us;
};

static int policy_put(struct store *s, void *userdata)
{
	const struct policy_put_args *a = userdata;
	int64_t current;
	int r;

	r = store_policy_current(s, &current, NULL, NULL, NULL);
	if (r >= 0 && a->version <= current)
		return -ESTALE;
	if (r < 0 && r != -ENOENT)
		return r;
	return s->ops->policy_insert(s, a->version, a->text, a->text_size, a->signatures, a->now_us);
}

int store_policy_put(struct store *s, int64_t version, const char *text, size_t text_size, const char *signatures,
		     int64_t now_us)
{
	struct policy_put_args a = { version, text, text_size, signatures, now_us };

	return store_transaction_do(s, policy_put, &a);
}

int store_policy_resign(struct store *s, int64_t version, const char *signatures)
{
	return s->ops->policy_resign(s, version, signatures);
}

int store_policy_current(struct store *s, int64_t *ret_version, char **ret_text, size_t *ret_size,
			 char **ret_signatures)
{
	_cleanup_free_ char *text = NULL, *sigs = NULL;
	int64_t version;
	size_t size;
	int r;

	r = s->ops->policy_current(s, &version, &text, &size, &sigs);
	if (r < 0)
		return r;
	if (ret_version)
		*ret_version = version;
	if (ret_text)
		*ret_text = TAKE_PTR(text);
	if (ret_size)
		*ret_size = size;
	if (ret_signatures)
		*ret_signatures = TAKE_PTR(sigs);
	return 0;
}

int store_refusal_put(struct store *s, const struct refusal_rec *r)
{
	if (strlen(r->evidence) > REFUSAL_MAX)
		return -EMSGSIZE;
	return s->ops->refusal_put(s, r);
}

int store_refusal_get(struct store *s, const char *ek_hash, int64_t audit_seq, struct refusal_rec *ret)
{
	struct refusal_rec r = {};
	int k = s->ops->refusal_get(s, ek_hash, audit_seq, &r);

	if (k < 0)
		return k;
	/* The database is not trusted to keep the bound the writer kept. */
	if (strlen(r.evidence) > REFUSAL_MAX) {
		free(r.evidence);
		return -EBADMSG;
	}
	*ret = r;
	return 0;
}

/*
 * Audit text is stored as valid UTF-8 (utf8_valid_dup): PostgreSQL's text refuses invalid
 * UTF-8, which would fail the whole batch's commit, and a reason can end in half a character
 * (a name cut at a byte count). Both backends store the same, so the chain hashes exactly
 * what is stored. The record joins the transaction's queue as stored; a batch's waits there
 * for store_sequence, any other is appended at once.
 */
static int audit_append(struct store *s, void *userdata)
{
	struct audit_rec *rec = userdata;
	const char *in[6] = { rec->peer, rec->ek_hash, rec->node_id, rec->action, rec->decision, rec->reasons };
	struct audit_queued *q;
	int k;

	if (s->n_queued == s->queue_cap) {
		size_t cap = s->queue_cap ? 2 * s->queue_cap : 64;
		struct audit_queued *n = reallocarray(s->queue, cap, sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->queue = n;
		s->queue_cap = cap;
	}
	q = s->queue + s->n_queued;
	*q = (struct audit_queued){ .rec = { .time_us = rec->time_us } };
	for (size_t i = 0; i < ELEMENTSOF(in); i++)
		if ((k = utf8_valid_dup(in[i], &q->text[i])) < 0) {
			while (i-- > 0)
				free(q->text[i]);
			return k;
		}
	s->n_queued++;
	q->rec.peer = q->text[0];
	q->rec.ek_hash = q->text[1];
	q->rec.node_id = q->text[2];
	q->rec.action = q->text[3];
	q->rec.decision = q->text[4];
	q->rec.reasons = q->text[5];
	rec->seq = 0;
	if (s->deferred)
		return 0;
	if ((k = audit_chain(s, s->n_queued - 1)) < 0)
		return k;
	rec->seq = q->rec.seq;
	memcpy(rec->prev_hash, q->rec.prev_hash, sizeof(rec->prev_hash));
	memcpy(rec->hash, q->rec.hash, sizeof(rec->hash));
	return 0;
}

int store_audit_add(struct store *s, struct audit_rec *rec, size_t *ret_ticket)
{
	int k;

	if (!s->ops->in_transaction(s))
		return -EBUSY;
	if ((k = audit_append(s, rec)) < 0)
		return k;
	*ret_ticket = s->n_queued - 1;
	return 0;
}

int store_audit_sequenced(struct store *s, size_t ticket, const struct audit_rec **ret)
{
	if (ticket >= s->n_queued)
		return -ENOENT;
	if (!s->queue[ticket].appended)
		return -EAGAIN;
	*ret = &s->queue[ticket].rec;
	return 0;
}

int store_audit_last_seq(struct store *s, int64_t *ret)
{
	uint8_t h[32];
	int64_t seq = 0;
	int k = s->ops->audit_head(s, &seq, h);

	if (k < 0 && k != -ENOENT)
		return k;
	*ret = seq;
	return 0;
}

int store_audit_append(struct store *s, struct audit_rec *rec)
{
	return store_transaction_do(s, audit_append, rec);
}

int store_audit_foreach(struct store *s, int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	return s->ops->audit_foreach(s, cb, userdata);
}

int store_audit_foreach_ek(struct store *s, const char *ek_hash, int64_t limit,
			   int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	return s->ops->audit_foreach_ek(s, ek_hash, limit, cb, userdata);
}

int store_audit_shares_ek(struct store *s, const char *ek_hash, int64_t limit,
			  int (*cb)(const struct audit_rec *r, void *userdata), void *userdata)
{
	return s->ops->audit_shares_ek(s, ek_hash, limit, cb, userdata);
}

int store_audit_page(struct store *s, int64_t before, int64_t limit, int (*cb)(const struct audit_rec *r, void *userdata),
		     void *userdata)
{
	return s->ops->audit_page(s, before, limit, cb, userdata);
}

int store_node_page(struct store *s, int64_t offset, int64_t limit, int (*cb)(const struct node_rec *n, void *userdata),
		    void *userdata)
{
	return s->ops->node_page(s, offset, limit, cb, userdata);
}

int store_policy_get(struct store *s, int64_t version, char **ret_text, size_t *ret_size, char **ret_signatures)
{
	return s->ops->policy_get(s, version, ret_text, ret_size, ret_signatures);
}
