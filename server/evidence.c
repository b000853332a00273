/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>
#include <tss2/tss2_mu.h>

#include "credential.h"
#include "encode.h"
#include "evidence.h"
#include "json-cleanup.h"
#include "payload.h"
#include "secbuf.h"

void evidence_done(struct evidence *e)
{
	eventlog_free(e->firmware);
	cel_done(&e->cel);
	for (size_t i = 0; i < PCR_COUNT; i++)
		free(e->events[i]);
	memset(e, 0, sizeof(*e));
}

static int note_event(struct evidence *e, unsigned pcr, const uint8_t *digest, size_t size)
{
	uint8_t(*p)[PCR_DIGEST_MAX];

	if (pcr >= PCR_COUNT)
		return 0;
	p = reallocarray(e->events[pcr], e->n_events[pcr] + 1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	memset(p[e->n_events[pcr]], 0, PCR_DIGEST_MAX);
	memcpy(p[e->n_events[pcr]++], digest, size);
	e->events[pcr] = p;
	return 0;
}

/* The events' digests in bank, for the allowed-events check (the replay itself is the parsers'). */
static int collect(struct evidence *e, const struct pcr_bank *bank)
{
	int r;

	for (size_t i = 0; e->firmware && i < e->firmware->n_events; i++) {
		const struct eventlog_event *ev = &e->firmware->events[i];

		if (ev->type == EV_NO_ACTION)
			continue;
		for (unsigned j = 0; j < ev->n_digests; j++)
			if (ev->digests[j].bank == bank &&
			    (r = note_event(e, ev->pcr, e->firmware->data + ev->digests[j].offset, bank->size)) < 0)
				return r;
	}
	for (size_t i = 0; i < e->cel.n_records; i++) {
		const struct cel_record *rec = &e->cel.records[i];

		for (unsigned j = 0; j < rec->n_digests; j++)
			if (rec->digests[j].bank == bank && (r = note_event(e, rec->pcr, rec->digests[j].value, bank->size)) < 0)
				return r;
	}
	return 0;
}

int evidence_logs_replay(const struct attest_finish *m, uint32_t banks, struct evidence *e,
			 char reason[ATTEST_REASON_MAX])
{
	char err[EVENTLOG_ERROR_MAX > CEL_ERROR_MAX ? EVENTLOG_ERROR_MAX : CEL_ERROR_MAX];
	int r;

	if (m->event_log_size) {
		r = eventlog_parse_banks(m->event_log, m->event_log_size, banks, &e->firmware, err);
		if (r == -EBADMSG)
			snprintf(reason, ATTEST_REASON_MAX, "firmware event log does not parse: %.150s", err);
		if (r < 0)
			return r;
		e->replay = e->firmware->replay;
	} else
		pcr_replay_init(&e->replay, banks, 0); /* no firmware log: the TPM started at locality 0 */
	if (m->cel_log_size) {
		r = cel_parse(&e->cel, 0, m->cel_log, m->cel_log_size, err);
		if (r == -EBADMSG)
			snprintf(reason, ATTEST_REASON_MAX, "measurement log does not parse: %.150s", err);
		if (r < 0)
			return r;
		if ((r = cel_replay(&e->cel, &e->replay)) < 0)
			return r;
	}
	return 0;
}

static int replay(const struct attest_finish *m, struct evidence *e, char *reason)
{
	size_t b = pcr_bank_index(m->bank);
	int r;

	/* The quoted bank only: no other bank's replay could be checked against anything. */
	if ((r = evidence_logs_replay(m, 1u << b, e, reason)) < 0)
		return r;
	for (unsigned i = 0; i < PCR_COUNT; i++) {
		if (!(m->mask & (1u << i)))
			continue;
		if (e->replay.unknown[b] & (1u << i)) {
			snprintf(reason, ATTEST_REASON_MAX, "event log has no %s digest for an event of PCR %u (offset %zu)",
				 m->bank->name, i, e->replay.unknown_offset[b][i]);
			return -EPERM;
		}
		if (memcmp(e->replay.values[b][i], m->pcr_values[i], m->bank->size) != 0) {
			char logs[2 * PCR_DIGEST_MAX + 1], quoted[2 * PCR_DIGEST_MAX + 1];

			hex_encode(e->replay.values[b][i], m->bank->size, logs);
			hex_encode(m->pcr_values[i], m->bank->size, quoted);
			snprintf(reason, ATTEST_REASON_MAX,
				 "event log does not replay to quoted PCR %u (%s): the logs give %s, the quote %s", i,
				 m->bank->name, logs, quoted);
			return -EPERM;
		}
	}
	return collect(e, m->bank);
}

int evidence_replay(const struct attest_finish *m, struct evidence *ret, char reason[ATTEST_REASON_MAX])
{
	int r;

	memset(ret, 0, sizeof(*ret));
	r = replay(m, ret, reason);
	if (r < 0)
		evidence_done(ret);
	return r;
}

/*
 * A refusal's one line: items joined by "; ", each whole or not at all, and a count of those
 * that did not fit (the stored evidence has them all).
 */
struct refusal_line {
	char *buf;
	size_t len;
	unsigned left_out;
};

#define LEFT_OUT_TAIL 96 /* what the line keeps free for its last words */

static void line_add(struct refusal_line *l, const char *fmt, ...) _printf_(2, 3);
static void line_add(struct refusal_line *l, const char *fmt, ...)
{
	char item[4 * PCR_DIGEST_MAX + 128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(item, sizeof(item), fmt, ap);
	va_end(ap);
	if (n < 0 || l->left_out || l->len + 2 + (size_t)n + LEFT_OUT_TAIL >= ATTEST_REASON_MAX) {
		l->left_out++;
		return;
	}
	l->len += (size_t)snprintf(l->buf + l->len, ATTEST_REASON_MAX - l->len, "%s%s", l->len ? "; " : "", item);
}

static void line_end(struct refusal_line *l)
{
	if (l->left_out)
		snprintf(l->buf + l->len, ATTEST_REASON_MAX - l->len,
			 "; and %u more (keystrap-server policy draft --from-node lists them)", l->left_out);
}

/* digest in hex, into an object under key, or appended to an array (key NULL). */
static int add_hex(json_object *o, const char *key, const uint8_t *d, size_t size)
{
	char hex[2 * PCR_DIGEST_MAX + 1];
	json_object *v;
	int r;

	hex_encode(d, size, hex);
	if (!(v = json_object_new_string(hex)))
		return -ENOMEM;
	r = key ? json_object_object_add(o, key, v) : json_object_array_add(o, v);
	if (r < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int add_list(json_object *o, unsigned pcr, json_object *list)
{
	char key[4];

	snprintf(key, sizeof(key), "%u", pcr);
	if (json_object_object_add(o, key, list) < 0) {
		json_object_put(list);
		return -ENOMEM;
	}
	return 0;
}

/*
 * What policy draft needs of a refusal: the quoted values of every PCR p pins, and for each
 * PCR p checks by events the digests it does not allow, each once, at most POLICY_EVENTS_MAX
 * in all (a draft can add no more), so the row stays small whatever a log holds.
 */
static int refusal_format(const struct policy *p, const struct attest_finish *m, const struct evidence *e,
			  char **ret)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object *values = json_object_new_object(), *events = json_object_new_object();
	size_t kept = 0;
	char *text;
	int r;

	if (!o || !values || !events) {
		json_object_put(values);
		json_object_put(events);
		return -ENOMEM;
	}
	json_object_object_add(o, "pcr_bank", json_object_new_string(p->bank->name));
	json_object_object_add(o, "reference_pcrs", values);
	json_object_object_add(o, "allowed_events", events);
	for (unsigned i = 0; i < PCR_COUNT; i++) {
		char key[4];

		snprintf(key, sizeof(key), "%u", i);
		if (p->value_mask & (1u << i) && (r = add_hex(values, key, m->pcr_values[i], p->bank->size)) < 0)
			return r;
	}
	for (unsigned i = 0; i < PCR_COUNT; i++) {
		json_object *list;

		if (!(p->event_mask & (1u << i)))
			continue;
		if (!(list = json_object_new_array()))
			return -ENOMEM;
		for (size_t j = 0; j < e->n_events[i] && kept < POLICY_EVENTS_MAX; j++) {
			const uint8_t *d = e->events[i][j];
			bool again = false;

			for (size_t k = 0; k < j && !again; k++)
				again = memcmp(e->events[i][k], d, p->bank->size) == 0;
			if (again || policy_event_allowed(p, i, d))
				continue;
			if ((r = add_hex(list, NULL, d, p->bank->size)) < 0) {
				json_object_put(list);
				return r;
			}
			kept++;
		}
		if (json_object_array_length(list) == 0)
			json_object_put(list);
		else if ((r = add_list(events, i, list)) < 0)
			return r;
	}
	if (!(text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN))))
		return -ENOMEM;
	*ret = text;
	return 0;
}

int evidence_judge(const struct policy *p, const struct attest_finish *m, const struct evidence *e,
		   char reason[ATTEST_REASON_MAX], char **ret_refused)
{
	struct refusal_line l = { .buf = reason };
	char is[2 * PCR_DIGEST_MAX + 1], wants[2 * PCR_DIGEST_MAX + 1];
	bool refused = false;
	int r;

	reason[0] = 0;
	/* e holds m's bank alone; handshake_finish refuses a quote in another bank than p's first. */
	if (p->bank != m->bank)
		return -EXDEV;
	for (unsigned i = 0; i < PCR_COUNT; i++) {
		if (!(p->value_mask & (1u << i)) || memcmp(m->pcr_values[i], p->reference[i], p->bank->size) == 0)
			continue;
		refused = true;
		hex_encode(m->pcr_values[i], p->bank->size, is);
		hex_encode(p->reference[i], p->bank->size, wants);
		line_add(&l, "PCR %u (%s) is %s, policy %lld wants %s", i, p->bank->name, is, (long long)p->version,
			 wants);
	}
	/* The events as well, whatever the values said: a draft from this refusal needs both. */
	for (unsigned i = 0; i < PCR_COUNT; i++)
		for (size_t j = 0; p->event_mask & (1u << i) && j < e->n_events[i]; j++) {
			if (policy_event_allowed(p, i, e->events[i][j]))
				continue;
			refused = true;
			hex_encode(e->events[i][j], p->bank->size, is);
			line_add(&l, "PCR %u event %zu (%s %s) is not allowed by policy %lld", i, j, p->bank->name, is,
				 (long long)p->version);
		}
	if (!refused)
		return 0;
	line_end(&l);
	if ((r = refusal_format(p, m, e, ret_refused)) < 0)
		return r;
	return 1;
}

int evidence_reason_next(const char **pos, struct evidence_named *ret)
{
	/* The scanf forms of line_add's two items above; widths are the buffers'. */
	for (const char *p = strstr(*pos, "PCR "); p; p = strstr(p + 1, "PCR ")) {
		struct evidence_named n = { .event = -1 };
		size_t event = 0;
		int end = 0;
		bool value = sscanf(p, "PCR %u (%15[a-z0-9]) is %128[0-9a-f], policy %lld wants %128[0-9a-f]%n", &n.pcr,
				    n.bank, n.is, &n.policy, n.wants, &end) == 5 && end > 0;

		if (!value && !(sscanf(p, "PCR %u event %zu (%15[a-z0-9] %128[0-9a-f]) is not allowed by policy %lld%n",
				       &n.pcr, &event, n.bank, n.is, &n.policy, &end) == 5 && end > 0 && event <= LONG_MAX))
			continue;
		if (n.pcr >= PCR_COUNT)
			continue;
		if (!value)
			n.event = (long)event;
		*pos = p + end;
		*ret = n;
		return 1;
	}
	return 0;
}

static void items_free(struct payload_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		secbuf_free((struct secbuf *)items[i].value);
	free(items);
}

int evidence_seal_key(const struct tpm_pub *ek, const TPM2B_NAME *ak_name, struct seal_key *ret)
{
	_cleanup_secbuf_ struct secbuf *key = secbuf_new(PAYLOAD_KEY_SIZE);
	int r;

	if (!key)
		return -ENOMEM;
	if (RAND_priv_bytes(key->data, PAYLOAD_KEY_SIZE) != 1)
		return -EIO;
	if ((r = credential_make(ek, ak_name, key->data, key->size, &ret->blob, &ret->seed)) < 0)
		return r;
	ret->key = TAKE_PTR(key);
	return 0;
}

void seal_key_done(struct seal_key *k)
{
	secbuf_free(TAKE_PTR(k->key));
}

static int seal(struct secbuf *plain, const struct tpm_pub *ek, const TPM2B_NAME *ak_name, struct seal_key *key,
		const char *session, struct attest_payload *ret)
{
	struct seal_key own __attribute__((cleanup(seal_key_done))) = {};
	size_t off = 0;
	int r;

	if (!key || !key->key) {
		if ((r = evidence_seal_key(ek, ak_name, &own)) < 0)
			return r;
		key = &own;
	}
	if ((r = payload_encrypt(key->key->data, session, plain, ret->iv, &ret->ciphertext, &ret->ciphertext_size)) < 0)
		return r;
	if (Tss2_MU_TPM2B_ID_OBJECT_Marshal(&key->blob, ret->credential_blob, sizeof(ret->credential_blob), &off) != 0)
		return -EIO;
	ret->credential_blob_size = off;
	off = 0;
	if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(&key->seed, ret->credential_seed, sizeof(ret->credential_seed),
						   &off) != 0)
		return -EIO;
	ret->credential_seed_size = off;
	return 0;
}

int evidence_seal(struct store *s, char (*const names)[65], size_t n, const struct payload_item *extra, size_t n_extra,
		  const struct tpm_pub *ek, const TPM2B_NAME *ak_name, struct seal_key *key, const char *session,
		  struct attest_payload *ret, char reason[ATTEST_REASON_MAX])
{
	_cleanup_secbuf_ struct secbuf *plain = NULL;
	struct payload_item *items = calloc(n + n_extra ? n + n_extra : 1, sizeof(*items));
	size_t got = 0, bad = 0;
	int r = 0;

	memset(ret, 0, sizeof(*ret));
	if (!items)
		return -ENOMEM;
	for (; got < n; got++) {
		struct secbuf *v = NULL;

		r = store_secret_get(s, names[got], &v, NULL);
		if (r == -ENOENT)
			snprintf(reason, ATTEST_REASON_MAX, "the policy names secret '%s', which is not set", names[got]);
		else if (r == -EBADMSG)
			snprintf(reason, ATTEST_REASON_MAX,
				 "secret '%s' does not decrypt: its row in the store was altered or moved", names[got]);
		else if (r == -EKEYREJECTED)
			snprintf(reason, ATTEST_REASON_MAX,
				 "secret '%s' is wrapped by a KEK this server does not hold (a KEK rotation not yet in place here)",
				 names[got]);
		if (r < 0)
			break;
		items[got] = (struct payload_item){ .name = names[got], .value = v };
	}
	if (r >= 0) {
		for (size_t i = 0; i < n_extra; i++)
			items[n + i] = extra[i];
		r = payload_encode(items, n + n_extra, &plain, &bad);
		if (r == -EINVAL)
			snprintf(reason, ATTEST_REASON_MAX, "secret '%s' cannot be sent (name or size)",
				 bad < n ? names[bad] : extra[bad - n].name);
	}
	items_free(items, got);
	if (r < 0)
		return r;
	r = seal(plain, ek, ak_name, key, session, ret);
	if (r < 0) {
		free(ret->ciphertext);
		ret->ciphertext = NULL;
	}
	return r;
}
