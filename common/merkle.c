/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * RFC 9162 section 2.1. Every range the proofs and roots split a tree into is a run of
 * complete, aligned subtrees (the left half of a split is a power of two; the right half
 * starts on that boundary), so range_hash asks the keeper only for those.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "merkle.h"
#include "ossl.h"

static int sha256_parts(const void *a, size_t na, const void *b, size_t nb, const void *c, size_t nc,
			merkle_hash ret)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) || !EVP_DigestUpdate(ctx, a, na) ||
	    !EVP_DigestUpdate(ctx, b, nb) || !EVP_DigestUpdate(ctx, c, nc) || !EVP_DigestFinal_ex(ctx, ret, NULL))
		return -EIO;
	return 0;
}

int merkle_leaf_hash(const void *data, size_t size, merkle_hash ret)
{
	static const uint8_t zero = 0x00;

	return sha256_parts(&zero, 1, data, size, NULL, 0, ret);
}

int merkle_node_hash(const merkle_hash left, const merkle_hash right, merkle_hash ret)
{
	static const uint8_t one = 0x01;

	return sha256_parts(&one, 1, left, MERKLE_HASH_SIZE, right, MERKLE_HASH_SIZE, ret);
}

/* The largest power of two below n (n > 1). */
static uint64_t split_point(uint64_t n)
{
	uint64_t k = 1;

	assert(n > 1);
	while (k << 1 < n)
		k <<= 1;
	return k;
}

static bool is_pow2(uint64_t n)
{
	return n && !(n & (n - 1));
}

static unsigned log2_exact(uint64_t n)
{
	unsigned l = 0;

	while (n >>= 1)
		l++;
	return l;
}

/* MTH(D[lo:hi]), lo aligned to the largest power of two not above hi - lo. */
static int range_hash(merkle_node_fn fn, void *ud, uint64_t lo, uint64_t hi, merkle_hash ret)
{
	merkle_hash l, r;
	uint64_t k;
	int e;

	assert(hi > lo);
	if (is_pow2(hi - lo) && lo % (hi - lo) == 0)
		return fn(ud, log2_exact(hi - lo), lo / (hi - lo), ret);
	k = split_point(hi - lo);
	if ((e = range_hash(fn, ud, lo, lo + k, l)) < 0 || (e = range_hash(fn, ud, lo + k, hi, r)) < 0)
		return e;
	return merkle_node_hash(l, r, ret);
}

int merkle_root(merkle_node_fn fn, void *userdata, uint64_t size, merkle_hash ret)
{
	if (size == 0)
		return sha256_parts(NULL, 0, NULL, 0, NULL, 0, ret);
	return range_hash(fn, userdata, 0, size, ret);
}

struct proof {
	merkle_hash *out;
	size_t n;
};

static int proof_add(merkle_node_fn fn, void *ud, struct proof *p, uint64_t lo, uint64_t hi)
{
	if (p->n >= MERKLE_PROOF_MAX)
		return -E2BIG;
	return range_hash(fn, ud, lo, hi, p->out[p->n++]);
}

/* PATH(m, D[lo:hi]), m absolute. */
static int path(merkle_node_fn fn, void *ud, uint64_t m, uint64_t lo, uint64_t hi, struct proof *p)
{
	uint64_t k;
	int e;

	if (hi - lo <= 1)
		return 0;
	k = split_point(hi - lo);
	if (m < lo + k) {
		if ((e = path(fn, ud, m, lo, lo + k, p)) < 0)
			return e;
		return proof_add(fn, ud, p, lo + k, hi);
	}
	if ((e = path(fn, ud, m, lo + k, hi, p)) < 0)
		return e;
	return proof_add(fn, ud, p, lo, lo + k);
}

int merkle_prove_inclusion(merkle_node_fn fn, void *userdata, uint64_t index, uint64_t size,
			   merkle_hash ret[MERKLE_PROOF_MAX], size_t *ret_n)
{
	struct proof p = { .out = ret };
	int e;

	if (index >= size)
		return -ERANGE;
	if ((e = path(fn, userdata, index, 0, size, &p)) < 0)
		return e;
	*ret_n = p.n;
	return 0;
}

/* SUBPROOF(m, D[lo:hi], b), m counted from lo. */
static int subproof(merkle_node_fn fn, void *ud, uint64_t m, uint64_t lo, uint64_t hi, bool whole, struct proof *p)
{
	uint64_t k;
	int e;

	if (m == hi - lo)
		return whole ? 0 : proof_add(fn, ud, p, lo, hi);
	k = split_point(hi - lo);
	if (m <= k) {
		if ((e = subproof(fn, ud, m, lo, lo + k, whole, p)) < 0)
			return e;
		return proof_add(fn, ud, p, lo + k, hi);
	}
	if ((e = subproof(fn, ud, m - k, lo + k, hi, false, p)) < 0)
		return e;
	return proof_add(fn, ud, p, lo, lo + k);
}

int merkle_prove_consistency(merkle_node_fn fn, void *userdata, uint64_t first, uint64_t second,
			     merkle_hash ret[MERKLE_PROOF_MAX], size_t *ret_n)
{
	struct proof p = { .out = ret };
	int e;

	if (first > second)
		return -ERANGE;
	if (first > 0 && first < second && (e = subproof(fn, userdata, first, 0, second, true, &p)) < 0)
		return e;
	*ret_n = p.n;
	return 0;
}

int merkle_verify_inclusion(uint64_t index, uint64_t size, const merkle_hash leaf, const merkle_hash *proof,
			    size_t n, const merkle_hash root)
{
	uint64_t fn = index, sn = size - 1;
	merkle_hash r;
	int e;

	if (index >= size)
		return -EBADMSG;
	memcpy(r, leaf, MERKLE_HASH_SIZE);
	for (size_t i = 0; i < n; i++) {
		if (sn == 0)
			return -EBADMSG;
		if ((fn & 1) || fn == sn) {
			if ((e = merkle_node_hash(proof[i], r, r)) < 0)
				return e;
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else if ((e = merkle_node_hash(r, proof[i], r)) < 0)
			return e;
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && CRYPTO_memcmp(r, root, MERKLE_HASH_SIZE) == 0 ? 0 : -EBADMSG;
}

int merkle_verify_consistency(uint64_t first, uint64_t second, const merkle_hash first_root,
			      const merkle_hash second_root, const merkle_hash *proof, size_t n)
{
	merkle_hash fr, sr;
	uint64_t fn, sn;
	size_t i = 0;
	int e;

	if (first > second)
		return -EBADMSG;
	if (first == second)
		return n == 0 && CRYPTO_memcmp(first_root, second_root, MERKLE_HASH_SIZE) == 0 ? 0 : -EBADMSG;
	/* Every tree extends the empty one. */
	if (first == 0)
		return n == 0 ? 0 : -EBADMSG;
	/* A first tree that is one complete subtree is the proof's implicit first element. */
	if (is_pow2(first)) {
		memcpy(fr, first_root, MERKLE_HASH_SIZE);
	} else {
		if (n == 0)
			return -EBADMSG;
		memcpy(fr, proof[i++], MERKLE_HASH_SIZE);
	}
	memcpy(sr, fr, MERKLE_HASH_SIZE);
	fn = first - 1;
	sn = second - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	for (; i < n; i++) {
		if (sn == 0)
			return -EBADMSG;
		if ((fn & 1) || fn == sn) {
			if ((e = merkle_node_hash(proof[i], fr, fr)) < 0 || (e = merkle_node_hash(proof[i], sr, sr)) < 0)
				return e;
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else if ((e = merkle_node_hash(sr, proof[i], sr)) < 0)
			return e;
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && CRYPTO_memcmp(fr, first_root, MERKLE_HASH_SIZE) == 0 &&
			       CRYPTO_memcmp(sr, second_root, MERKLE_HASH_SIZE) == 0
		       ? 0
		       : -EBADMSG;
}

size_t merkle_range_refs(uint64_t size, struct merkle_ref ret[MERKLE_PROOF_MAX])
{
	uint64_t start = 0;
	size_t n = 0;

	for (unsigned b = 64; b-- > 0;)
		if (size & ((uint64_t)1 << b)) {
			ret[n++] = (struct merkle_ref){ .level = b, .index = start >> b };
			start += (uint64_t)1 << b;
		}
	return n;
}

int merkle_range_load(struct merkle_range *r, uint64_t size, const merkle_hash *hashes)
{
	struct merkle_ref refs[MERKLE_PROOF_MAX];
	size_t n = merkle_range_refs(size, refs);

	*r = (struct merkle_range){ .size = size, .n = n };
	for (size_t i = 0; i < n; i++) {
		r->level[i] = refs[i].level;
		memcpy(r->hash[i], hashes[i], MERKLE_HASH_SIZE);
	}
	return 0;
}

int merkle_range_append(struct merkle_range *r, const merkle_hash leaf, struct merkle_ref completed[MERKLE_PROOF_MAX],
			merkle_hash completed_hash[MERKLE_PROOF_MAX], size_t *ret_n)
{
	uint64_t index = r->size;
	merkle_hash h;
	unsigned level = 0;
	size_t n = 0;
	int e;

	memcpy(h, leaf, MERKLE_HASH_SIZE);
	for (;;) {
		if (completed) {
			completed[n] = (struct merkle_ref){ .level = level, .index = index >> level };
			memcpy(completed_hash[n], h, MERKLE_HASH_SIZE);
		}
		n++;
		if (r->n == 0 || r->level[r->n - 1] != level)
			break;
		if ((e = merkle_node_hash(r->hash[r->n - 1], h, h)) < 0)
			return e;
		r->n--;
		level++;
	}
	if (r->n >= MERKLE_PROOF_MAX)
		return -E2BIG;
	r->level[r->n] = level;
	memcpy(r->hash[r->n++], h, MERKLE_HASH_SIZE);
	r->size++;
	if (ret_n)
		*ret_n = n;
	return 0;
}

int merkle_range_root(const struct merkle_range *r, merkle_hash ret)
{
	merkle_hash h;
	int e;

	if (r->n == 0)
		return merkle_root(NULL, NULL, 0, ret);
	memcpy(h, r->hash[r->n - 1], MERKLE_HASH_SIZE);
	for (size_t i = r->n - 1; i-- > 0;)
		if ((e = merkle_node_hash(r->hash[i], h, h)) < 0)
			return e;
	memcpy(ret, h, MERKLE_HASH_SIZE);
	return 0;
}
