/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server audit verify|prove|checkpoint|export. The audit log is a transparency log
 * (server/store/audit-log.c): verify recomputes the Merkle tree from the records themselves
 * and holds it against the newest checkpoint the log key signed, so an edited record, even
 * with every hash after it recomputed, and records removed from the end are both caught; with
 * --since, against an older checkpoint kept elsewhere, which the log must extend (a log
 * rewritten from the start, checkpoint and all, is caught there). The hash chain each record
 * still carries points at the first bad record.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>

#include "admin.h"
#include "audit-leaf.h"
#include "encode.h"
#include "fileio.h"
#include "json-cleanup.h"
#include "log-key.h"
#include "note.h"
#include "ossl.h"
#include "policy.h"
#include "server-config.h"
#include "store.h"

static const char usage[] = "keystrap-server audit verify [--since CHECKPOINT] [--log-key VKEY] [--json] --config FILE\n"
			    "       keystrap-server audit prove SEQ [--size N] --config FILE\n"
			    "       keystrap-server audit checkpoint --config FILE\n"
			    "       keystrap-server audit export --config FILE";

struct verify {
	int64_t expect_seq;
	uint8_t prev[32];
	int64_t bad_seq;
	char why[512];
	struct merkle_range range;
	uint64_t at[2];         /* the checkpoint's size and --since's */
	merkle_hash root_at[2]; /* the records' root at those sizes */
	bool seen[2];
};

static int verify_one(const struct audit_rec *r, void *userdata)
{
	struct verify *v = userdata;
	merkle_hash leaf;
	uint8_t h[32];

	if (r->seq != v->expect_seq) {
		snprintf(v->why, sizeof(v->why), "record %" PRId64 " follows %" PRId64 " (removed or reordered records)",
			 r->seq, v->expect_seq - 1);
		v->bad_seq = r->seq;
		return -EBADMSG;
	}
	if (memcmp(r->prev_hash, v->prev, 32) != 0) {
		snprintf(v->why, sizeof(v->why), "record %" PRId64 " does not link to the record before it", r->seq);
		v->bad_seq = r->seq;
		return -EBADMSG;
	}
	if (audit_rec_hash(r, h) < 0 || memcmp(h, r->hash, 32) != 0) {
		snprintf(v->why, sizeof(v->why), "record %" PRId64 " does not match its hash (edited)", r->seq);
		v->bad_seq = r->seq;
		return -EBADMSG;
	}
	if (audit_leaf_hash_of(r, leaf) < 0 || merkle_range_append(&v->range, leaf, NULL, NULL, NULL) < 0)
		return -EIO;
	for (size_t i = 0; i < 2; i++)
		if (v->at[i] == v->range.size) {
			merkle_range_root(&v->range, v->root_at[i]);
			v->seen[i] = true;
		}
	memcpy(v->prev, r->hash, 32);
	v->expect_seq++;
	return 0;
}

static int export_one(const struct audit_rec *r, void *userdata)
{
	json_object *o = json_object_new_object();
	merkle_hash leaf;
	char prev[65], hash[65], leaf_hex[65];

	(void)userdata;
	if (!o)
		return -ENOMEM;
	hex_encode(r->prev_hash, 32, prev);
	hex_encode(r->hash, 32, hash);
	if (audit_leaf_hash_of(r, leaf) < 0)
		memset(leaf, 0, sizeof(leaf));
	hex_encode(leaf, 32, leaf_hex);
	json_object_object_add(o, "seq", json_object_new_int64(r->seq));
	json_object_object_add(o, "time_us", json_object_new_int64(r->time_us));
	json_object_object_add(o, "peer", json_object_new_string(r->peer ? r->peer : ""));
	json_object_object_add(o, "ek_hash", json_object_new_string(r->ek_hash ? r->ek_hash : ""));
	json_object_object_add(o, "node_id", json_object_new_string(r->node_id ? r->node_id : ""));
	json_object_object_add(o, "action", json_object_new_string(r->action ? r->action : ""));
	json_object_object_add(o, "decision", json_object_new_string(r->decision ? r->decision : ""));
	json_object_object_add(o, "reasons", json_object_new_string(r->reasons ? r->reasons : ""));
	json_object_object_add(o, "prev_hash", json_object_new_string(prev));
	json_object_object_add(o, "hash", json_object_new_string(hash));
	json_object_object_add(o, "leaf_hash", json_object_new_string(leaf_hex));
	admin_json_print(o);
	json_object_put(o);
	return 0;
}

struct options {
	const char *config, *since, *log_key, *size;
	bool json;
};

/* The key checkpoints are verified with: --log-key's (an auditor's pin), else the config's. */
static int verifier_of(const struct server_config *c, struct store *s, const char *vkey, struct note_verifier *ret)
{
	char why[256];

	if (vkey) {
		if (note_verifier_parse(vkey, ret, why, sizeof(why)) < 0)
			return admin_refuse("--log-key '%s': %s", vkey, why);
		return 0;
	}
	if (store_log_signer(s)) {
		*ret = *note_signer_verifier(store_log_signer(s));
		return 0;
	}
	(void)c;
	return -ENOKEY;
}

static void verify_fail_json(const struct verify *v, int64_t records)
{
	_cleanup_json_ json_object *o = json_object_new_object();

	json_object_object_add(o, "intact", json_object_new_boolean(false));
	json_object_object_add(o, "records", json_object_new_int64(records));
	if (v->bad_seq)
		json_object_object_add(o, "broken_at", json_object_new_int64(v->bad_seq));
	json_object_object_add(o, "reason", json_object_new_string(v->why));
	admin_json_print(o);
}

static int verify_fail(const struct verify *v, const struct options *o, int64_t records)
{
	if (o->json)
		verify_fail_json(v, records);
	fprintf(stderr, "keystrap-server: audit log broken: %s\n", v->why);
	return 1;
}

/* A checkpoint's note read and opened: 0, or 1 after saying why. */
static int checkpoint_read(const char *path, const struct note_verifier *key, struct checkpoint *ret)
{
	_cleanup_free_ uint8_t *text = NULL;
	char why[256];
	size_t n;
	int r;

	if ((r = read_file(path, NOTE_MAX, &text, &n)) < 0)
		return admin_refuse("cannot read the checkpoint '%s': %s", path, strerror(-r));
	if (checkpoint_open((const char *)text, n, key, ret, why, sizeof(why)) < 0)
		return admin_refuse("the checkpoint '%s' is not one of this log's: %s", path, why);
	return 0;
}

/* 1 when the policy rows are not what the log's last policy load says (why says so), else 0. */
static int policy_rollback_check(struct store *s, char *why, size_t why_size)
{
	_cleanup_free_ char *text = NULL;
	struct policy_logged l;
	int64_t version = 0;
	uint8_t d[32];
	size_t size = 0;
	int r = store_policy_logged(s, &l);

	if (r == -ENOENT || r == -EBADMSG)
		return 0;
	if (r < 0)
		return r;
	r = store_policy_current(s, &version, &text, &size, NULL);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0 && policy_text_digest(text, size, d) < 0)
		return -EIO;
	if (r == 0 && l.version == version && (!l.has_digest || memcmp(d, l.digest, 32) == 0))
		return 0;
	snprintf(why, why_size,
		 "the policy in the store (version %lld) is not the one record %lld says was loaded last (version %lld): "
		 "policy rows were removed or replaced",
		 (long long)version, (long long)l.seq, (long long)l.version);
	return 1;
}

static int audit_verify(const struct server_config *c, struct store *s, const struct options *o)
{
	_cleanup_free_ char *note = NULL;
	struct verify v = { .expect_seq = 1 };
	struct checkpoint cp = { 0 }, since = { 0 };
	struct note_verifier key;
	merkle_hash root, stored_root, proof[MERKLE_PROOF_MAX];
	uint64_t cp_size = 0, leaves;
	bool keyed;
	size_t n_proof = 0;
	char head[65], root_hex[65], when[UTC_TIME_MAX];
	int r;

	r = verifier_of(c, s, o->log_key, &key);
	if (r > 0)
		return r;
	keyed = r == 0;
	if (o->since && !keyed)
		return admin_refuse("--since needs the log key: set log_key in the configuration or give --log-key");
	if (o->since && checkpoint_read(o->since, &key, &since) != 0)
		return 1;
	if (keyed) {
		r = store_checkpoint_get(s, &cp_size, &note);
		if (r < 0 && r != -ENOENT)
			return admin_refuse("cannot read the checkpoint: %s", strerror(-r));
		char why[256];

		if (r == 0 && checkpoint_open(note, strlen(note), &key, &cp, why, sizeof(why)) < 0) {
			snprintf(v.why, sizeof(v.why), "the store's checkpoint does not verify with the log key '%.128s': %s",
				 key.name, why);
			return verify_fail(&v, o, 0);
		}
	}
	v.at[0] = cp.size ? cp.size : UINT64_MAX;
	v.at[1] = o->since && since.size ? since.size : UINT64_MAX;
	r = store_audit_foreach(s, verify_one, &v);
	if (r == -EBADMSG)
		return verify_fail(&v, o, v.expect_seq - 1);
	if (r < 0)
		return admin_refuse("cannot read the audit log: %s", strerror(-r));
	merkle_range_root(&v.range, root);
	if ((r = store_log_size(s, &leaves)) < 0 || (r = store_log_root(s, leaves, stored_root)) < 0)
		return admin_refuse("cannot read the audit log's tree: %s", strerror(-r));
	if (leaves != v.range.size || memcmp(root, stored_root, MERKLE_HASH_SIZE) != 0) {
		snprintf(v.why, sizeof(v.why),
			 "the stored tree (%" PRIu64 " leaves) is not the tree of the %" PRIu64
			 " records: the proofs it gives nodes are not of these records",
			 leaves, v.range.size);
		return verify_fail(&v, o, (int64_t)v.range.size);
	}
	if (keyed && !note && v.range.size > 0) {
		snprintf(v.why, sizeof(v.why), "no signed checkpoint of the log: its records are not anchored");
		return verify_fail(&v, o, (int64_t)v.range.size);
	}
	if (note && cp.size > v.range.size) {
		snprintf(v.why, sizeof(v.why),
			 "the signed checkpoint covers %" PRIu64 " records but the log has %" PRIu64 " (records removed)",
			 cp.size, v.range.size);
		return verify_fail(&v, o, (int64_t)v.range.size);
	}
	if (note && cp.size && memcmp(v.root_at[0], cp.root, MERKLE_HASH_SIZE) != 0) {
		snprintf(v.why, sizeof(v.why),
			 "the first %" PRIu64 " records are not those the signed checkpoint covers (edited or rewritten)",
			 cp.size);
		return verify_fail(&v, o, (int64_t)v.range.size);
	}
	if (o->since) {
		if (since.size > v.range.size) {
			snprintf(v.why, sizeof(v.why),
				 "the checkpoint '%s' covers %" PRIu64 " records but the log has %" PRIu64
				 " (records removed)",
				 o->since, since.size, v.range.size);
			return verify_fail(&v, o, (int64_t)v.range.size);
		}
		if (since.size && memcmp(v.root_at[1], since.root, MERKLE_HASH_SIZE) != 0) {
			snprintf(v.why, sizeof(v.why),
				 "the log does not extend the checkpoint '%s': its first %" PRIu64
				 " records are others (forked or rewritten)",
				 o->since, since.size);
			return verify_fail(&v, o, (int64_t)v.range.size);
		}
		/* What a witness would be shown: the stored tree's own proof, checked as a node checks it. */
		if ((r = store_log_prove_consistency(s, since.size, v.range.size, proof, &n_proof)) < 0 ||
		    merkle_verify_consistency(since.size, v.range.size, since.root, root, (const merkle_hash *)proof,
					      n_proof) < 0) {
			snprintf(v.why, sizeof(v.why), "the stored tree gives no valid consistency proof from %" PRIu64,
				 since.size);
			return verify_fail(&v, o, (int64_t)v.range.size);
		}
	}
	if ((r = policy_rollback_check(s, v.why, sizeof(v.why))) != 0)
		return r < 0 ? admin_refuse("cannot read the policy: %s", strerror(-r)) : verify_fail(&v, o, (int64_t)v.range.size);
	hex_encode(v.prev, 32, head);
	hex_encode(root, 32, root_hex);
	if (o->json) {
		_cleanup_json_ json_object *j = json_object_new_object();

		json_object_object_add(j, "intact", json_object_new_boolean(true));
		json_object_object_add(j, "records", json_object_new_int64((int64_t)v.range.size));
		json_object_object_add(j, "head", json_object_new_string(head));
		json_object_object_add(j, "root", json_object_new_string(root_hex));
		if (note) {
			json_object *k = json_object_new_object();

			json_object_object_add(k, "size", json_object_new_int64((int64_t)cp.size));
			json_object_object_add(k, "time", json_object_new_int64(cp.time));
			json_object_object_add(k, "key", json_object_new_string(key.name));
			json_object_object_add(j, "checkpoint", k);
		} else
			json_object_object_add(j, "checkpoint", NULL);
		if (o->since) {
			json_object *k = json_object_new_object();

			json_object_object_add(k, "size", json_object_new_int64((int64_t)since.size));
			json_object_object_add(k, "proof_hashes", json_object_new_int64((int64_t)n_proof));
			json_object_object_add(j, "since", k);
		}
		admin_json_print(j);
		return 0;
	}
	printf("audit log intact: %" PRIu64 " records, root %s\n", v.range.size, root_hex);
	if (note)
		printf("checkpoint: %" PRIu64 " records, signed by %s at %s%s\n", cp.size, key.name,
		       utc_time_format(cp.time, when),
		       cp.size < v.range.size ? " (the newest records are not yet in a checkpoint)" : "");
	else
		printf("checkpoint: none (no log_key configured: the log is not anchored)\n");
	if (o->since)
		printf("extends %s (%" PRIu64 " records): consistency proof of %zu hashes verified\n", o->since,
		       since.size, n_proof);
	return 0;
}

struct find {
	int64_t seq;
	uint8_t leaf[AUDIT_LEAF_MAX];
	size_t size;
	bool found;
};

static int find_one(const struct audit_rec *r, void *userdata)
{
	struct find *f = userdata;

	if (r->seq != f->seq || f->found)
		return 0;
	f->found = true;
	return audit_leaf_of(r, f->leaf, &f->size);
}

static json_object *hashes_json(const merkle_hash *h, size_t n)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < n; i++) {
		char b64[64];

		base64_encode(h[i], MERKLE_HASH_SIZE, b64);
		json_object_array_add(a, json_object_new_string(b64));
	}
	return a;
}

/* The inclusion proof of record SEQ in the newest checkpoint (or the tree of --size leaves). */
static int audit_prove(struct store *s, const char *arg, const struct options *o)
{
	_cleanup_json_ json_object *j = json_object_new_object();
	_cleanup_free_ char *note = NULL;
	struct find f = { 0 };
	merkle_hash proof[MERKLE_PROOF_MAX], leaf;
	uint64_t size = 0, leaves;
	size_t n;
	char b64[base64_encoded_len(AUDIT_LEAF_MAX) + 1], *end;
	int r;

	errno = 0;
	f.seq = strtoll(arg, &end, 10);
	if (errno || *end || f.seq < 1)
		return admin_refuse("'%s' is not a record's seq (1, 2, ...)", arg);
	if ((r = store_log_size(s, &leaves)) < 0)
		return admin_refuse("cannot read the audit log's tree: %s", strerror(-r));
	if (o->size) {
		size = strtoull(o->size, &end, 10);
		if (*end || size == 0 || size > leaves)
			return admin_refuse("--size '%s' is not a tree size from 1 to %" PRIu64, o->size, leaves);
	} else if (store_checkpoint_get(s, &size, &note) < 0) {
		size = leaves;
	}
	if ((uint64_t)f.seq > size)
		return admin_refuse("record %" PRId64 " is not in the tree of %" PRIu64 " records", f.seq, size);
	if ((r = store_audit_foreach(s, find_one, &f)) < 0 || !f.found)
		return admin_refuse("cannot read record %" PRId64 ": %s", f.seq, f.found ? strerror(-r) : "not in the log");
	if ((r = store_log_prove_inclusion(s, (uint64_t)f.seq - 1, size, proof, &n)) < 0)
		return admin_refuse("cannot prove record %" PRId64 ": %s", f.seq, strerror(-r));
	merkle_leaf_hash(f.leaf, f.size, leaf);
	base64_encode(f.leaf, f.size, b64);
	json_object_object_add(j, "seq", json_object_new_int64(f.seq));
	json_object_object_add(j, "index", json_object_new_int64(f.seq - 1));
	json_object_object_add(j, "tree_size", json_object_new_int64((int64_t)size));
	json_object_object_add(j, "record", json_object_new_string(b64));
	json_object_object_add(j, "inclusion", hashes_json((const merkle_hash *)proof, n));
	if (note && !o->size)
		json_object_object_add(j, "checkpoint", json_object_new_string(note));
	admin_json_print(j);
	return 0;
}

static int audit_checkpoint(struct store *s)
{
	_cleanup_free_ char *note = NULL;
	uint64_t size;
	int r = store_checkpoint_get(s, &size, &note);

	if (r == -ENOENT)
		return admin_refuse("the log has no signed checkpoint yet (is log_key set?)");
	if (r < 0)
		return admin_refuse("cannot read the checkpoint: %s", strerror(-r));
	fputs(note, stdout);
	return 0;
}

int cmd_audit(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "since", required_argument, NULL, 's' },
					      { "log-key", required_argument, NULL, 'k' },
					      { "size", required_argument, NULL, 'n' },
					      { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	_cleanup_server_config_ struct server_config *c = NULL;
	_cleanup_store_ struct store *s = NULL;
	struct options o = { 0 };
	const char *verb, *arg = NULL;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (opt) {
		case 'c': o.config = optarg; break;
		case 's': o.since = optarg; break;
		case 'k': o.log_key = optarg; break;
		case 'n': o.size = optarg; break;
		case 'j': o.json = true; break;
		case 'h': printf("Usage: %s\n", usage); return EXIT_HELP;
		default: fprintf(stderr, "Usage: %s\n", usage); return EXIT_USAGE;
		}
	if (optind >= argc || !o.config) {
		fprintf(stderr, "keystrap-server: audit needs a command and --config FILE\nUsage: %s\n", usage);
		return EXIT_USAGE;
	}
	verb = argv[optind++];
	if (streq(verb, "prove") && optind < argc)
		arg = argv[optind++];
	if (optind < argc || (streq(verb, "prove") && !arg)) {
		fprintf(stderr, "keystrap-server: audit %s: %s\nUsage: %s\n", verb,
			optind < argc ? "unexpected argument" : "which record (SEQ)?", usage);
		return EXIT_USAGE;
	}
	if ((streq(verb, "export") || streq(verb, "prove") || streq(verb, "checkpoint")) && o.json) {
		fprintf(stderr, "keystrap-server: audit %s is JSON already (--json goes with verify)\nUsage: %s\n", verb,
			usage);
		return EXIT_USAGE;
	}
	if (!streq(verb, "verify") && (o.since || o.log_key)) {
		fprintf(stderr, "keystrap-server: --since and --log-key go with verify\nUsage: %s\n", usage);
		return EXIT_USAGE;
	}
	if (!streq(verb, "prove") && o.size) {
		fprintf(stderr, "keystrap-server: --size goes with prove\nUsage: %s\n", usage);
		return EXIT_USAGE;
	}
	if (!streq(verb, "verify") && !streq(verb, "prove") && !streq(verb, "checkpoint") && !streq(verb, "export")) {
		fprintf(stderr, "keystrap-server: unknown audit command '%s'\nUsage: %s\n", verb, usage);
		return EXIT_USAGE;
	}
	if (admin_load(o.config, &c, &s) != 0)
		return 1;
	if (streq(verb, "export"))
		return store_audit_foreach(s, export_one, NULL) < 0 ? 1 : 0;
	if (streq(verb, "prove"))
		return audit_prove(s, arg, &o);
	if (streq(verb, "checkpoint"))
		return audit_checkpoint(s);
	return audit_verify(c, s, &o);
}
