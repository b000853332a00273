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

static json_object *change_new(json_object *changes, const char *what, const char *change)
{
	json_object *o = json_object_new_object();

	if (!o || json_object_array_add(changes, o) < 0) {
		json_object_put(o);
		return NULL;
	}
	json_object_object_add(o, "what", json_object_new_string(what));
	json_object_object_add(o, "change", json_object_new_string(change));
	return o;
}

static void add_str(json_object *o, const char *key, const char *v)
{
	if (o)
		json_object_object_add(o, key, json_object_new_string(v));
}

static void add_int(json_object *o, const char *key, int64_t v)
{
	if (o)
		json_object_object_add(o, key, json_object_new_int64(v));
}

static void add_hex(json_object *o, const char *key, const uint8_t *d, size_t n)
{
	char hex[2 * PCR_DIGEST_MAX + 1];

	hex_encode(d, n, hex);
	add_str(o, key, hex);
}

static bool event_in(const struct policy *p, unsigned pcr, const uint8_t *d)
{
	for (size_t i = 0; i < p->n_allowed[pcr]; i++)
		if (memcmp(p->allowed[pcr][i], d, p->bank->size) == 0)
			return true;
	return false;
}

static bool secret_in(const struct policy_group *g, const char *name)
{
	for (size_t i = 0; g && i < g->n_secrets; i++)
		if (streq(g->secrets[i], name))
			return true;
	return false;
}

/* Each event of a's allowed list for pcr that b lacks: change (added or removed). */
static void events_missing(const struct policy *a, const struct policy *b, unsigned pcr, const char *change,
			   json_object *changes)
{
	for (size_t i = 0; i < a->n_allowed[pcr]; i++)
		if (!(b->event_mask & (1u << pcr)) || !event_in(b, pcr, a->allowed[pcr][i])) {
			json_object *o = change_new(changes, "event", change);

			add_int(o, "pcr", pcr);
			add_hex(o, "digest", a->allowed[pcr][i], a->bank->size);
		}
}

static void pcr_changes(const struct policy *a, const struct policy *b, json_object *changes)
{
	for (unsigned pcr = 0; pcr < PCR_COUNT; pcr++) {
		bool in_a = a->value_mask & (1u << pcr), in_b = b->value_mask & (1u << pcr);
		json_object *o = NULL;

		if (in_a && in_b && memcmp(a->reference[pcr], b->reference[pcr], a->bank->size) != 0) {
			o = change_new(changes, "reference", "changed");
			add_int(o, "pcr", pcr);
			add_hex(o, "from", a->reference[pcr], a->bank->size);
			add_hex(o, "to", b->reference[pcr], b->bank->size);
		} else if (in_a != in_b) {
			const struct policy *p = in_b ? b : a;

			o = change_new(changes, "reference", in_b ? "added" : "removed");
			add_int(o, "pcr", pcr);
			add_hex(o, "value", p->reference[pcr], p->bank->size);
		}
		if (a->event_mask & (1u << pcr))
			events_missing(a, b, pcr, "removed", changes);
		if (b->event_mask & (1u << pcr))
			events_missing(b, a, pcr, "added", changes);
	}
}

/* Groups of a that b lacks (change), and secrets of a's groups that b's same group lacks. */
static void groups_missing(const struct policy *a, const struct policy *b, const char *change, json_object *changes)
{
	for (size_t i = 0; i < a->n_groups; i++) {
		const struct policy_group *g = &a->groups[i], *h = policy_group(b, g->name);
		json_object *o;

		if (!h) {
			o = change_new(changes, "group", change);
			add_str(o, "group", g->name);
		}
		for (size_t j = 0; j < g->n_secrets; j++)
			if (!secret_in(h, g->secrets[j])) {
				o = change_new(changes, "secret", change);
				add_str(o, "group", g->name);
				add_str(o, "name", g->secrets[j]);
			}
	}
}

static void signer_changes(const struct server_config *c, const struct side *a, const struct side *b,
			   json_object *changes)
{
	for (size_t i = 0; i < c->operators->n; i++) {
		bool in_a = a->signers & (1u << i), in_b = b->signers & (1u << i);
		json_object *o;

		if (in_a == in_b)
			continue;
		o = change_new(changes, "signer", in_b ? "added" : "removed");
		add_str(o, "fingerprint", c->operators->key[i].fingerprint);
		add_str(o, "path", c->operators->key[i].path);
	}
}

static void scalar_changes(const struct policy *a, const struct policy *b, json_object *changes)
{
	char from[21], to[21];
	json_object *o;

	if (a->expires_us != b->expires_us) {
		policy_time_format(a->expires_us, from);
		policy_time_format(b->expires_us, to);
		o = change_new(changes, "expires", "changed");
		add_str(o, "from", from);
		add_str(o, "to", to);
	}
	if (a->credential_lifetime != b->credential_lifetime) {
		o = change_new(changes, "credential_lifetime", "changed");
		add_int(o, "from", a->credential_lifetime);
		add_int(o, "to", b->credential_lifetime);
	}
	if (!streq(a->min_version, b->min_version)) {
		o = change_new(changes, "min_keystrap_version", "changed");
		add_str(o, "from", a->min_version);
		add_str(o, "to", b->min_version);
	}
	if (a->bank != b->bank) {
		o = change_new(changes, "pcr_bank", "changed");
		add_str(o, "from", a->bank->name);
		add_str(o, "to", b->bank->name);
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
	add_int(o, "version", d->version);
	add_str(o, "source", d->stored ? "store" : "file");
	if (!d->stored)
		add_str(o, "file", d->arg);
	add_str(o, "expires", when);
	json_object_object_add(o, "trusted", d->stored ? json_object_new_boolean(!d->trust[0]) : NULL);
	if (d->trust[0])
		add_str(o, "refused", d->trust);
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
	if (a.p->bank != b.p->bank) {
		/* Digests of two banks do not compare: only say that the bank changed. */
		scalar_changes(a.p, b.p, changes);
	} else {
		scalar_changes(a.p, b.p, changes);
		pcr_changes(a.p, b.p, changes);
	}
	groups_missing(a.p, b.p, "removed", changes);
	groups_missing(b.p, a.p, "added", changes);
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
