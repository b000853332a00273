/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "cel.h"
#include "encode.h"
#include "macro.h"

#define RS '\x1e'
#define JSON_DEPTH 8
#define STRING_MAX 4096

struct parser {
	char *err;
	size_t offset, number;
};

static _printf_(2, 3) int fail(struct parser *ps, const char *fmt, ...)
{
	va_list ap;
	int k;

	k = snprintf(ps->err, CEL_ERROR_MAX, "offset %zu: record %zu: ", ps->offset, ps->number);
	if (k < 0 || k >= (int)CEL_ERROR_MAX)
		return -EBADMSG;
	va_start(ap, fmt);
	(void)vsnprintf(ps->err + k, CEL_ERROR_MAX - (size_t)k, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static void record_done(struct cel_record *r)
{
	free(r->content_type);
	free(r->string);
	free(r->event_type);
}

static int get_uint(struct parser *ps, struct json_object *o, const char *what, uint64_t max,
		    uint64_t *ret)
{
	int64_t v;

	if (!json_object_is_type(o, json_type_int))
		return fail(ps, "\"%s\" is not an integer", what);
	v = json_object_get_int64(o);
	if (v < 0 || (uint64_t)v > max)
		return fail(ps, "\"%s\" %lld is out of range (0-%llu)", what, (long long)v,
			    (unsigned long long)max);
	*ret = (uint64_t)v;
	return 0;
}

/* An optional string member, copied; absent leaves *ret NULL. */
static int get_string(struct parser *ps, struct json_object *parent, const char *key, char **ret)
{
	struct json_object *o;
	const char *s;

	if (!json_object_object_get_ex(parent, key, &o))
		return 0;
	if (!json_object_is_type(o, json_type_string))
		return fail(ps, "\"%s\" is not a string", key);
	s = json_object_get_string(o);
	if ((size_t)json_object_get_string_len(o) != strlen(s) || strlen(s) > STRING_MAX)
		return fail(ps, "\"%s\" holds a NUL byte or is longer than %d bytes", key, STRING_MAX);
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

static int parse_digests(struct parser *ps, struct json_object *a, struct cel_record *r)
{
	size_t n;

	if (!json_object_is_type(a, json_type_array))
		return fail(ps, "\"digests\" is not an array");
	n = json_object_array_length(a);
	if (n == 0 || n > PCR_BANKS)
		return fail(ps, "%zu digests; a record has 1 to %d", n, PCR_BANKS);
	for (size_t i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(a, i), *alg, *hex;
		const struct pcr_bank *bank;
		const char *h;

		if (!json_object_is_type(d, json_type_object) || !json_object_object_get_ex(d, "hashAlg", &alg) ||
		    !json_object_object_get_ex(d, "digest", &hex) || !json_object_is_type(alg, json_type_string) ||
		    !json_object_is_type(hex, json_type_string))
			return fail(ps, "digest %zu is not {\"hashAlg\": NAME, \"digest\": HEX}", i);
		bank = pcr_bank_by_name(json_object_get_string(alg));
		if (!bank)
			return fail(ps, "digest %zu: unknown hashAlg \"%.16s\"", i, json_object_get_string(alg));
		for (size_t j = 0; j < i; j++)
			if (r->digests[j].bank == bank)
				return fail(ps, "digest %zu: a second %s digest", i, bank->name);
		h = json_object_get_string(hex);
		if ((size_t)json_object_get_string_len(hex) != 2u * bank->size ||
		    hex_decode(h, r->digests[i].value, bank->size) < 0)
			return fail(ps, "digest %zu: not %u hex digits of %s", i, 2 * bank->size, bank->name);
		r->digests[i].bank = bank;
	}
	r->n_digests = (unsigned)n;
	return 0;
}

static int parse_content(struct parser *ps, struct json_object *content, struct cel_record *r)
{
	_cleanup_free_ char *boot_id = NULL;
	struct json_object *o;
	int k;

	if (!json_object_is_type(content, json_type_object))
		return fail(ps, "\"content\" is not an object");
	if ((k = get_string(ps, content, "string", &r->string)) < 0 ||
	    (k = get_string(ps, content, "eventType", &r->event_type)) < 0 ||
	    (k = get_string(ps, content, "bootId", &boot_id)) < 0)
		return k;
	if (boot_id && strlen(boot_id) == CEL_BOOT_ID_SIZE - 1 &&
	    strspn(boot_id, "0123456789abcdef") == CEL_BOOT_ID_SIZE - 1)
		memcpy(r->boot_id, boot_id, CEL_BOOT_ID_SIZE);
	if (json_object_object_get_ex(content, "timestamp", &o)) {
		k = get_uint(ps, o, "timestamp", INT64_MAX, &r->timestamp);
		if (k < 0)
			return k;
		r->has_timestamp = true;
	}
	return 0;
}

static int parse_record(struct parser *ps, const char *text, size_t size, struct cel_record *r)
{
	struct json_tokener *tok;
	struct json_object *root, *o;
	size_t end;
	uint64_t pcr;
	int k;

	if (size > CEL_RECORD_MAX)
		return fail(ps, "longer than %d bytes", CEL_RECORD_MAX);
	if (memchr(text, 0, size))
		return fail(ps, "holds a NUL byte");
	tok = json_tokener_new_ex(JSON_DEPTH);
	if (!tok)
		return -ENOMEM;
	root = json_tokener_parse_ex(tok, text, (int)size);
	end = json_tokener_get_parse_end(tok);
	if (!root) {
		k = json_tokener_get_error(tok) == json_tokener_continue ?
			    fail(ps, "truncated JSON") :
			    fail(ps, "not JSON: %s", json_tokener_error_desc(json_tokener_get_error(tok)));
		json_tokener_free(tok);
		return k;
	}
	json_tokener_free(tok);
	for (; end < size; end++)
		if (!strchr(" \t\r\n", text[end])) {
			json_object_put(root);
			return fail(ps, "text after the JSON object");
		}
	k = 0;
	if (!json_object_is_type(root, json_type_object))
		k = fail(ps, "not a JSON object");
	else if (!json_object_object_get_ex(root, "pcr", &o))
		k = fail(ps, "no \"pcr\"");
	else if ((k = get_uint(ps, o, "pcr", PCR_COUNT - 1, &pcr)) == 0) {
		r->pcr = (unsigned)pcr;
		if (!json_object_object_get_ex(root, "digests", &o))
			k = fail(ps, "no \"digests\"");
		else if ((k = parse_digests(ps, o, r)) == 0 &&
			 (k = get_string(ps, root, "content_type", &r->content_type)) == 0 &&
			 json_object_object_get_ex(root, "content", &o))
			k = parse_content(ps, o, r);
	}
	json_object_put(root);
	return k;
}

int cel_parse(struct cel *c, unsigned file, const char *text, size_t size, char *err)
{
	struct parser ps = { .err = err };
	size_t first = c->n_records, off = 0;
	int k;

	err[0] = 0;
	while (off < size) {
		const char *next;
		size_t len;

		/* Whitespace between records is allowed; anything else must open with RS. */
		if (strchr(" \t\r\n", text[off]) && text[off]) {
			off++;
			continue;
		}
		ps.offset = off;
		ps.number = c->n_records - first;
		if (text[off] != RS) {
			k = fail(&ps, "does not start with the RS (0x1e) of a JSON text sequence");
			goto fail;
		}
		off++;
		next = memchr(text + off, RS, size - off);
		len = next ? (size_t)(next - (text + off)) : size - off;
		if (c->n_records == c->n_alloc) {
			size_t n = c->n_alloc ? 2 * c->n_alloc : 16;
			struct cel_record *p = reallocarray(c->records, n, sizeof(*p));

			if (!p) {
				k = -ENOMEM;
				goto fail;
			}
			c->records = p;
			c->n_alloc = n;
		}
		c->records[c->n_records] = (struct cel_record){ .offset = ps.offset, .file = file };
		k = parse_record(&ps, text + off, len, &c->records[c->n_records]);
		if (k < 0) {
			record_done(&c->records[c->n_records]);
			goto fail;
		}
		c->n_records++;
		off += len;
	}
	return 0;
fail:
	while (c->n_records > first)
		record_done(&c->records[--c->n_records]);
	return k;
}

void cel_done(struct cel *c)
{
	for (size_t i = 0; i < c->n_records; i++)
		record_done(&c->records[i]);
	free(c->records);
	*c = (struct cel){ 0 };
}

void cel_sort(struct cel *c)
{
	for (size_t i = 0; i < c->n_records; i++)
		if (!c->records[i].has_timestamp)
			return;
	/* Insertion sort: stable, and logs are nearly ordered already. */
	for (size_t i = 1; i < c->n_records; i++) {
		struct cel_record r = c->records[i];
		size_t j = i;

		for (; j > 0 && c->records[j - 1].timestamp > r.timestamp; j--)
			c->records[j] = c->records[j - 1];
		c->records[j] = r;
	}
}

int cel_replay(const struct cel *c, struct pcr_replay *r)
{
	_cleanup_(pcr_hashes_done) struct pcr_hashes h = { 0 };

	for (size_t i = 0; i < c->n_records; i++) {
		const struct cel_record *rec = &c->records[i];
		const struct pcr_bank *banks[PCR_BANKS];
		const uint8_t *digests[PCR_BANKS];
		int k;

		for (unsigned j = 0; j < rec->n_digests; j++) {
			banks[j] = rec->digests[j].bank;
			digests[j] = rec->digests[j].value;
		}
		k = pcr_replay_event(r, &h, rec->pcr, rec->offset, rec->n_digests, banks, digests, NULL);
		if (k < 0)
			return k;
	}
	return 0;
}

int cel_format(unsigned pcr, const struct cel_digest *digests, unsigned n, const char *string,
	       const char *event_type, const char *boot_id, uint64_t timestamp, char **ret)
{
	struct json_object *root = json_object_new_object(), *a = json_object_new_array();
	struct json_object *content = json_object_new_object();
	const char *json;
	int k = -ENOMEM;

	if (!root || !a || !content) {
		json_object_put(root);
		json_object_put(a);
		json_object_put(content);
		return -ENOMEM;
	}
	json_object_object_add(root, "pcr", json_object_new_int((int)pcr));
	for (unsigned i = 0; i < n; i++) {
		struct json_object *d = json_object_new_object();
		char hex[2 * PCR_DIGEST_MAX + 1];

		hex_encode(digests[i].value, digests[i].bank->size, hex);
		json_object_object_add(d, "hashAlg", json_object_new_string(digests[i].bank->name));
		json_object_object_add(d, "digest", json_object_new_string(hex));
		json_object_array_add(a, d);
	}
	json_object_object_add(root, "digests", a);
	json_object_object_add(root, "content_type", json_object_new_string("systemd"));
	json_object_object_add(content, "string", json_object_new_string(string));
	json_object_object_add(content, "bootId", json_object_new_string(boot_id));
	json_object_object_add(content, "timestamp", json_object_new_uint64(timestamp));
	if (event_type)
		json_object_object_add(content, "eventType", json_object_new_string(event_type));
	json_object_object_add(root, "content", content);
	json = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (json && asprintf(ret, "%c%s\n", RS, json) >= 0)
		k = 0;
	json_object_put(root);
	return k;
}
