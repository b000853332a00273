/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The policy document's strict parser (the format is in keystrap-server(8)). Pure: no I/O and
 * no clock, so tests/fuzz/fuzz-policy.c can feed it anything. Every refusal is one line naming
 * the field; the signatures that make a document a policy are checked elsewhere (operator.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "encode.h"
#include "json-cleanup.h"
#include "policy.h"

#define VERSION_MAX 1000000000000000LL
#define LIFETIME_MIN 60
#define LIFETIME_MAX (90LL * 86400)
#define REFERENCE_PCRS 16 /* PCRs 0-15: firmware, boot loader and initrd measurements */

void policy_free(struct policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < PCR_COUNT; i++)
		free(p->allowed[i]);
	for (size_t i = 0; i < p->n_groups; i++)
		free(p->groups[i].secrets);
	free(p->groups);
	free(p);
}

static int get(json_object *o, const char *key, json_type type, const char *what, json_object **ret, char *reason)
{
	if (!json_object_object_get_ex(o, key, ret))
		return attest_fail(reason, "policy field '%s' is missing", key);
	if (!json_object_is_type(*ret, type))
		return attest_fail(reason, "policy field '%s' is not %s", key, what);
	return 0;
}

static int get_int(json_object *o, const char *key, int64_t min, int64_t max, int64_t *ret, char *reason)
{
	json_object *v;
	int r = get(o, key, json_type_int, "a whole number", &v, reason);

	if (r < 0)
		return r;
	*ret = json_object_get_int64(v);
	if (*ret < min || *ret > max)
		return attest_fail(reason, "policy field '%s' is not a number from %lld to %lld", key, (long long)min,
			    (long long)max);
	return 0;
}

/* "2027-01-31T00:00:00Z" and nothing else: one spelling per instant, UTC only. */
static int get_time(json_object *o, const char *key, int64_t *ret_us, char *reason)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
	json_object *v;
	const char *s;
	struct tm tm = {};
	char back[sizeof(shape)];
	time_t t;
	int r = get(o, key, json_type_string, "a string", &v, reason);

	if (r < 0)
		return r;
	s = json_object_get_string(v);
	if (strlen(s) != sizeof(shape) - 1)
		goto bad;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
			goto bad;
	if (!strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm))
		goto bad;
	t = timegm(&tm);
	/* Round trip: refuses 2027-02-30 and 25:00, which strptime or timegm would bend. */
	if (t == (time_t)-1 || !gmtime_r(&t, &tm) || strftime(back, sizeof(back), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0 ||
	    !streq(back, s))
		goto bad;
	*ret_us = (int64_t)t * 1000000;
	return 0;
bad:
	return attest_fail(reason, "policy field '%s' is not a UTC time like 2027-01-31T00:00:00Z", key);
}

bool policy_version_valid(const char *s)
{
	bool digit = false;

	if (!*s || strlen(s) > ATTEST_VERSION_MAX)
		return false;
	for (; *s; s++) {
		if (*s == '.' && digit)
			digit = false;
		else if (*s >= '0' && *s <= '9')
			digit = true;
		else
			return false;
	}
	return digit;
}

int policy_version_compare(const char *a, const char *b)
{
	return strverscmp(a, b);
}

/* "0".."max-1", one spelling each. */
static int pcr_key(const char *s, int max)
{
	int v = 0;

	if (!s[0] || strlen(s) > 2 || (s[0] == '0' && s[1]))
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v < max ? v : -1;
}

static int digest(json_object *v, const struct pcr_bank *bank, uint8_t *ret)
{
	if (!json_object_is_type(v, json_type_string) || (size_t)json_object_get_string_len(v) != 2u * bank->size ||
	    hex_decode(json_object_get_string(v), ret, bank->size) < 0)
		return -EBADMSG;
	return 0;
}

static int get_reference(json_object *o, struct policy *p, char *reason)
{
	json_object *pcrs;
	int r = get(o, "reference_pcrs", json_type_object, "an object of PCR index to digest", &pcrs, reason);

	if (r < 0)
		return r;
	json_object_object_foreach(pcrs, key, val)
	{
		int i = pcr_key(key, REFERENCE_PCRS);

		if (i < 0)
			return attest_fail(reason, "policy field 'reference_pcrs' has key '%.8s', not a PCR from 0 to 15", key);
		if (digest(val, p->bank, p->reference[i]) < 0)
			return attest_fail(reason, "policy field 'reference_pcrs' PCR %d is not a %s digest in hex", i,
				    p->bank->name);
		p->value_mask |= 1u << i;
	}
	return 0;
}

static int get_events(json_object *o, struct policy *p, char *reason)
{
	json_object *pcrs;

	if (!json_object_object_get_ex(o, "allowed_events", &pcrs))
		return 0;
	if (!json_object_is_type(pcrs, json_type_object))
		return attest_fail(reason, "policy field 'allowed_events' is not an object of PCR index to digests");
	json_object_object_foreach(pcrs, key, val)
	{
		int i = pcr_key(key, PCR_COUNT);
		size_t n;

		if (i < 0)
			return attest_fail(reason, "policy field 'allowed_events' has key '%.8s', not a PCR from 0 to %d", key,
				    PCR_COUNT - 1);
		if (p->value_mask & (1u << i))
			return attest_fail(reason, "policy field 'allowed_events' names PCR %d, which 'reference_pcrs' pins", i);
		if (!json_object_is_type(val, json_type_array) || (n = json_object_array_length(val)) == 0 ||
		    n > POLICY_EVENTS_MAX)
			return attest_fail(reason, "policy field 'allowed_events' PCR %d is not a list of 1 to %d digests", i,
				    POLICY_EVENTS_MAX);
		p->allowed[i] = calloc(n, sizeof(*p->allowed[i]));
		if (!p->allowed[i])
			return -ENOMEM;
		for (size_t j = 0; j < n; j++)
			if (digest(json_object_array_get_idx(val, j), p->bank, p->allowed[i][j]) < 0)
				return attest_fail(reason, "policy field 'allowed_events' PCR %d holds something other than %s digests in hex",
					    i, p->bank->name);
		p->n_allowed[i] = n;
		p->event_mask |= 1u << i;
	}
	return 0;
}

static int get_group(const char *name, json_object *val, struct policy_group *g, char *reason)
{
	json_object *list = NULL;
	size_t n;

	if (!keystrap_name_valid(name, strlen(name), sizeof(g->name) - 1))
		return attest_fail(reason, "policy field 'groups' has key '%.40s', not a group name ([A-Za-z0-9._-], at most %zu)",
			    name, sizeof(g->name) - 1);
	snprintf(g->name, sizeof(g->name), "%s", name);
	if (!json_object_is_type(val, json_type_object))
		return attest_fail(reason, "policy field 'groups' group '%s' is not an object", name);
	json_object_object_foreach(val, key, v)
	{
		if (!streq(key, "secrets"))
			return attest_fail(reason, "policy field 'groups' group '%s' has unknown field '%.40s'", name, key);
		list = v;
	}
	if (!list || !json_object_is_type(list, json_type_array) || (n = json_object_array_length(list)) > POLICY_SECRETS_MAX)
		return attest_fail(reason, "policy field 'groups' group '%s' has no 'secrets' list of at most %d names", name,
			    POLICY_SECRETS_MAX);
	g->secrets = calloc(n ? n : 1, sizeof(*g->secrets));
	if (!g->secrets)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(list, i);

		if (!json_object_is_type(s, json_type_string) || !secret_name_valid(json_object_get_string(s)))
			return attest_fail(reason, "policy field 'groups' group '%s' holds a secret name that is not [A-Za-z0-9._-], at most %zu",
				    name, sizeof(g->secrets[i]) - 1);
		for (size_t j = 0; j < i; j++)
			if (streq(g->secrets[j], json_object_get_string(s)))
				return attest_fail(reason, "policy field 'groups' group '%s' lists secret '%s' twice", name,
					    g->secrets[j]);
		snprintf(g->secrets[i], sizeof(g->secrets[i]), "%s", json_object_get_string(s));
	}
	g->n_secrets = n;
	return 0;
}

static int get_groups(json_object *o, struct policy *p, char *reason)
{
	json_object *groups;
	size_t n;
	int r;

	if (!json_object_object_get_ex(o, "groups", &groups))
		return 0;
	if (!json_object_is_type(groups, json_type_object) || (n = (size_t)json_object_object_length(groups)) > POLICY_GROUPS_MAX)
		return attest_fail(reason, "policy field 'groups' is not an object of at most %d groups", POLICY_GROUPS_MAX);
	p->groups = calloc(n ? n : 1, sizeof(*p->groups));
	if (!p->groups)
		return -ENOMEM;
	json_object_object_foreach(groups, key, val)
	{
		/* Counted before filling, so policy_free frees what a refusal leaves half-made. */
		r = get_group(key, val, &p->groups[p->n_groups++], reason);
		if (r < 0)
			return r;
	}
	return 0;
}

/* What a policy says of its own terms: not in a refusal's evidence, which has only the PCRs. */
static int get_terms(json_object *o, struct policy *p, char *reason)
{
	json_object *v;
	int r;

	if ((r = get_int(o, "version", 1, VERSION_MAX, &p->version, reason)) < 0 ||
	    (r = get_time(o, "expires", &p->expires_us, reason)) < 0 ||
	    (r = get(o, "min_keystrap_version", json_type_string, "a string", &v, reason)) < 0)
		return r;
	if (!policy_version_valid(json_object_get_string(v)))
		return attest_fail(reason, "policy field 'min_keystrap_version' is not a dotted version like 0.1.0");
	snprintf(p->min_version, sizeof(p->min_version), "%s", json_object_get_string(v));
	return get_int(o, "credential_lifetime", LIFETIME_MIN, LIFETIME_MAX, &p->credential_lifetime, reason);
}

/* A policy (evidence false) or a refusal's evidence, whose fields are a policy's PCR fields alone. */
static int parse(const char *json, size_t size, bool evidence, struct policy **ret, char *reason)
{
	static const char *const policy_fields[] = { "version", "expires", "min_keystrap_version", "credential_lifetime",
						     "pcr_bank", "reference_pcrs", "allowed_events", "groups", NULL };
	static const char *const evidence_fields[] = { "pcr_bank", "reference_pcrs", "allowed_events", NULL };
	_cleanup_policy_ struct policy *p = NULL;
	json_object *o = NULL, *v;
	int r;

	r = attest_json_object(json, size, evidence ? evidence_fields : policy_fields, &o, reason);
	if (r < 0)
		return r;
	p = calloc(1, sizeof(*p));
	if (!p) {
		json_object_put(o);
		return -ENOMEM;
	}
	if ((!evidence && (r = get_terms(o, p, reason)) < 0) ||
	    (r = get(o, "pcr_bank", json_type_string, "a string", &v, reason)) < 0)
		goto out;
	if (!(p->bank = pcr_bank_by_name(json_object_get_string(v)))) {
		r = attest_fail(reason, "policy field 'pcr_bank' names no known PCR bank");
		goto out;
	}
	if ((r = get_reference(o, p, reason)) < 0 || (r = get_events(o, p, reason)) < 0 ||
	    (!evidence && (r = get_groups(o, p, reason)) < 0))
		goto out;
	p->mask = p->value_mask | p->event_mask;
	if (!p->mask && !evidence) {
		r = attest_fail(reason, "policy field 'reference_pcrs' is empty and no 'allowed_events' are given");
		goto out;
	}
	*ret = TAKE_PTR(p);
	r = 0;
out:
	json_object_put(o);
	return r;
}

int policy_parse(const char *json, size_t size, struct policy **ret, char reason[ATTEST_REASON_MAX])
{
	return parse(json, size, false, ret, reason);
}

int policy_evidence_parse(const char *json, size_t size, struct policy **ret, char reason[ATTEST_REASON_MAX])
{
	return parse(json, size, true, ret, reason);
}

const struct policy_group *policy_group(const struct policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_groups; i++)
		if (streq(p->groups[i].name, name))
			return &p->groups[i];
	return NULL;
}

bool policy_event_allowed(const struct policy *p, unsigned pcr, const uint8_t *digest)
{
	if (pcr >= PCR_COUNT || !(p->event_mask & (1u << pcr)))
		return false;
	for (size_t j = 0; j < p->n_allowed[pcr]; j++)
		if (memcmp(digest, p->allowed[pcr][j], p->bank->size) == 0)
			return true;
	return false;
}

static json_object *hex_string(const struct pcr_bank *bank, const uint8_t *d)
{
	char hex[2 * PCR_DIGEST_MAX + 1];

	hex_encode(d, bank->size, hex);
	return json_object_new_string(hex);
}

/* ev's events of one PCR that cur does not allow, each once, appended to list. */
static int draft_events(const struct policy *cur, const struct policy *ev, unsigned pcr, json_object *list,
			size_t *ret_added, char *reason)
{
	size_t added = 0;

	for (size_t j = 0; j < ev->n_allowed[pcr]; j++) {
		bool again = false;

		if (policy_event_allowed(cur, pcr, ev->allowed[pcr][j]))
			continue;
		for (size_t k = 0; k < j && !again; k++)
			again = memcmp(ev->allowed[pcr][k], ev->allowed[pcr][j], cur->bank->size) == 0;
		if (again)
			continue;
		if (cur->n_allowed[pcr] + added >= POLICY_EVENTS_MAX)
			return attest_fail(reason, "PCR %u would allow more than %d events: edit policy %lld by hand", pcr,
				    POLICY_EVENTS_MAX, (long long)cur->version);
		if (json_object_array_add(list, hex_string(cur->bank, ev->allowed[pcr][j])) < 0)
			return -ENOMEM;
		added++;
	}
	*ret_added = added;
	return 0;
}

int policy_draft(const char *text, const struct policy *cur, const struct policy *ev, char **ret,
		 struct policy_draft_changes *ret_changes, char reason[ATTEST_REASON_MAX])
{
	_cleanup_json_ json_object *o = NULL;
	_cleanup_policy_ struct policy *check = NULL;
	struct policy_draft_changes c = {};
	json_object *refs, *events;
	char key[4], *out;
	const char *s;
	int r;

	if (ev->bank != cur->bank)
		return attest_fail(reason, "the refused attestation quoted %s PCRs and policy %lld uses %s: the node must "
			    "attest again", ev->bank->name, (long long)cur->version, cur->bank->name);
	/* cur was parsed from text: a JSON object holding reference_pcrs (allowed_events if it checks events). */
	o = json_tokener_parse(text);
	if (!o || !json_object_object_get_ex(o, "reference_pcrs", &refs))
		return -EBADMSG;
	if (json_object_object_add(o, "version", json_object_new_int64(cur->version + 1)) < 0)
		return -ENOMEM;
	for (unsigned i = 0; i < PCR_COUNT; i++) {
		if (!(cur->value_mask & ev->value_mask & (1u << i)) ||
		    memcmp(cur->reference[i], ev->reference[i], cur->bank->size) == 0)
			continue;
		snprintf(key, sizeof(key), "%u", i);
		if (json_object_object_add(refs, key, hex_string(cur->bank, ev->reference[i])) < 0)
			return -ENOMEM;
		c.replaced |= 1u << i;
	}
	for (unsigned i = 0; i < PCR_COUNT; i++) {
		json_object *list;

		/* A PCR the policy no longer checks by its events keeps what the policy says of it. */
		if (!(cur->event_mask & ev->event_mask & (1u << i)))
			continue;
		snprintf(key, sizeof(key), "%u", i);
		if (!json_object_object_get_ex(o, "allowed_events", &events) ||
		    !json_object_object_get_ex(events, key, &list))
			return -EBADMSG;
		if ((r = draft_events(cur, ev, i, list, &c.added[i], reason)) < 0)
			return r;
		c.n_added += c.added[i];
	}
	if (!c.replaced && !c.n_added)
		return attest_fail(reason, "it holds nothing policy %lld does not already allow", (long long)cur->version);
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!s || asprintf(&out, "%s\n", s) < 0)
		return -ENOMEM;
	/* What operators will sign must load: the same parser says so now. */
	if ((r = policy_parse(out, strlen(out), &check, reason)) < 0) {
		free(out);
		return r;
	}
	*ret = out;
	if (ret_changes)
		*ret_changes = c;
	return 0;
}

int policy_text_digest(const void *text, size_t size, uint8_t ret[32])
{
	return EVP_Digest(text, size, ret, NULL, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}
