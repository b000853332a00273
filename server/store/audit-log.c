/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The audit log as a transparency log: every record is a leaf of an RFC 9162 Merkle tree
 * (common/audit-leaf.c's encoding), appended with the record in its transaction, and each
 * transaction that appended records signs a checkpoint of the whole tree before it commits,
 * with the log key (a C2SP signed note) that is never in the database. The stored subtree
 * hashes only make proofs cheap; audit verify recomputes the tree from the records.
 *
 * One log for every instance sharing a database: the writer lock that orders the records
 * (BEGIN IMMEDIATE, the PostgreSQL advisory lock) orders the leaves and checkpoints too. A
 * batch of requests takes it only to append its records and sign (store_sequence): the
 * leaves, the checkpoint and the commit are all the lock covers on the request path.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit-leaf.h"
#include "encode.h"
#include "log.h"
#include "note.h"
#include "store-backend.h"

static int tree_get(void *ud, unsigned level, uint64_t index, merkle_hash ret)
{
	return ((struct store *)ud)->ops->tree_get(ud, level, index, ret);
}

/* The right edge of the tree as stored: what the next leaf and the checkpoint's root need. */
static int edge_load(struct store *s)
{
	struct merkle_ref refs[MERKLE_PROOF_MAX];
	merkle_hash hashes[MERKLE_PROOF_MAX];
	int64_t leaves;
	size_t n;
	int k;

	if (s->edge_valid)
		return 0;
	if ((k = s->ops->tree_leaves(s, &leaves)) < 0)
		return k;
	n = merkle_range_refs((uint64_t)leaves, refs);
	if (n && (k = s->ops->tree_get_many(s, refs, n, hashes)) < 0)
		return k == -ENOENT ? -EBADMSG : k;
	merkle_range_load(&s->edge, (uint64_t)leaves, (const merkle_hash *)hashes);
	s->edge_valid = true;
	return 0;
}

static int leaf_append(struct store *s, uint64_t index, const merkle_hash leaf)
{
	struct merkle_ref done[MERKLE_PROOF_MAX];
	merkle_hash done_hash[MERKLE_PROOF_MAX];
	size_t n;
	int k;

	if ((k = edge_load(s)) < 0)
		return k;
	/* A record whose seq is not the tree's next leaf: the two are out of step. */
	if (s->edge.size != index)
		return -EBADMSG;
	if ((k = merkle_range_append(&s->edge, leaf, done, done_hash, &n)) < 0 ||
	    (k = s->ops->tree_put_many(s, done, (const merkle_hash *)done_hash, n)) < 0) {
		s->edge_valid = false;
		return k;
	}
	s->log_grew = true;
	return 0;
}

int audit_leaf_of(const struct audit_rec *r, uint8_t *ret, size_t *ret_size)
{
	return audit_leaf_encode(r->seq, r->time_us, r->peer, r->ek_hash, r->node_id, r->action, r->decision,
				 r->reasons, ret, ret_size);
}

int audit_leaf_hash_of(const struct audit_rec *r, merkle_hash ret)
{
	uint8_t leaf[AUDIT_LEAF_MAX];
	size_t n;
	int k;

	if ((k = audit_leaf_of(r, leaf, &n)) < 0)
		return k;
	return merkle_leaf_hash(leaf, n, ret);
}

int audit_log_append(struct store *s, const struct audit_rec *r)
{
	merkle_hash leaf;
	int k;

	if ((k = audit_leaf_hash_of(r, leaf)) < 0)
		return k;
	return leaf_append(s, (uint64_t)r->seq - 1, leaf);
}

int audit_log_append_many(struct store *s, const struct audit_rec *const *recs, size_t n)
{
	_cleanup_free_ struct merkle_ref *refs = NULL;
	_cleanup_free_ merkle_hash *hashes = NULL;
	size_t total = 0, k;
	int r;

	if (n == 0)
		return 0;
	if ((r = edge_load(s)) < 0)
		return r;
	refs = calloc(n, sizeof(*refs) * MERKLE_PROOF_MAX);
	hashes = calloc(n, sizeof(*hashes) * MERKLE_PROOF_MAX);
	if (!refs || !hashes)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		merkle_hash leaf;

		/* A record whose seq is not the tree's next leaf: the two are out of step. */
		if (s->edge.size != (uint64_t)recs[i]->seq - 1)
			r = -EBADMSG;
		else if ((r = audit_leaf_hash_of(recs[i], leaf)) >= 0)
			r = merkle_range_append(&s->edge, leaf, refs + total, hashes + total, &k);
		if (r < 0) {
			s->edge_valid = false;
			return r;
		}
		total += k;
	}
	if ((r = s->ops->tree_put_many(s, refs, (const merkle_hash *)hashes, total)) < 0) {
		s->edge_valid = false;
		return r;
	}
	s->log_grew = true;
	return 0;
}

struct rebuild {
	int64_t from; /* the first seq without a leaf */
	int64_t done;
	merkle_hash *leaves; /* read first, appended after: PostgreSQL streams the records on the one connection */
	size_t n, cap;
};

static int rebuild_one(const struct audit_rec *r, void *userdata)
{
	struct rebuild *b = userdata;

	if (r->seq < b->from)
		return 0;
	if (r->seq != b->from + (int64_t)b->n)
		return -EBADMSG;
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 1024;
		merkle_hash *l = reallocarray(b->leaves, cap, sizeof(*l));

		if (!l)
			return -ENOMEM;
		b->leaves = l;
		b->cap = cap;
	}
	return audit_leaf_hash_of(r, b->leaves[b->n++]);
}

/* Whether every record is a leaf already: 1, 0 (ret_leaves: how many are), or < 0. */
static int tree_complete(struct store *s, int64_t *ret_leaves)
{
	int64_t leaves, seq;
	int k;

	if ((k = s->ops->tree_leaves(s, &leaves)) < 0 || (k = store_audit_last_seq(s, &seq)) < 0)
		return k;
	*ret_leaves = leaves;
	return leaves >= seq;
}

static int bind_tree(struct store *s, void *userdata)
{
	struct rebuild *b = userdata;
	int64_t leaves;
	int k;

	/* Again under the writer lock: another process may have done it meanwhile. */
	if ((k = tree_complete(s, &leaves)) != 0)
		return k < 0 ? k : 0;
	b->from = leaves + 1;
	if ((k = store_audit_foreach(s, rebuild_one, b)) < 0)
		return k;
	for (size_t i = 0; i < b->n; i++, b->done++)
		if ((k = leaf_append(s, (uint64_t)(b->from - 1) + i, b->leaves[i])) < 0)
			return k;
	return 0;
}

int store_log_bind(struct store *s, char *why, size_t why_size)
{
	struct rebuild b = { 0 };
	int64_t leaves;
	int k;

	/* Opening a store takes no writer lock unless there is something to write (node list
	 * answers while a server holds a batch open). */
	k = tree_complete(s, &leaves);
	if (k > 0)
		return 0;
	/* A store older than the tree: its records become leaves, once, in one transaction. */
	if (k == 0)
		k = store_transaction_do(s, bind_tree, &b);
	free(b.leaves);
	if (k == -EBADMSG)
		snprintf(why, why_size, "the audit records from seq %" PRId64 " on are not contiguous: cannot make "
			 "them leaves of the log (run keystrap-server audit verify)", b.from + (int64_t)b.n);
	else if (k < 0)
		snprintf(why, why_size, "cannot build the audit log's tree: %s", strerror(-k));
	else if (b.done)
		log_info("the audit log's %" PRId64 " records from seq %" PRId64 " became leaves of its Merkle tree",
			 b.done, b.from);
	return k;
}

void store_set_log_signer(struct store *s, struct note_signer *signer)
{
	note_signer_free(s->log_signer);
	s->log_signer = signer;
}

int store_set_log_cosigner(struct store *s, struct note_signer *signer)
{
	if (signer && (!s->log_signer || !streq(note_signer_verifier(signer)->name,
						 note_signer_verifier(s->log_signer)->name))) {
		note_signer_free(signer);
		return -EINVAL;
	}
	note_signer_free(s->log_cosigner);
	s->log_cosigner = signer;
	return 0;
}

const struct note_signer *store_log_cosigner(struct store *s)
{
	return s->log_cosigner;
}

const struct note_signer *store_log_signer(struct store *s)
{
	return s->log_signer;
}

int store_log_size(struct store *s, uint64_t *ret)
{
	int64_t n;
	int k;

	if ((k = s->ops->tree_leaves(s, &n)) < 0)
		return k;
	*ret = (uint64_t)n;
	return 0;
}

int store_log_root(struct store *s, uint64_t size, merkle_hash ret)
{
	return merkle_root(tree_get, s, size, ret);
}

int store_log_prove_inclusion(struct store *s, uint64_t index, uint64_t size, merkle_hash ret[MERKLE_PROOF_MAX],
			      size_t *ret_n)
{
	return merkle_prove_inclusion(tree_get, s, index, size, ret, ret_n);
}

int store_log_prove_consistency(struct store *s, uint64_t first, uint64_t second, merkle_hash ret[MERKLE_PROOF_MAX],
				size_t *ret_n)
{
	return merkle_prove_consistency(tree_get, s, first, second, ret, ret_n);
}

int store_checkpoint_get(struct store *s, uint64_t *ret_size, char **ret_note)
{
	int64_t size;
	int k;

	if ((k = s->ops->checkpoint_get(s, &size, ret_note)) < 0)
		return k;
	*ret_size = (uint64_t)size;
	return 0;
}

int store_checkpoint_sign(struct store *s)
{
	const struct note_signer *signers[2];
	_cleanup_free_ char *text = NULL, *note = NULL;
	struct checkpoint c = { .time = (int64_t)time(NULL) };
	int k;

	if (!s->log_signer)
		return -ENOKEY;
	/* A batch's checkpoint covers its records: they are appended first, under the lock. */
	if ((k = store_sequence(s)) < 0)
		return k;
	signers[0] = s->log_signer;
	signers[1] = s->log_cosigner;
	snprintf(c.origin, sizeof(c.origin), "%s", note_signer_verifier(s->log_signer)->name);
	if ((k = edge_load(s)) < 0 || (k = merkle_range_root(&s->edge, c.root)) < 0)
		return k;
	c.size = s->edge.size;
	if ((k = checkpoint_format(&c, &text)) < 0 || (k = note_sign_all(signers, s->log_cosigner ? 2 : 1, text, &note)) < 0 ||
	    (k = s->ops->checkpoint_put(s, (int64_t)c.size, note)) < 0)
		return k;
	/* Signed: the commit need not sign the same tree again. */
	s->log_grew = false;
	return 0;
}

/* "policy version N (sha256 HEX), ..." as policy load writes it; older records have no digest. */
static int policy_logged_one(const struct audit_rec *r, void *userdata)
{
	struct policy_logged *l = userdata;
	const char *d;
	long long v;

	if (sscanf(r->reasons, "policy version %lld", &v) != 1)
		return -EBADMSG;
	l->version = v;
	l->seq = r->seq;
	d = strstr(r->reasons, "(sha256 ");
	l->has_digest = d && strlen(d) > 8 + 64 && hex_decode(d + 8, l->digest, 32) == 0;
	return 0;
}

int store_policy_logged(struct store *s, struct policy_logged *ret)
{
	struct policy_logged l = { 0 };
	int k = s->ops->audit_last(s, "policy-load", "allow", policy_logged_one, &l);

	if (k < 0)
		return k;
	*ret = l;
	return 0;
}
