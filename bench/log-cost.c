/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * build/bench/log-cost DIR KEK LOG_KEY [--records N] [--batch B]: what the transparency log and
 * envelope encryption cost, each step on its own, on fresh SQLite stores in DIR (on disk, as the
 * server's), through the server's own store code. make bench-server runs it beside the server's
 * throughput runs, which cannot separate them: every record is a leaf, signed log key or not.
 *
 *   record     store_audit_append of an attest-finish-like record: the row, its chain hash and
 *              its leaf (what every audit record costs in a batch)
 *   leaf       audit_log_append alone on a second store: the leaf's encoding and hash, the
 *              tree's right edge and the subtree rows it completes (the log's part of a record)
 *   checkpoint store_checkpoint_sign: the root from the edge, the C2SP note signed with the log
 *              key, the row written (once a batch commit, whatever the batch holds)
 *   proofs     an inclusion proof of one of the last 16 leaves (a batch's fresh records; their
 *              lengths averaged) and a consistency proof from size 1
 *              (a witness holding the first checkpoint: the longest) at size N: hashes read
 *              from the stored tree, what a witnessing reply carries
 *   secret     store_secret_get of a 32-byte secret: its data key unwrapped by the KEK and the
 *              value decrypted (AES-256-GCM), as a release to a node does
 *
 * Times are per operation inside the transaction (CLOCK_MONOTONIC); a commit's fsync is the
 * batch's and is left out, as the server shares it among every request of the batch. Output:
 * "NAME VALUE" lines for bench/server.sh.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log-key.h"
#include "macro.h"
#include "note.h"
#include "secbuf.h"
#include "store-backend.h"
#include "store.h"

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A record of the size an attestation's allow writes: a serial, a node id, the policy named. */
static struct audit_rec record_like(int64_t seq, char reasons[256])
{
	snprintf(reasons, 256,
		 "certificate %040" PRIx64 " issued until 2026-12-05T00:00:00Z; policy version 2 (sha256 "
		 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08)",
		 (uint64_t)seq);
	return (struct audit_rec){ .seq = seq, .time_us = 1764806400000000 + seq, .peer = "127.0.0.1",
				   .ek_hash = "4f3a7c0e9b2d18a6c5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2",
				   .node_id = "node-0042.bench", .action = "attest-finish", .decision = "allow",
				   .reasons = reasons };
}

static int fail(const char *what, int r)
{
	fprintf(stderr, "log-cost: %s: %s\n", what, strerror(-r));
	return 1;
}

static int open_fresh(const char *dir, const char *name, const char *kek, struct store **ret)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	(void)unlink(path);
	return store_open(path, kek, ret);
}

/* n records (leaf_only: their leaves alone, audit_log_append) in transactions of batch; the
 * appends' time, without the commits, on ret_s. */
static int appends(struct store *s, long n, long batch, bool leaf_only, double *ret_s)
{
	char reasons[256];
	double t, sum = 0;
	int r;

	for (long i = 0; i < n; i += batch) {
		if ((r = store_begin(s)) < 0)
			return r;
		for (long j = i; j < n && j < i + batch; j++) {
			/* store_audit_append numbers its record; a leaf alone is given the tree's next. */
			struct audit_rec rec = record_like(leaf_only ? j + 1 : 0, reasons);

			t = now_s();
			r = leaf_only ? audit_log_append(s, &rec) : store_audit_append(s, &rec);
			sum += now_s() - t;
			if (r < 0) {
				store_rollback(s);
				return r;
			}
		}
		if ((r = store_commit(s)) < 0)
			return r;
	}
	*ret_s = sum;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "records", required_argument, NULL, 'n' },
					      { "batch", required_argument, NULL, 'b' },
					      {} };
	_cleanup_(store_closep) struct store *a = NULL, *b = NULL;
	struct note_signer *signer = NULL;
	_cleanup_secbuf_ struct secbuf *value = NULL;
	merkle_hash proof[MERKLE_PROOF_MAX];
	char why[PATH_MAX + 256];
	long n = 20000, batch = 16;
	size_t k = 0, sum_incl = 0, n_cons = 0;
	double t, t_rec = 0, t_leaf = 0, t_cp = 0, t_prove = 0, t_secret = 0;
	const int signs = 200, proofs = 200, reads = 1000;
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
		switch (c) {
		case 'n': n = strtol(optarg, NULL, 10); break;
		case 'b': batch = strtol(optarg, NULL, 10); break;
		default: return 2;
		}
	if (argc - optind != 3 || n < 2 || n > 10000000 || batch < 1) {
		fprintf(stderr, "usage: log-cost DIR KEK LOG_KEY [--records N (>= 2)] [--batch B]\n");
		return 2;
	}
	if ((r = open_fresh(argv[optind], "log-cost-records.db", argv[optind + 1], &a)) < 0 ||
	    (r = open_fresh(argv[optind], "log-cost-leaves.db", argv[optind + 1], &b)) < 0)
		return fail("cannot open a store", r);
	if (log_key_load(argv[optind + 2], NULL, &signer, why, sizeof(why)) < 0) {
		fprintf(stderr, "log-cost: %s\n", why);
		return 1;
	}
	/* Records with their leaves, then leaves alone, batch by batch as the server commits. */
	if ((r = appends(a, n, batch, false, &t_rec)) < 0 || (r = appends(b, n, batch, true, &t_leaf)) < 0)
		return fail("appending", r);
	/* A checkpoint a commit: the edge read once a transaction, as a batch's first leaf reads it. */
	store_set_log_signer(a, signer);
	for (int i = 0; i < signs; i++) {
		if ((r = store_begin(a)) < 0)
			return fail("begin", r);
		t = now_s();
		r = store_checkpoint_sign(a);
		t_cp += now_s() - t;
		if (r < 0 || (r = store_commit(a)) < 0)
			return fail("store_checkpoint_sign", r);
	}
	if ((r = store_begin(a)) < 0)
		return fail("begin", r);
	for (int i = 0; i < proofs; i++) {
		t = now_s();
		r = store_log_prove_inclusion(a, (uint64_t)(n - 1 - i % 16), (uint64_t)n, proof, &k);
		sum_incl += k;
		if (r >= 0)
			r = store_log_prove_consistency(a, 1, (uint64_t)n, proof, &n_cons);
		t_prove += now_s() - t;
		if (r < 0)
			return fail("proof", r);
	}
	store_rollback(a);
	if (!(value = secbuf_new(32)))
		return fail("secbuf_new", -ENOMEM);
	memset(value->data, 0x5a, value->size);
	if ((r = store_secret_put(a, "bench.secret", value, 1, NULL)) < 0)
		return fail("store_secret_put", r);
	for (int i = 0; i < reads; i++) {
		_cleanup_secbuf_ struct secbuf *got = NULL;

		t = now_s();
		r = store_secret_get(a, "bench.secret", &got, NULL);
		t_secret += now_s() - t;
		if (r < 0)
			return fail("store_secret_get", r);
	}
	printf("records %ld\nbatch %ld\n", n, batch);
	printf("record_us %.2f\nleaf_us %.2f\ncheckpoint_us %.2f\nprove_us %.2f\nsecret_us %.2f\n", 1e6 * t_rec / (double)n,
	       1e6 * t_leaf / (double)n, 1e6 * t_cp / signs, 1e6 * t_prove / proofs, 1e6 * t_secret / reads);
	printf("inclusion_hashes %.1f\nconsistency_hashes %zu\n", (double)sum_incl / proofs, n_cons);
	return 0;
}
