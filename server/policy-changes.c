/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What changed from one policy to another, as one list: reference values added, removed or
 * changed per PCR, allowed events per PCR, groups and their secrets, expiry, lifetime, minimum
 * version, bank. `policy diff` prints it and the dashboard shows it for the policy in force
 * against the version before; who signed is the caller's (a store's, not the text's).
 */
#include <stdbool.h>
#include <string.h>

#include "encode.h"
#include "policy-cache.h"
#include "policy-changes.h"

json_object *policy_change_new(json_object *changes, const char *what, const char *change)
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

void policy_change_str(json_object *o, const char *key, const char *v)
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
	policy_change_str(o, key, hex);
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
			json_object *o = policy_change_new(changes, "event", change);

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
			o = policy_change_new(changes, "reference", "changed");
			add_int(o, "pcr", pcr);
			add_hex(o, "from", a->reference[pcr], a->bank->size);
			add_hex(o, "to", b->reference[pcr], b->bank->size);
		} else if (in_a != in_b) {
			const struct policy *p = in_b ? b : a;

			o = policy_change_new(changes, "reference", in_b ? "added" : "removed");
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
			o = policy_change_new(changes, "group", change);
			policy_change_str(o, "group", g->name);
		}
		for (size_t j = 0; j < g->n_secrets; j++)
			if (!secret_in(h, g->secrets[j])) {
				o = policy_change_new(changes, "secret", change);
				policy_change_str(o, "group", g->name);
				policy_change_str(o, "name", g->secrets[j]);
			}
	}
}

static void scalar_changes(const struct policy *a, const struct policy *b, json_object *changes)
{
	char from[21], to[21];
	json_object *o;

	if (a->expires_us != b->expires_us) {
		policy_time_format(a->expires_us, from);
		policy_time_format(b->expires_us, to);
		o = policy_change_new(changes, "expires", "changed");
		policy_change_str(o, "from", from);
		policy_change_str(o, "to", to);
	}
	if (a->credential_lifetime != b->credential_lifetime) {
		o = policy_change_new(changes, "credential_lifetime", "changed");
		add_int(o, "from", a->credential_lifetime);
		add_int(o, "to", b->credential_lifetime);
	}
	if (!streq(a->min_version, b->min_version)) {
		o = policy_change_new(changes, "min_keystrap_version", "changed");
		policy_change_str(o, "from", a->min_version);
		policy_change_str(o, "to", b->min_version);
	}
	if (a->bank != b->bank) {
		o = policy_change_new(changes, "pcr_bank", "changed");
		policy_change_str(o, "from", a->bank->name);
		policy_change_str(o, "to", b->bank->name);
	}
}

int policy_changes(const struct policy *a, const struct policy *b, json_object *changes)
{
	scalar_changes(a, b, changes);
	/* Digests of two banks do not compare: only say that the bank changed. */
	if (a->bank == b->bank)
		pcr_changes(a, b, changes);
	groups_missing(a, b, "removed", changes);
	groups_missing(b, a, "added", changes);
	return 0;
}
