/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * RFC 9162 (RFC 6962) Merkle trees over SHA-256: the audit log's records are the leaves.
 * Whoever keeps the tree answers for the hash of a complete subtree (2^level leaves from leaf
 * index << level) through merkle_node_fn; everything else here is computed from those, so a
 * tree of a million leaves never needs more than a few dozen of them for a proof.
 */
#define MERKLE_HASH_SIZE 32
/* A proof in a tree of up to 2^63 leaves: 63 hashes, and one more for consistency. */
#define MERKLE_PROOF_MAX 64

typedef uint8_t merkle_hash[MERKLE_HASH_SIZE];

/* 0, or a negative errno the caller's store gave. */
typedef int (*merkle_node_fn)(void *userdata, unsigned level, uint64_t index, merkle_hash ret);

/* SHA-256(0x00 || data): the hash of a leaf. */
int merkle_leaf_hash(const void *data, size_t size, merkle_hash ret);
/* SHA-256(0x01 || left || right). */
int merkle_node_hash(const merkle_hash left, const merkle_hash right, merkle_hash ret);

/* The root of the first size leaves (size 0: SHA-256 of nothing). */
int merkle_root(merkle_node_fn fn, void *userdata, uint64_t size, merkle_hash ret);
/* RFC 9162 2.1.3.1: the inclusion proof of leaf index in the tree of size leaves. */
int merkle_prove_inclusion(merkle_node_fn fn, void *userdata, uint64_t index, uint64_t size,
			   merkle_hash ret[MERKLE_PROOF_MAX], size_t *ret_n);
/* RFC 9162 2.1.4.1: the consistency proof from the tree of first leaves to that of second. */
int merkle_prove_consistency(merkle_node_fn fn, void *userdata, uint64_t first, uint64_t second,
			     merkle_hash ret[MERKLE_PROOF_MAX], size_t *ret_n);

/* RFC 9162 2.1.3.2. 0: leaf is at index of the tree with that root; -EBADMSG: it is not. */
int merkle_verify_inclusion(uint64_t index, uint64_t size, const merkle_hash leaf, const merkle_hash *proof,
			    size_t n, const merkle_hash root);
/* RFC 9162 2.1.4.2. 0: the second tree extends the first; -EBADMSG: it does not. */
int merkle_verify_consistency(uint64_t first, uint64_t second, const merkle_hash first_root,
			      const merkle_hash second_root, const merkle_hash *proof, size_t n);

/*
 * A tree's right edge: its complete subtrees, largest first, at most one per level. What audit
 * verify rebuilds from the records, trusting no stored hash, and what the store appends to.
 */
struct merkle_range {
	uint64_t size;
	size_t n;
	unsigned level[MERKLE_PROOF_MAX];
	merkle_hash hash[MERKLE_PROOF_MAX];
};

/* A stored subtree: 2^level leaves from leaf index << level. */
struct merkle_ref {
	unsigned level;
	uint64_t index;
};

/* The subtrees the right edge of a tree of size leaves is made of, largest first. */
size_t merkle_range_refs(uint64_t size, struct merkle_ref ret[MERKLE_PROOF_MAX]);
/* The range of a tree of size leaves from the hashes of merkle_range_refs' subtrees, in order. */
int merkle_range_load(struct merkle_range *r, uint64_t size, const merkle_hash *hashes);
/*
 * Appends a leaf. Each subtree it completes (the leaf, then every parent it finishes) is
 * reported in completed (may be NULL), lowest first, for the keeper to store: how many
 * through ret_n.
 */
int merkle_range_append(struct merkle_range *r, const merkle_hash leaf, struct merkle_ref completed[MERKLE_PROOF_MAX],
			merkle_hash completed_hash[MERKLE_PROOF_MAX], size_t *ret_n);
int merkle_range_root(const struct merkle_range *r, merkle_hash ret);
