/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* common/merkle.c: RFC 6962's test vectors (roots, inclusion and consistency proofs), every
 * proof of every tree up to 40 leaves verified, and each tampered proof refused. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "encode.h"
#include "macro.h"
#include "merkle.h"
#include "tap.h"

static const char *const leaves[] = { "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
				      "606162636465666768696a6b6c6d6e6f" };
static const char *const roots[] = {
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

/* The keeper: every complete subtree's hash by level and index, as the store keeps them. */
#define LEAVES_MAX 64
static merkle_hash tree[7][LEAVES_MAX];
static bool have[7][LEAVES_MAX];
static unsigned fetches;

static int get(void *ud, unsigned level, uint64_t index, merkle_hash ret)
{
	(void)ud;
	fetches++;
	if (level >= 7 || index >= LEAVES_MAX || !have[level][index])
		return -ENOENT;
	memcpy(ret, tree[level][index], MERKLE_HASH_SIZE);
	return 0;
}

static int put(void *ud, unsigned level, uint64_t index, const merkle_hash h)
{
	(void)ud;
	memcpy(tree[level][index], h, MERKLE_HASH_SIZE);
	have[level][index] = true;
	return 0;
}

static void hash_of(const char *hex, merkle_hash ret)
{
	if (hex_decode(hex, ret, MERKLE_HASH_SIZE) < 0)
		memset(ret, 0, MERKLE_HASH_SIZE);
}

/* The store's way: the right edge loaded from the stored subtrees, the leaf appended, the
 * subtrees it completes stored. */
static void append_leaf(uint64_t i, const void *data, size_t n)
{
	struct merkle_ref refs[MERKLE_PROOF_MAX], done[MERKLE_PROOF_MAX];
	merkle_hash edge[MERKLE_PROOF_MAX], done_hash[MERKLE_PROOF_MAX], leaf;
	struct merkle_range r;
	size_t n_refs = merkle_range_refs(i, refs), n_done;

	for (size_t k = 0; k < n_refs; k++)
		get(NULL, refs[k].level, refs[k].index, edge[k]);
	merkle_range_load(&r, i, (const merkle_hash *)edge);
	if (merkle_leaf_hash(data, n, leaf) == 0 && merkle_range_append(&r, leaf, done, done_hash, &n_done) == 0)
		for (size_t k = 0; k < n_done; k++)
			put(NULL, done[k].level, done[k].index, done_hash[k]);
}

static bool proof_is(const merkle_hash *p, size_t n, const char *const *want, size_t n_want)
{
	merkle_hash w;

	if (n != n_want)
		return false;
	for (size_t i = 0; i < n; i++) {
		hash_of(want[i], w);
		if (memcmp(p[i], w, MERKLE_HASH_SIZE) != 0)
			return false;
	}
	return true;
}

static void test_vectors(void)
{
	static const char *const incl58[] = { "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
					      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
					      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" };
	static const char *const cons68[] = { "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
					      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
					      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" };
	static const char *const cons25[] = { "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
					      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b" };
	merkle_hash p[MERKLE_PROOF_MAX], r, want, leaf;
	bool all = true;
	size_t n;

	memset(have, 0, sizeof(have));
	for (size_t i = 0; i < ELEMENTSOF(leaves); i++) {
		uint8_t d[16];

		hex_decode(leaves[i], d, strlen(leaves[i]) / 2);
		append_leaf(i, d, strlen(leaves[i]) / 2);
		hash_of(roots[i], want);
		all &= merkle_root(get, NULL, i + 1, r) == 0 && memcmp(r, want, MERKLE_HASH_SIZE) == 0;
	}
	CHECK(all, "the roots of RFC 6962's trees of 1 to 8 leaves");
	merkle_root(get, NULL, 0, r);
	hex_decode("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want, MERKLE_HASH_SIZE);
	CHECK(memcmp(r, want, MERKLE_HASH_SIZE) == 0, "the empty tree's root is SHA-256 of nothing");

	CHECK(merkle_prove_inclusion(get, NULL, 5, 8, p, &n) == 0 && proof_is(p, n, incl58, 3),
	      "the inclusion proof of leaf 5 in 8 is RFC 6962's");
	CHECK(merkle_prove_consistency(get, NULL, 6, 8, p, &n) == 0 && proof_is(p, n, cons68, 3),
	      "the consistency proof from 6 to 8 is RFC 6962's");
	CHECK(merkle_prove_consistency(get, NULL, 2, 5, p, &n) == 0 && proof_is(p, n, cons25, 2),
	      "the consistency proof from 2 to 5 is RFC 6962's");

	hex_decode(leaves[5], (uint8_t *)p, 4);
	merkle_leaf_hash(p, 4, leaf);
	merkle_prove_inclusion(get, NULL, 5, 8, p, &n);
	hash_of(roots[7], r);
	CHECK(merkle_verify_inclusion(5, 8, leaf, (const merkle_hash *)p, n, r) == 0, "leaf 5's proof verifies");
	CHECK(merkle_verify_inclusion(4, 8, leaf, (const merkle_hash *)p, n, r) == -EBADMSG,
	      "the same proof for leaf 4 is refused");
	CHECK(merkle_verify_inclusion(5, 9, leaf, (const merkle_hash *)p, n, r) == -EBADMSG,
	      "the same proof for a tree of 9 is refused");
	CHECK(merkle_verify_inclusion(8, 8, leaf, (const merkle_hash *)p, n, r) == -EBADMSG,
	      "an index past the tree is refused");
	hash_of(roots[5], want);
	merkle_prove_consistency(get, NULL, 6, 8, p, &n);
	CHECK(merkle_verify_consistency(6, 8, want, r, (const merkle_hash *)p, n) == 0, "6 to 8 verifies");
	hash_of(roots[4], want);
	CHECK(merkle_verify_consistency(6, 8, want, r, (const merkle_hash *)p, n) == -EBADMSG,
	      "6 to 8 with the root of 5 as the first is refused (a rewritten log)");
	CHECK(merkle_verify_consistency(6, 8, r, r, (const merkle_hash *)p, 0) == -EBADMSG,
	      "6 to 8 with an empty proof is refused");
	CHECK(merkle_verify_consistency(8, 8, r, r, NULL, 0) == 0, "a tree is consistent with itself");
	CHECK(merkle_verify_consistency(8, 6, r, r, NULL, 0) == -EBADMSG, "a smaller second tree is refused");
	CHECK(merkle_prove_inclusion(get, NULL, 8, 8, p, &n) == -ERANGE, "no inclusion proof past the tree");
}

/* Every proof of every tree up to LEAVES_MAX - 24 leaves, and the same proof with one bit flipped. */
static void test_all_sizes(void)
{
	merkle_hash p[MERKLE_PROOF_MAX], rs[41], leaf[41];
	bool incl = true, cons = true, flip_incl = true, flip_cons = true;
	size_t n;

	memset(have, 0, sizeof(have));
	for (uint64_t i = 0; i < 40; i++) {
		uint8_t d[8] = { (uint8_t)i, 0xa5 };

		append_leaf(i, d, sizeof(d));
		merkle_leaf_hash(d, sizeof(d), leaf[i]);
		merkle_root(get, NULL, i + 1, rs[i + 1]);
	}
	for (uint64_t size = 1; size <= 40; size++)
		for (uint64_t i = 0; i < size; i++) {
			incl &= merkle_prove_inclusion(get, NULL, i, size, p, &n) == 0 &&
				merkle_verify_inclusion(i, size, leaf[i], (const merkle_hash *)p, n, rs[size]) == 0;
			if (n) {
				p[n / 2][3] ^= 0x10;
				flip_incl &= merkle_verify_inclusion(i, size, leaf[i], (const merkle_hash *)p, n,
								     rs[size]) == -EBADMSG;
			}
		}
	for (uint64_t second = 1; second <= 40; second++)
		for (uint64_t first = 1; first < second; first++) {
			cons &= merkle_prove_consistency(get, NULL, first, second, p, &n) == 0 &&
				merkle_verify_consistency(first, second, rs[first], rs[second], (const merkle_hash *)p,
							  n) == 0;
			p[n - 1][0] ^= 1;
			flip_cons &= merkle_verify_consistency(first, second, rs[first], rs[second],
							       (const merkle_hash *)p, n) == -EBADMSG;
		}
	CHECK(incl, "every inclusion proof in trees of 1 to 40 leaves verifies");
	CHECK(flip_incl, "each with one bit flipped is refused");
	CHECK(cons, "every consistency proof between trees of 1 to 40 leaves verifies");
	CHECK(flip_cons, "each with one bit flipped is refused");
	fetches = 0;
	merkle_prove_inclusion(get, NULL, 17, 40, p, &n);
	CHECK(fetches <= 2 * 6, "a proof in 40 leaves reads a dozen stored subtrees at most");

	struct merkle_range range = { 0 };
	bool same = true;
	merkle_hash r;

	for (uint64_t i = 0; i < 40; i++) {
		merkle_range_append(&range, leaf[i], NULL, NULL, NULL);
		same &= merkle_range_root(&range, r) == 0 && memcmp(r, rs[i + 1], MERKLE_HASH_SIZE) == 0;
	}
	CHECK(same, "a tree built leaf by leaf in memory has the stored tree's root at every size");
}

int main(void)
{
	test_vectors();
	test_all_sizes();
	return TAP_DONE();
}
