/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "audit-status.h"
#include "checkpoint.h"
#include "note.h"

struct walk {
	int64_t next;
	uint8_t prev[32];
	struct merkle_range tree; /* rebuilt from the records: no stored hash trusted */
	char *why;
	size_t why_size;
};

/* Each record numbered in turn, linked to the one before and matching its own hash. */
static int check_one(const struct audit_rec *r, void *userdata)
{
	struct walk *w = userdata;
	uint8_t h[32];

	merkle_hash leaf;

	if (r->seq == w->next && memcmp(r->prev_hash, w->prev, sizeof(w->prev)) == 0 && audit_rec_hash(r, h) >= 0 &&
	    memcmp(h, r->hash, sizeof(h)) == 0 && audit_leaf_hash_of(r, leaf) >= 0 &&
	    merkle_range_append(&w->tree, leaf, NULL, NULL, NULL) >= 0) {
		memcpy(w->prev, r->hash, sizeof(w->prev));
		w->next++;
		return 0;
	}
	snprintf(w->why, w->why_size, "audit record %" PRId64 " (after %" PRId64 " verified) breaks the chain", r->seq,
		 w->next - 1);
	return -EBADMSG;
}

int audit_verify_status(struct store *s, char *why, size_t why_size)
{
	static struct walk w;
	merkle_hash root, stored;
	uint64_t leaves;
	int r;

	w = (struct walk){ .next = 1, .why = why, .why_size = why_size };
	r = store_audit_foreach(s, check_one, &w);
	if (r == -EBADMSG)
		return 0;
	if (r < 0 || (r = store_log_size(s, &leaves)) < 0 || (r = store_log_root(s, leaves, stored)) < 0 ||
	    (r = merkle_range_root(&w.tree, root)) < 0) {
		snprintf(why, why_size, "cannot read the audit log: %s", strerror(-r));
		return r;
	}
	if (leaves != w.tree.size || memcmp(root, stored, sizeof(root)) != 0) {
		snprintf(why, why_size, "the stored Merkle tree (%" PRIu64 " leaves) is not the tree of the %" PRIu64
			 " records", leaves, w.tree.size);
		return 0;
	}
	/* The records' own tree against the signed checkpoint, when there is a log key. */
	if (store_log_signer(s) && (r = checkpoint_check(s, note_signer_verifier(store_log_signer(s)), why, why_size)) < 0)
		return r == -EBADMSG || r == -ENOENT ? 0 : r;
	return 1;
}
