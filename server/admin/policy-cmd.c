/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server policy load|show. A policy takes effect only with detached signatures over
 * its exact bytes from at least k distinct operator keys of the configuration; it must not be
 * expired and its version must be above the current one. The check of the version and the
 * insert (with its audit record) are one transaction: a refusal leaves the store untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "admin.h"
#include "attest-msg.h"
#include "encode.h"
#include "fileio.h"
#include "json-cleanup.h"
#include "log.h"
#include "operator.h"
#include "policy-cache.h"
#include "secbuf.h"
#include "server-config.h"
#include "store.h"

static const char usage[] = "keystrap-server policy load POLICY --signature FILE [--signature FILE...] --config FILE\n"
			    "       keystrap-server policy show [--json] --config FILE\n"
			    "       keystrap-server policy draft --from-node NODE|--from-audit SEQ [--out FILE [--force]] --config FILE\n"
			    "       keystrap-server policy diff VERSION|FILE VERSION|FILE [--json] --config FILE";

/* "ab12cd34ef56ab78, 0011223344556677": fingerprints (first 16 digits, or all) of the keys in signers. */
static void signers_format(const struct operator_keys *k, uint32_t signers, bool full, char *buf, size_t size)
{
	size_t l = 0;

	buf[0] = 0;
	for (size_t i = 0; i < k->n; i++)
		if (signers & (1u << i) && l < size) {
			snprintf(buf + l, size - l, "%s%.*s", l ? ", " : "", full ? FINGERPRINT_HEX : 16,
				 k->key[i].fingerprint);
			l = strlen(buf);
		}
}

#define WHY_MAX 512

/*
 * A refused load: one line for the operator, and an audit record of the attempt (its own
 * transaction; nothing else was written), since someone trying to change what nodes must
 * boot without enough signatures is worth a trace.
 */
static int denied(struct store *s, const char *path, const char *fmt, ...) _printf_(3, 4);
static int denied(struct store *s, const char *path, const char *fmt, ...)
{
	char why[WHY_MAX], who[64], record[WHY_MAX + 512];
	struct audit_rec a;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fprintf(stderr, "keystrap-server: %s\n", why);
	admin_operator(who, sizeof(who));
	snprintf(record, sizeof(record), "policy file %s refused: %s; by %s", path, why, who);
	a = (struct audit_rec){ .time_us = now_usec(), .peer = "local", .ek_hash = "", .node_id = "",
				.action = "policy-load", .decision = "deny", .reasons = record };
	if (store_begin(s) < 0)
		return 1;
	if (store_audit_append(s, &a) < 0 || store_commit(s) < 0)
		store_rollback(s);
	return 1;
}

/* Reads the signature files; each must verify under some operator key, and each key counts once. */
static int signatures(const struct operator_keys *k, const char *text, size_t size, char *const *paths, size_t n,
		      struct policy_signature *sigs, size_t *ret_n, uint32_t *ret_signers, char why[WHY_MAX])
{
	uint32_t signers = 0;
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ uint8_t *sig = NULL;
		size_t sig_size;
		int key = 0, r = read_file(paths[i], SIGNATURE_MAX, &sig, &sig_size);

		if (r == -EFBIG)
			snprintf(why, WHY_MAX, "signature '%s' is larger than %d bytes", paths[i], SIGNATURE_MAX);
		else if (r < 0)
			snprintf(why, WHY_MAX, "cannot read signature '%s': %s", paths[i], strerror(-r));
		else if ((key = operator_key_find(k, text, size, sig, sig_size)) < 0)
			snprintf(why, WHY_MAX, "signature '%s' does not verify under any configured operator key", paths[i]);
		if (r < 0 || key < 0)
			return -EKEYREJECTED;
		if (signers & (1u << key))
			continue; /* the same key again: still one operator */
		signers |= 1u << key;
		sigs[m] = (struct policy_signature){ .key = (size_t)key, .size = sig_size };
		memcpy(sigs[m].sig, sig, sig_size);
		m++;
	}
	*ret_n = m;
	*ret_signers = signers;
	return 0;
}

static int load(const struct server_config *c, struct store *s, const char *path, char *const *sig_paths,
		size_t n_sigs)
{
	_cleanup_free_ struct policy_signature *sigs = NULL;
	_cleanup_free_ char *stored = NULL;
	_cleanup_free_ uint8_t *text = NULL;
	_cleanup_policy_ struct policy *p = NULL;
	char reason[ATTEST_REASON_MAX], who[64], fps[OPERATOR_KEYS_MAX * 18], when[21], why[WHY_MAX];
	char full[OPERATOR_KEYS_MAX * (FINGERPRINT_HEX + 2)], record[sizeof(full) + 320], digest[65];
	uint8_t d[32];
	struct audit_rec a;
	int64_t current = 0;
	uint32_t signers = 0;
	size_t size, n = 0;
	int r;

	r = read_file(path, POLICY_FILE_MAX, &text, &size);
	if (r == -EFBIG)
		return admin_refuse("policy '%s' is larger than %d bytes", path, POLICY_FILE_MAX);
	if (r < 0)
		return admin_refuse("cannot read policy '%s': %s", path, strerror(-r));
	sigs = calloc(n_sigs ? n_sigs : 1, sizeof(*sigs));
	if (!sigs)
		return admin_refuse("out of memory");
	/* Authenticity before content: nothing in an unsigned document is acted on. */
	if (signatures(c->operators, (const char *)text, size, sig_paths, n_sigs, sigs, &n, &signers, why) < 0)
		return denied(s, path, "%s", why);
	if ((int64_t)n < c->policy_threshold)
		return denied(s, path, "policy is signed by %zu of the required %lld operator keys", n,
			      (long long)c->policy_threshold);
	r = policy_parse((const char *)text, size, &p, reason);
	if (r < 0)
		return denied(s, path, "%s: %s", path, r == -EBADMSG ? reason : strerror(-r));
	policy_time_format(p->expires_us, when);
	if (p->expires_us <= now_usec())
		return denied(s, path, "policy version %lld expired at %s", (long long)p->version, when);
	/* Loaded, a group naming an unset secret would fail every one of its nodes with a 500. */
	for (size_t i = 0; i < p->n_groups; i++)
		for (size_t j = 0; j < p->groups[i].n_secrets; j++) {
			_cleanup_secbuf_ struct secbuf *value = NULL;
			const char *name = p->groups[i].secrets[j];

			r = store_secret_get(s, name, &value, NULL);
			if (r == -ENOENT)
				return denied(s, path, "group '%s' names secret '%s', which is not set "
					      "(keystrap-server secret set %s)", p->groups[i].name, name, name);
			if (r < 0)
				return admin_refuse("cannot read secret '%s' from the store: %s", name, strerror(-r));
		}
	if ((r = policy_signatures_format(c->operators, sigs, n, &stored)) < 0)
		return admin_refuse("cannot encode the signatures: %s", strerror(-r));
	signers_format(c->operators, signers, false, fps, sizeof(fps));
	signers_format(c->operators, signers, true, full, sizeof(full));
	admin_operator(who, sizeof(who));
	if (policy_text_digest(text, size, d) < 0)
		return admin_refuse("cannot hash the policy: %s", strerror(EIO));
	hex_encode(d, sizeof(d), digest);
	snprintf(record, sizeof(record), "policy version %lld (sha256 %s), expires %s, signed by %s; loaded by %s",
		 (long long)p->version, digest, when, full, who);
	a = (struct audit_rec){ .time_us = now_usec(), .peer = "local", .ek_hash = "", .node_id = "",
				.action = "policy-load", .decision = "allow", .reasons = record };

	if ((r = store_begin(s)) < 0)
		return admin_refuse("cannot write to the store: %s", strerror(-r));
	r = store_policy_current(s, &current, NULL, NULL, NULL);
	if (r == -ENOENT)
		r = 0;
	if (r >= 0 && p->version <= current)
		r = -ESTALE;
	if (r >= 0)
		r = store_policy_put(s, p->version, (const char *)text, size, stored, now_usec());
	if (r >= 0)
		r = store_audit_append(s, &a);
	if (r >= 0)
		r = store_commit(s);
	if (r < 0) {
		store_rollback(s);
		if (r == -ESTALE && p->version <= current)
			return denied(s, path, "policy version %lld is not newer than the current version %lld",
				      (long long)p->version, (long long)current);
		if (r == -ESTALE)
			return denied(s, path, "policy version %lld is not newer than the current version",
				      (long long)p->version);
		return admin_refuse("cannot store the policy: %s", strerror(-r));
	}
	printf("policy version %lld loaded: signed by %zu of %zu operator keys (%s), expires %s\n", (long long)p->version,
	       n, c->operators->n, fps, when);
	return 0;
}

/*
 * policy show --json: {"version", "state": "in force"|"expired"|"refused", and either "reason"
 * (refused) or "expires", "expires_us", "min_keystrap_version", "credential_lifetime" and
 * "signed_by": [{"fingerprint", "path"}]}.
 */
static int show_json(const struct server_config *c, int64_t version, const struct policy *p, uint32_t signers,
		     const char *state, const char *reason)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object *by;
	char when[21];

	json_object_object_add(o, "version", json_object_new_int64(version));
	json_object_object_add(o, "state", json_object_new_string(state));
	if (!p) {
		json_object_object_add(o, "reason", json_object_new_string(reason));
		admin_json_print(o);
		return 1;
	}
	policy_time_format(p->expires_us, when);
	json_object_object_add(o, "expires", json_object_new_string(when));
	json_object_object_add(o, "expires_us", json_object_new_int64(p->expires_us));
	json_object_object_add(o, "min_keystrap_version", json_object_new_string(p->min_version));
	json_object_object_add(o, "credential_lifetime", json_object_new_int64(p->credential_lifetime));
	json_object_object_add(o, "signed_by", by = json_object_new_array());
	for (size_t i = 0; i < c->operators->n; i++)
		if (signers & (1u << i)) {
			json_object *k = json_object_new_object();

			json_object_object_add(k, "fingerprint", json_object_new_string(c->operators->key[i].fingerprint));
			json_object_object_add(k, "path", json_object_new_string(c->operators->key[i].path));
			json_object_array_add(by, k);
		}
	admin_json_print(o);
	return streq(state, "in force") ? 0 : 1;
}

static int show(const struct server_config *c, struct store *s, bool json)
{
	_cleanup_free_ char *text = NULL, *sigs = NULL;
	_cleanup_policy_ struct policy *p = NULL;
	char reason[ATTEST_REASON_MAX], when[21];
	uint32_t signers = 0;
	int64_t version;
	size_t size;
	int r;

	r = store_policy_current(s, &version, &text, &size, &sigs);
	if (r == -ENOENT)
		return admin_refuse("no policy is loaded");
	if (r < 0)
		return admin_refuse("cannot read the policy: %s", strerror(-r));
	/* What the server would do with it: the same trust check, so a doctored row shows here. */
	r = policy_trust(c, version, text, size, sigs, &p, &signers, reason);
	if (r < 0 && r != -EKEYREJECTED && r != -EBADMSG)
		snprintf(reason, sizeof(reason), "%s", strerror(-r));
	if (json)
		return show_json(c, version, r < 0 ? NULL : p, signers,
				 r < 0 ? "refused" : p->expires_us <= now_usec() ? "expired" : "in force", reason);
	printf("version %lld\n", (long long)version);
	if (r < 0) {
		printf("state refused: %s\n", reason);
		return 1;
	}
	policy_time_format(p->expires_us, when);
	printf("expires %s\n", when);
	printf("min-keystrap-version %s (advisory: what the node reports about itself)\ncredential-lifetime %lld\n",
	       p->min_version, (long long)p->credential_lifetime);
	for (size_t i = 0; i < c->operators->n; i++)
		if (signers & (1u << i))
			printf("signed-by %s %s\n", c->operators->key[i].fingerprint, c->operators->key[i].path);
	if (p->expires_us <= now_usec()) {
		printf("state expired\n");
		return 1;
	}
	printf("state in force\n");
	return 0;
}

struct node_find {
	const char *want; /* a node id or an EK hash */
	struct node_rec node;
	bool found;
};

static int node_match(const struct node_rec *n, void *userdata)
{
	struct node_find *f = userdata;

	if (!streq(n->node_id, f->want) && !streq(n->ek_hash, f->want))
		return 0;
	f->node = *n;
	f->found = true;
	return -ECANCELED; /* found: stop */
}

/* The draft to FILE, created owner-only; an existing one is replaced only when forced. */
static int draft_write(const char *path, const char *text, bool force)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (force ? O_TRUNC : O_EXCL), 0600), r;

	if (fd < 0 && errno == EEXIST)
		return admin_refuse("'%s' exists: not overwritten without --force", path);
	if (fd < 0)
		return admin_refuse("cannot create '%s': %s", path, strerror(errno));
	/* A file that was there keeps its mode through O_TRUNC: owner-only all the same. */
	r = fchmod(fd, 0600) < 0 ? -errno : write_full(fd, text, strlen(text));
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r >= 0)
		r = -errno;
	if (r < 0)
		return admin_refuse("cannot write '%s': %s", path, strerror(-r));
	return 0;
}

/* "new reference values for PCRs 4, 9; PCR 12 allows 2 more events". */
static void changes_format(const struct policy_draft_changes *c, char *buf, size_t size)
{
	char list[64] = "";
	size_t l = 0;
	int n = 0;

	for (unsigned i = 0; i < PCR_COUNT; i++)
		if (c->replaced & (1u << i))
			l += (size_t)snprintf(list + l, sizeof(list) - l, "%s%u", n++ ? ", " : "", i);
	l = 0;
	buf[0] = 0;
	if (n)
		l = (size_t)snprintf(buf, size, "new reference value%s for PCR%s %s", n > 1 ? "s" : "", n > 1 ? "s" : "",
				     list);
	for (unsigned i = 0; i < PCR_COUNT && l < size; i++)
		if (c->added[i])
			l += (size_t)snprintf(buf + l, size - l, "%sPCR %u allows %zu more event%s", l ? "; " : "", i,
					      c->added[i], c->added[i] > 1 ? "s" : "");
}

/*
 * The refusal on record a draft starts from: the node's (by id or EK hash), or the one audit
 * record seq is. ret_name: the node as operators know it (its id, else its EK hash).
 */
static int refusal_find(struct store *s, const char *node, const char *seq, struct refusal_rec *ret,
			char ret_name[NODE_ID_MAX + EK_HASH_HEX + 1])
{
	struct node_find f = { .want = node };
	struct refusal_rec rec = {};
	char *end;
	long long n = 0;
	int r;

	if (seq) {
		errno = 0;
		n = strtoll(seq, &end, 10);
		if (!*seq || *end || errno || n < 1 || seq[0] == '0' || seq[0] == '+')
			return admin_refuse("'%s' is not an audit record's seq (a number from 1)", seq);
		r = store_refusal_get(s, NULL, n, &rec);
		if (r == -ENOENT)
			return admin_refuse("audit record %lld is no node's last refused attestation on record (only that is "
				      "kept, one per node)", n);
		if (r < 0)
			return admin_refuse("cannot read the refused attestation of audit record %lld: %s", n, strerror(-r));
		f.want = rec.ek_hash;
	}
	r = store_node_foreach(s, node_match, &f);
	if (r < 0 && r != -ECANCELED) {
		free(rec.evidence);
		return admin_refuse("cannot read the node registry: %s", strerror(-r));
	}
	if (!f.found && !seq)
		return admin_refuse("no node '%s' in the registry (node list shows them)", node);
	snprintf(ret_name, NODE_ID_MAX + EK_HASH_HEX + 1, "%s", f.found && f.node.node_id[0] ? f.node.node_id : f.want);
	if (!seq) {
		r = store_refusal_get(s, f.node.ek_hash, 0, &rec);
		if (r == -ENOENT)
			return admin_refuse("node '%s' has no refused attestation on record: nothing to draft from", node);
		if (r < 0)
			return admin_refuse("cannot read node '%s''s refused attestation: %s", node, strerror(-r));
	}
	*ret = rec;
	return 0;
}

/*
 * policy draft: the current policy, version + 1, with what a node's last refused attestation
 * carried merged in. Only a trusted policy is drafted from (a doctored row would carry its
 * changes into what operators sign); nothing is stored, nothing takes effect until k
 * operators sign the file and load it.
 */
static int draft(const struct server_config *c, struct store *s, const char *node, const char *seq, const char *out,
		 bool force)
{
	_cleanup_free_ char *text = NULL, *sigs = NULL, *evidence = NULL, *result = NULL;
	_cleanup_policy_ struct policy *cur = NULL, *ev = NULL;
	struct policy_draft_changes changes;
	struct refusal_rec rec = {};
	char reason[ATTEST_REASON_MAX], when[21], what[256], name[NODE_ID_MAX + EK_HASH_HEX + 1];
	int64_t version;
	size_t size;
	int r;

	if ((r = refusal_find(s, node, seq, &rec, name)) != 0)
		return r;
	evidence = rec.evidence;
	r = store_policy_current(s, &version, &text, &size, &sigs);
	if (r == -ENOENT)
		return admin_refuse("no policy is loaded: a draft starts from the current one");
	if (r < 0)
		return admin_refuse("cannot read the policy: %s", strerror(-r));
	r = policy_trust(c, version, text, size, sigs, &cur, NULL, reason);
	if (r < 0)
		return admin_refuse("the stored policy version %lld is not trusted: %s", (long long)version,
			      r == -EKEYREJECTED || r == -EBADMSG ? reason : strerror(-r));
	r = policy_evidence_parse(evidence, strlen(evidence), &ev, reason);
	if (r < 0)
		return admin_refuse("node '%s''s refused attestation on record does not parse: %s", name,
			      r == -EBADMSG ? reason : strerror(-r));
	policy_time_format(rec.time_us, when);
	r = policy_draft(text, cur, ev, &result, &changes, reason);
	if (r < 0)
		return admin_refuse("no draft from node '%s''s refusal of %s (audit record %lld) under policy %lld: %s", name,
			      when, (long long)rec.audit_seq, (long long)rec.policy_version,
			      r == -EBADMSG ? reason : strerror(-r));
	if (out && (r = draft_write(out, result, force)) != 0)
		return r;
	if (!out)
		fputs(result, stdout);
	changes_format(&changes, what, sizeof(what));
	fprintf(out ? stdout : stderr,
		"policy version %lld drafted from node %s's refusal of %s (audit record %lld) under policy %lld: %s; "
		"review it, sign it (k of n) and load it\n",
		(long long)cur->version + 1, name, when, (long long)rec.audit_seq, (long long)rec.policy_version, what);
	return 0;
}

int cmd_policy(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "signature", required_argument, NULL, 's' },
					      { "json", no_argument, NULL, 'j' },
					      { "from-node", required_argument, NULL, 'n' },
					      { "from-audit", required_argument, NULL, 'a' },
					      { "out", required_argument, NULL, 'o' },
					      { "force", no_argument, NULL, 'f' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	_cleanup_server_config_ struct server_config *c = NULL;
	_cleanup_store_ struct store *s = NULL;
	char *sig_paths[OPERATOR_KEYS_MAX * 2];
	const char *config = NULL, *from_node = NULL, *from_audit = NULL, *out = NULL;
	size_t n_sigs = 0;
	bool json = false, force = false;
	int o, r;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 's':
			if (n_sigs == ELEMENTSOF(sig_paths))
				return admin_refuse("more than %zu --signature files", ELEMENTSOF(sig_paths));
			sig_paths[n_sigs++] = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'n':
			from_node = optarg;
			break;
		case 'a':
			from_audit = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			printf("Usage: %s\n", usage);
			return 0;
		default:
			goto bad;
		}
	if (!config || optind >= argc)
		goto bad;
	/* Each verb's own options, and no other's. */
	if ((from_node || from_audit || out || force) && !streq(argv[optind], "draft"))
		goto bad;
	if (streq(argv[optind], "draft") && argc - optind == 1 && !from_node != !from_audit && (out || !force) && !json &&
	    n_sigs == 0) {
		if ((r = admin_load(config, &c, &s)) != 0)
			return r;
		return draft(c, s, from_node, from_audit, out, force);
	}
	if (streq(argv[optind], "load") && argc - optind == 2 && !json) {
		if ((r = admin_load(config, &c, &s)) != 0)
			return r;
		return load(c, s, argv[optind + 1], sig_paths, n_sigs);
	}
	if (streq(argv[optind], "diff") && argc - optind == 3 && n_sigs == 0) {
		if ((r = admin_load(config, &c, &s)) != 0)
			return r;
		return admin_policy_diff(c, s, argv[optind + 1], argv[optind + 2], json);
	}
	if (streq(argv[optind], "show") && argc - optind == 1 && n_sigs == 0) {
		if ((r = admin_load(config, &c, &s)) != 0)
			return r;
		return show(c, s, json);
	}
bad:
	fprintf(stderr, "Usage: %s\n", usage);
	return EXIT_USAGE;
}
