/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server operator rotate: operator keys added and removed, with the policy in force
 * re-signed by the new key set in the same step, so that no server ever runs with a policy its
 * keys do not trust. The new keys' signatures over the policy's exact bytes join the stored
 * ones (the text is not touched); the policy must then be signed by policy_threshold keys of
 * the new set, where a removed key's signature counts for nothing. The store is written first
 * (harmless under the old configuration: the new keys are not in it yet), then the
 * configuration beside and renamed over the old one; SIGHUP makes the server use it. Run again
 * after an interruption, it does what is left.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "encode.h"
#include "fileio.h"
#include "json-cleanup.h"
#include "log.h"
#include "operator.h"
#include "policy-cache.h"
#include "server-config.h"
#include "store.h"

static const char usage[] = "keystrap-server operator rotate [--add KEY.pub]... [--remove KEY.pub]... "
			    "[--signature FILE]... --config FILE";

#define CONFIG_FILE_MAX 65536
#define WHY_MAX (PATH_MAX * 2 + 512)

/* One key file's fingerprint; logs naming the file. */
static int fingerprint_of(const char *path, char ret[FINGERPRINT_HEX + 1])
{
	struct operator_keys *k = NULL;
	char *p = (char *)path;
	int r = operator_keys_load(&p, 1, &k);

	if (r < 0)
		return r;
	memcpy(ret, k->key[0].fingerprint, FINGERPRINT_HEX + 1);
	operator_keys_free(k);
	return 0;
}

struct key_set {
	char *paths[OPERATOR_KEYS_MAX];
	size_t n;
};

static void key_set_done(struct key_set *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->paths[i]);
}

/* The configured keys less the removed ones plus the added ones, each refusal naming the file. */
static int key_set_make(struct store *s, const struct operator_keys *cur, char *const *add, size_t n_add,
			char *const *rm, size_t n_rm, struct key_set *ret, char *what, size_t what_size)
{
	bool gone[OPERATOR_KEYS_MAX] = {};
	char fp[FINGERPRINT_HEX + 1];
	size_t l = 0;

	for (size_t i = 0; i < n_rm; i++) {
		size_t j;

		if (fingerprint_of(rm[i], fp) < 0)
			return 1;
		for (j = 0; j < cur->n && !streq(cur->key[j].fingerprint, fp); j++)
			;
		if (j == cur->n)
			return admin_denied(s, "operator-rotate", "operator key '%s' (%.16s) is not configured: nothing to remove",
					    rm[i], fp);
		gone[j] = true;
		l += (size_t)snprintf(what + l, l < what_size ? what_size - l : 0, "%sremoved %.16s (%s)", l ? ", " : "", fp,
				      cur->key[j].path);
	}
	for (size_t j = 0; j < cur->n; j++)
		if (!gone[j] && !(ret->paths[ret->n++] = strdup(cur->key[j].path)))
			return admin_refuse("out of memory");
	for (size_t i = 0; i < n_add; i++) {
		char abs[PATH_MAX];

		if (fingerprint_of(add[i], fp) < 0)
			return 1;
		/* A key rotated to must be a new one: the same key again is still one operator. */
		for (size_t j = 0; j < cur->n; j++)
			if (streq(cur->key[j].fingerprint, fp))
				return admin_denied(s, "operator-rotate",
						    "operator key '%s' (%.16s) is already in use: it is the configured '%s'%s",
					      add[i], fp, cur->key[j].path, gone[j] ? ", which this rotation removes" : "");
		if (ret->n == OPERATOR_KEYS_CONFIG_MAX)
			return admin_denied(s, "operator-rotate", "more than %d operator keys", OPERATOR_KEYS_CONFIG_MAX);
		/* The server reads it from its own working directory. */
		if (!realpath(add[i], abs))
			return admin_refuse("cannot resolve '%s': %m", add[i]);
		if (!(ret->paths[ret->n++] = strdup(abs)))
			return admin_refuse("out of memory");
		l += (size_t)snprintf(what + l, l < what_size ? what_size - l : 0, "%sadded %.16s (%s)", l ? ", " : "", fp,
				      abs);
	}
	return 0;
}

/* The stored signature entries with the new ones appended, each key's once. */
static int signatures_merge(const char *stored, const char *fresh, char **ret)
{
	_cleanup_json_ json_object *a = json_tokener_parse(stored), *b = json_tokener_parse(fresh);

	if (!a || !b || !json_object_is_type(a, json_type_array) || !json_object_is_type(b, json_type_array))
		return -EBADMSG;
	for (size_t i = 0; i < json_object_array_length(b); i++) {
		json_object *e = json_object_array_get_idx(b, i), *k, *o;
		bool have = false;

		json_object_object_get_ex(e, "key", &k);
		for (size_t j = 0; j < json_object_array_length(a); j++)
			if (json_object_object_get_ex(json_object_array_get_idx(a, j), "key", &o) &&
			    streq(json_object_get_string(o), json_object_get_string(k)))
				have = true;
		if (!have && json_object_array_add(a, json_object_get(e)) < 0)
			return -ENOMEM;
	}
	*ret = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	return *ret ? 0 : -ENOMEM;
}

/* The given signatures over the policy text, each under some key of the new set. */
static int signatures_read(struct store *s, const struct operator_keys *k, const char *text, size_t size,
			   char *const *paths, size_t n, char **ret)
{
	_cleanup_free_ struct policy_signature *sigs = calloc(n ? n : 1, sizeof(*sigs));
	size_t m = 0;

	if (!sigs)
		return admin_refuse("out of memory");
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ uint8_t *sig = NULL;
		size_t sig_size;
		int key, r = read_file(paths[i], SIGNATURE_MAX, &sig, &sig_size);

		if (r < 0)
			return admin_refuse("cannot read signature '%s': %s", paths[i], strerror(-r));
		if ((key = operator_key_find(k, text, size, sig, sig_size)) < 0)
			return admin_denied(s, "operator-rotate",
					    "signature '%s' does not verify over the policy in force under any key of the new set",
				      paths[i]);
		sigs[m] = (struct policy_signature){ .key = (size_t)key, .size = sig_size };
		memcpy(sigs[m++].sig, sig, sig_size);
	}
	if (policy_signatures_format(k, sigs, m, ret) < 0)
		return admin_refuse("out of memory");
	return 0;
}

/* The configuration with operator_keys replaced, written beside and renamed over it. */
static int config_rewrite(const char *path, const struct key_set *keys)
{
	_cleanup_free_ uint8_t *text = NULL;
	_cleanup_json_ json_object *o = NULL, *a = json_object_new_array();
	char tmp[PATH_MAX];
	const char *out;
	struct stat st;
	size_t size;
	int r;

	if ((r = read_file(path, CONFIG_FILE_MAX, &text, &size)) < 0 || stat(path, &st) < 0)
		return r < 0 ? r : -errno;
	if (!(o = json_tokener_parse((const char *)text)) || !a)
		return -EBADMSG;
	for (size_t i = 0; i < keys->n; i++)
		if (json_object_array_add(a, json_object_new_string(keys->paths[i])) < 0)
			return -ENOMEM;
	if (json_object_object_add(o, "operator_keys", TAKE_PTR(a)) < 0)
		return -ENOMEM;
	out = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	(void)unlink(tmp);
	if ((r = write_file_new(tmp, out, strlen(out), st.st_mode & 07777)) < 0)
		return r;
	/* Same owner as the one it replaces, so the server (its group) still reads it. */
	if ((r = file_owner_like(tmp, path)) < 0 || (r = file_replace(tmp, path)) < 0)
		(void)unlink(tmp);
	return r;
}

static int rotate(const char *config, const struct server_config *c, struct store *s, char *const *add, size_t n_add,
		  char *const *rm, size_t n_rm, char *const *sig_paths, size_t n_sigs)
{
	_cleanup_(key_set_done) struct key_set keys = {};
	_cleanup_free_ char *text = NULL, *stored = NULL, *fresh = NULL, *merged = NULL;
	struct operator_keys *nk = NULL;
	char what[WHY_MAX], record[2 * WHY_MAX], fps[OPERATOR_KEYS_MAX * 18] = "";
	int64_t version = 0;
	uint32_t signers = 0;
	size_t size = 0, l = 0;
	int r;

	what[0] = 0;
	if ((r = key_set_make(s, c->operators, add, n_add, rm, n_rm, &keys, what, sizeof(what))) != 0)
		return r;
	if ((int64_t)keys.n < c->policy_threshold)
		return admin_denied(s, "operator-rotate",
				    "%s would leave %zu operator key%s, fewer than policy_threshold %lld: add one first", what,
			      keys.n, keys.n == 1 ? "" : "s", (long long)c->policy_threshold);
	if (operator_keys_load(keys.paths, keys.n, &nk) < 0)
		return 1;
	r = store_policy_current(s, &version, &text, &size, &stored);
	if (r < 0 && r != -ENOENT) {
		operator_keys_free(nk);
		return admin_refuse("cannot read the policy: %s", strerror(-r));
	}
	if (r >= 0) {
		if ((r = signatures_read(s, nk, text, size, sig_paths, n_sigs, &fresh)) != 0 ||
		    (r = signatures_merge(stored, fresh, &merged)) < 0 ||
		    (r = policy_signers(nk, text, size, merged, &signers)) < 0) {
			operator_keys_free(nk);
			return r > 0 ? r : admin_refuse("the stored signatures of policy version %lld do not parse", (long long)version);
		}
		for (size_t i = 0; i < nk->n; i++)
			if (signers & (1u << i))
				l += (size_t)snprintf(fps + l, sizeof(fps) - l, "%s%.16s", l ? ", " : "", nk->key[i].fingerprint);
		if (__builtin_popcount(signers) < c->policy_threshold) {
			operator_keys_free(nk);
			return admin_denied(s, "operator-rotate",
					    "policy version %lld would be signed by %d of the required %lld keys of the new set "
				      "(%s): sign it with the new keys (--signature)", (long long)version,
				      __builtin_popcount(signers), (long long)c->policy_threshold, l ? fps : "none");
		}
	}
	operator_keys_free(nk);
	if (version)
		snprintf(record, sizeof(record), "operator keys: %s; policy version %lld re-signed by %s", what,
			 (long long)version, fps);
	else
		snprintf(record, sizeof(record), "operator keys: %s; no policy loaded to re-sign", what);
	if ((r = store_begin(s)) < 0)
		return admin_refuse("cannot write to the store: %s", strerror(-r));
	if (version)
		r = store_policy_resign(s, version, merged);
	if (r >= 0)
		r = admin_audit(s, "operator-rotate", "allow", record);
	if (r >= 0)
		r = store_commit(s);
	if (r < 0) {
		store_rollback(s);
		return admin_refuse("operator keys not rotated: %s", strerror(-r));
	}
	if ((r = config_rewrite(config, &keys)) < 0)
		return admin_refuse("the policy is re-signed, but '%s' cannot be rewritten: %s (run this again, or set "
			      "operator_keys there yourself)", config, strerror(-r));
	printf("%s\nconfiguration '%s' updated: reload the server (systemctl reload keystrap-server)\n", record, config);
	return 0;
}

int cmd_operator(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "add", required_argument, NULL, 'a' },
					      { "remove", required_argument, NULL, 'r' },
					      { "signature", required_argument, NULL, 's' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	_cleanup_server_config_ struct server_config *c = NULL;
	_cleanup_store_ struct store *s = NULL;
	char *add[OPERATOR_KEYS_MAX], *rm[OPERATOR_KEYS_MAX], *sigs[OPERATOR_KEYS_MAX];
	size_t n_add = 0, n_rm = 0, n_sigs = 0;
	const char *config = NULL;
	int o, r;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'a':
		case 'r':
		case 's':
			if ((o == 'a' ? n_add : o == 'r' ? n_rm : n_sigs) == OPERATOR_KEYS_MAX)
				return admin_refuse("more than %d --%s", OPERATOR_KEYS_MAX,
					      o == 'a' ? "add" : o == 'r' ? "remove" : "signature");
			if (o == 'a')
				add[n_add++] = optarg;
			else if (o == 'r')
				rm[n_rm++] = optarg;
			else
				sigs[n_sigs++] = optarg;
			break;
		case 'h':
			printf("Usage: %s\n", usage);
			return EXIT_HELP;
		default:
			goto bad;
		}
	if (!config || argc - optind != 1 || !streq(argv[optind], "rotate") || n_add + n_rm == 0)
		goto bad;
	if ((r = admin_load(config, &c, &s)) != 0)
		return r;
	return rotate(config, c, s, add, n_add, rm, n_rm, sigs, n_sigs);
bad:
	fprintf(stderr, "Usage: %s\n", usage);
	return EXIT_USAGE;
}
