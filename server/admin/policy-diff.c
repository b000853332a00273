/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server policy diff A B: what a reviewer must see before signing B, or what changed
 * between two versions in the store: reference values added, removed or changed per PCR,
 * allowed events per PCR, groups and their secrets, expiry, lifetime, and who signed. One list
 * of changes makes both the text and the --json output, so they cannot disagree.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "encode.h"
#include "fileio.h"
#include "json-cleanup.h"
#include "operator.h"
#include "policy-cache.h"
#include "policy-changes.h"
#include "policy.h"

/* One side of the diff: a stored version (trust-checked, for its signers) or a file (unsigned). */
struct side {
	const char *arg;
	bool stored;
	int64_t version;
	struct policy *p;
	uint32_t signers;
	char trust[ATTEST_REASON_MAX]; /* why a stored version is not trusted; empty: trusted */
};

static void side_done(struct side *d)
{
	policy_free(d->p);
}

static bool all_digits(const char *s)
{
	return s[0] && strspn(s, "0123456789") == strlen(s) && strlen(s) <= 18;
}

/* 0, or 1 after one line saying what A or B is not. */
static int side_load(const struct server_config *c, struct store *s, const char *arg, struct side *ret)
{
	_cleanup_free_ char *text = NULL, *sigs = NULL;
	char reason[ATTEST_REASON_MAX];
	size_t size;
	int r;

	ret->arg = arg;
	if (all_digits(arg)) {
		ret->stored = true;
		ret->version = strtoll(arg, NULL, 10);
		r = store_policy_get(s, ret->version, &text, &size, &sigs);
		if (r == -ENOENT) {
			fprintf(stderr, "keystrap-server: no policy version %s in the store (policy show: the current one)\n",
				arg);
			return 1;
		}
		if (r < 0) {
			fprintf(stderr, "keystrap-server: cannot read policy version %s: %s\n", arg, strerror(-r));
			return 1;
		}
		/* Who signed it, as the server would check it; a refused one is still shown, and said so. */
		r = policy_trust(c, ret->version, text, size, sigs, &ret->p, &ret->signers, ret->trust);
		if (r >= 0)
			return 0;
		if (r != -EKEYREJECTED && r != -EBADMSG)
			snprintf(ret->trust, sizeof(ret->trust), "%s", strerror(-r));
		ret->signers = 0;
	} else {
		r = read_file(arg, POLICY_FILE_MAX, (uint8_t **)&text, &size);
		if (r == -EFBIG) {
			fprintf(stderr, "keystrap-server: policy '%s' is larger than %d bytes\n", arg, POLICY_FILE_MAX);
			return 1;
		}
		if (r < 0) {
			fprintf(stderr, "keystrap-server: cannot read policy '%s': %s\n", arg, strerror(-r));
			return 1;
		}
	}
	r = policy_parse(text, size, &ret->p, reason);
	if (r < 0) {
		fprintf(stderr, "keystrap-server: policy '%s' is not valid: %s\n", arg,
			r == -EBADMSG ? reason : strerror(-r));
		return 1;
	}
	if (!ret->stored)
		ret->version = ret->p->version;
	return 0;
}

static void signer_changes(const struct server_config *c, const struct side *a, const struct side *b,
			   json_object *changes)
{
	for (size_t i = 0; i < c->operators->n; i++) {
		bool in_a = a->signers & (1u << i), in_b = b->signers & (1u << i);
		json_object *o;

		if (in_a == in_b)
			continue;
		o = policy_change_new(changes, "signer", in_b ? "added" : "removed");
		policy_change_str(o, "fingerprint", c->operators->key[i].fingerprint);
		policy_change_str(o, "path", c->operators->key[i].path);
	}
}

static json_object *side_json(const struct server_config *c, const struct side *d)
{
	json_object *o = json_object_new_object(), *by = json_object_new_array();
	char when[21];

	if (!o || !by) {
		json_object_put(o);
		json_object_put(by);
		return NULL;
	}
	policy_time_format(d->p->expires_us, when);
	json_object_object_add(o, "version", json_object_new_int64(d->version));
	policy_change_str(o, "source", d->stored ? "store" : "file");
	if (!d->stored)
		policy_change_str(o, "file", d->arg);
	policy_change_str(o, "expires", when);
	json_object_object_add(o, "trusted", d->stored ? json_object_new_boolean(!d->trust[0]) : NULL);
	if (d->trust[0])
		policy_change_str(o, "refused", d->trust);
	for (size_t i = 0; i < c->operators->n; i++)
		if (d->signers & (1u << i))
			json_object_array_add(by, json_object_new_string(c->operators->key[i].fingerprint));
	json_object_object_add(o, "signed_by", by);
	return o;
}

static const char *get(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static void print_side(const char *label, const struct side *d)
{
	if (d->stored)
		printf("%s policy version %lld (store, %s)\n", label, (long long)d->version,
		       d->trust[0] ? d->trust : "trusted");
	else
		printf("%s policy version %lld (file %s, unsigned)\n", label, (long long)d->version, d->arg);
}

/* One line a change, for a reviewer: "PCR 7 reference value changed: 1a2b... -> 3c4d...". */
static void print_change(json_object *o)
{
	const char *what = get(o, "what"), *change = get(o, "change");

	if (streq(what, "reference") && streq(change, "changed"))
		printf("  PCR %s reference value changed: %s -> %s\n", get(o, "pcr"), get(o, "from"), get(o, "to"));
	else if (streq(what, "reference"))
		printf("  PCR %s reference value %s: %s\n", get(o, "pcr"), change, get(o, "value"));
	else if (streq(what, "event"))
		printf("  PCR %s allowed event %s: %s\n", get(o, "pcr"), change, get(o, "digest"));
	else if (streq(what, "group"))
		printf("  group %s %s\n", get(o, "group"), change);
	else if (streq(what, "secret"))
		printf("  group %s secret %s %s\n", get(o, "group"), get(o, "name"), change);
	else if (streq(what, "signer"))
		printf("  signer %s %s (%s)\n", get(o, "fingerprint"), change, get(o, "path"));
	else
		printf("  %s changed: %s -> %s\n", what, get(o, "from"), get(o, "to"));
}

int admin_policy_diff(const struct server_config *c, struct store *s, const char *a_arg, const char *b_arg, bool json)
{
	_cleanup_(side_done) struct side a = {}, b = {};
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object *changes = json_object_new_array();
	size_t n;

	if (!o || !changes || json_object_object_add(o, "changes", changes) < 0) {
		json_object_put(changes);
		fprintf(stderr, "keystrap-server: out of memory\n");
		return 1;
	}
	if (side_load(c, s, a_arg, &a) || side_load(c, s, b_arg, &b))
		return 1;
	policy_changes(a.p, b.p, changes);
	signer_changes(c, &a, &b, changes);
	n = json_object_array_length(changes);
	if (json) {
		json_object_object_add(o, "from", side_json(c, &a));
		json_object_object_add(o, "to", side_json(c, &b));
		admin_json_print(o);
		return 0;
	}
	print_side("from", &a);
	print_side("to  ", &b);
	if (n == 0)
		printf("no differences\n");
	for (size_t i = 0; i < n; i++)
		print_change(json_object_array_get_idx(changes, i));
	return 0;
}
