/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server secret set|list|history|delete. A value comes from standard input (never
 * argv, which any local user can read in /proc), lives only in a secbuf, and goes into the
 * store sealed under the KEK (secrets.c); nothing here prints one. Set adds a version, delete
 * wipes every version's value; both are audit records naming the secret, the version and the
 * size, never the value.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "json-cleanup.h"
#include "log.h"
#include "payload.h"
#include "policy-cache.h"
#include "policy.h"
#include "secbuf.h"
#include "server-config.h"
#include "store.h"

static const char usage[] = "keystrap-server secret set NAME --config FILE   (the value is read from standard input)\n"
			    "       keystrap-server secret list [--json] --config FILE\n"
			    "       keystrap-server secret history NAME [--json] --config FILE\n"
			    "       keystrap-server secret delete NAME --config FILE";

/* A terminal gets a prompt without echo; anything else is read to EOF, byte for byte. */
static int read_value(struct secbuf **ret)
{
	if (isatty(STDIN_FILENO))
		return secbuf_read_line(STDIN_FILENO, "Secret value: ", SECRET_VALUE_MAX, ret);
	return secbuf_read_file("/dev/stdin", SECRET_VALUE_MAX, ret);
}

static int fail(const char *name, const char *what, int r)
{
	fprintf(stderr, "keystrap-server: cannot %s secret '%s': %s\n", what, name,
		r == -EKEYREJECTED ? "the store's KEK changed since this command opened it (a rotation ran): try again"
				   : strerror(-r));
	return 1;
}

static int audit(struct store *s, const char *action, const char *reason)
{
	struct audit_rec a = { .time_us = now_usec(), .peer = "local", .ek_hash = "", .node_id = "",
			       .action = action, .decision = "allow", .reasons = reason };

	return store_audit_append(s, &a);
}

static int set(struct store *s, const char *name)
{
	_cleanup_secbuf_ struct secbuf *value = NULL;
	char who[64], reason[192];
	int64_t version;
	int r;

	r = read_value(&value);
	if (r == -EFBIG || r == -ENOBUFS) {
		fprintf(stderr, "keystrap-server: the value of secret '%s' on standard input is larger than %d bytes\n",
			name, SECRET_VALUE_MAX);
		return 1;
	}
	if (r == -ENODATA || (r >= 0 && value->size == 0)) {
		fprintf(stderr, "keystrap-server: the value of secret '%s' on standard input is empty\n", name);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "keystrap-server: cannot read the value of secret '%s': %s\n", name, strerror(-r));
		return 1;
	}
	admin_operator(who, sizeof(who));
	if ((r = store_begin(s)) < 0 || (r = store_secret_put(s, name, value, now_usec(), &version)) < 0)
		goto fail;
	snprintf(reason, sizeof(reason), "secret %s version %lld set (%zu bytes) by %s", name, (long long)version,
		 value->size, who);
	if ((r = audit(s, "secret-set", reason)) < 0 || (r = store_commit(s)) < 0)
		goto fail;
	printf("secret %s version %lld stored (%zu bytes)\n", name, (long long)version, value->size);
	return 0;
fail:
	store_rollback(s);
	return fail(name, "store", r);
}

static json_object *info_json(const struct secret_info *i, bool with_name)
{
	json_object *o = json_object_new_object();
	char when[21];

	if (!o)
		return NULL;
	if (with_name)
		json_object_object_add(o, "name", json_object_new_string(i->name));
	json_object_object_add(o, "version", json_object_new_int64(i->version));
	policy_time_format(i->created_us, when);
	json_object_object_add(o, "set", json_object_new_string(when));
	json_object_object_add(o, "set_us", json_object_new_int64(i->created_us));
	json_object_object_add(o, "size", json_object_new_int64(i->size));
	if (i->deleted_us) {
		policy_time_format(i->deleted_us, when);
		json_object_object_add(o, "deleted", json_object_new_string(when));
	} else
		json_object_object_add(o, "deleted", NULL);
	return o;
}

/* secret list's columns, under a header line. */
#define LIST_FORMAT "%-32s %-20s %7lld %7lld\n"

struct listing {
	json_object *json; /* an array, or NULL for text */
	bool with_name;
	int64_t newest;    /* history: the version a node gets (0: none) */
	size_t shown;
};

static int show_one(const struct secret_info *i, void *userdata)
{
	struct listing *l = userdata;
	char when[21], deleted[21];

	/* list shows what a node can get; history shows deleted versions too. */
	if (l->with_name && i->deleted_us)
		return 0;
	l->shown++;
	if (l->json) {
		json_object *o = info_json(i, l->with_name);

		if (!o || json_object_array_add(l->json, o) < 0) {
			json_object_put(o);
			return -ENOMEM;
		}
		return 0;
	}
	policy_time_format(i->created_us, when);
	if (l->with_name)
		printf(LIST_FORMAT, i->name, when, (long long)i->version, (long long)i->size);
	else if (i->deleted_us) {
		policy_time_format(i->deleted_us, deleted);
		printf("version %lld set %s (%lld bytes) deleted %s\n", (long long)i->version, when, (long long)i->size,
		       deleted);
	} else
		printf("version %lld set %s (%lld bytes)%s\n", (long long)i->version, when, (long long)i->size,
		       i->version == l->newest ? " current" : "");
	return 0;
}

static int newest_of(const struct secret_info *i, void *userdata)
{
	if (!i->deleted_us)
		*(int64_t *)userdata = i->version;
	return 0;
}

/* list: each secret a node can get, its current version; history NAME: every version of it. */
static int show(struct store *s, const char *name, bool json)
{
	_cleanup_json_ json_object *all = json ? json_object_new_array() : NULL;
	struct listing l = { .json = all, .with_name = !name };
	int r;

	if (json && !all)
		return fail(name ? name : "*", "list", -ENOMEM);
	if (!name && !json)
		printf("%-32s %-20s %7s %7s\n", "NAME", "SET", "VERSION", "BYTES");
	if (name && (r = store_secret_foreach(s, name, newest_of, &l.newest)) < 0)
		return fail(name, "list", r);
	if ((r = store_secret_foreach(s, name, show_one, &l)) < 0) {
		if (!name) {
			fprintf(stderr, "keystrap-server: cannot list the secrets: %s\n", strerror(-r));
			return 1;
		}
		return fail(name, "list", r);
	}
	if (name && l.shown == 0) {
		fprintf(stderr, "keystrap-server: no secret '%s' was ever set\n", name);
		return 1;
	}
	if (json)
		admin_json_print(all);
	return 0;
}

/* The group of the policy in force that names name, if any: deleting it would fail its nodes. */
static const char *named_by(struct store *s, const char *name, int64_t *ret_version)
{
	static char group[GROUP_MAX + 1];
	_cleanup_free_ char *text = NULL;
	_cleanup_policy_ struct policy *p = NULL;
	char reason[ATTEST_REASON_MAX];
	size_t size;

	if (store_policy_current(s, ret_version, &text, &size, NULL) < 0 || policy_parse(text, size, &p, reason) < 0)
		return NULL;
	for (size_t i = 0; i < p->n_groups; i++)
		for (size_t j = 0; j < p->groups[i].n_secrets; j++)
			if (streq(p->groups[i].secrets[j], name)) {
				snprintf(group, sizeof(group), "%s", p->groups[i].name);
				return group;
			}
	return NULL;
}

static int delete(struct store *s, const char *name)
{
	char who[64], reason[192];
	const char *group;
	int64_t n, version;
	int r;

	if ((r = store_begin(s)) < 0)
		goto fail;
	if ((group = named_by(s, name, &version))) {
		store_rollback(s);
		fprintf(stderr,
			"keystrap-server: secret '%s' is named by group '%s' of the policy in force (version %lld): "
			"load a policy without it first\n",
			name, group, (long long)version);
		return 1;
	}
	r = store_secret_delete(s, name, now_usec(), &n);
	if (r == -ENOENT) {
		store_rollback(s);
		fprintf(stderr, "keystrap-server: no secret '%s' is set\n", name);
		return 1;
	}
	admin_operator(who, sizeof(who));
	snprintf(reason, sizeof(reason), "secret %s deleted (%lld versions) by %s", name, (long long)n, who);
	if (r < 0 || (r = audit(s, "secret-delete", reason)) < 0 || (r = store_commit(s)) < 0)
		goto fail;
	printf("secret %s deleted (%lld versions)\n", name, (long long)n);
	return 0;
fail:
	store_rollback(s);
	return fail(name, "delete", r);
}

int cmd_secret(int argc, char **argv)
{
	_cleanup_store_ struct store *s = NULL;
	const char *verb, *name = NULL;
	bool json = false;
	int r;

	r = admin_open(argc, argv, usage, &(struct admin_options){ .json = &json }, &verb, &name, &s);
	if (r != 0)
		return r;
	if (name && !secret_name_valid(name)) {
		fprintf(stderr, "keystrap-server: '%s' is not a secret name ([A-Za-z0-9._-], at most %d)\n", name,
			NODE_SECRET_NAME_MAX);
		return 1;
	}
	if (streq(verb, "set") && name && !json)
		return set(s, name);
	if (streq(verb, "list") && !name)
		return show(s, NULL, json);
	if (streq(verb, "history") && name)
		return show(s, name, json);
	if (streq(verb, "delete") && name && !json)
		return delete(s, name);
	fprintf(stderr, "Usage: %s\n", usage);
	return EXIT_USAGE;
}
