/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "json-dup.h"
#include "macro.h"

#define DEPTH_MAX 64

struct key {
	const char *s;
	size_t n;
	char *owned; /* the decoded spelling, for keys with escapes */
};

struct frame {
	bool object;
	bool want_key;
	size_t first; /* this object's keys are keys[first..] */
};

static int key_cmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	int c = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);

	return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* A key with escapes, decoded by json-c itself so both sides agree on what it means. */
static int key_decode(const char *tok, size_t n, struct key *k)
{
	json_tokener *t = json_tokener_new();
	json_object *o = t ? json_tokener_parse_ex(t, tok, (int)n) : NULL;

	json_tokener_free(t);
	if (!o || !json_object_is_type(o, json_type_string)) {
		json_object_put(o);
		return -EINVAL;
	}
	k->n = (size_t)json_object_get_string_len(o);
	k->owned = malloc(k->n + 1);
	if (k->owned)
		memcpy(k->owned, json_object_get_string(o), k->n + 1);
	json_object_put(o);
	if (!k->owned)
		return -ENOMEM;
	k->s = k->owned;
	return 0;
}

static void keys_drop(struct key *keys, size_t from, size_t *n)
{
	for (size_t i = from; i < *n; i++)
		free(keys[i].owned);
	*n = from;
}

/* Sorted, equal neighbours are the duplicates. */
static bool keys_dup(struct key *keys, size_t n, char *ret_key, size_t key_max)
{
	/* An empty object has no keys array at all: qsort must not be given NULL. */
	if (n < 2)
		return false;
	qsort(keys, n, sizeof(*keys), key_cmp);
	for (size_t i = 1; i < n; i++)
		if (key_cmp(&keys[i - 1], &keys[i]) == 0) {
			snprintf(ret_key, key_max, "%.*s", (int)(keys[i].n < key_max ? keys[i].n : key_max - 1), keys[i].s);
			return true;
		}
	return false;
}

/*
 * Where the string opened by the quote at json[i] closes (size: it does not). memchr for the
 * quote and for a backslash before it, not a loop over every byte: a finish's strings are
 * 40 KB of base64 with no escape in them.
 */
static size_t string_end(const char *json, size_t size, size_t i)
{
	for (size_t j = i + 1; j < size;) {
		const char *q = memchr(json + j, '"', size - j);
		size_t end = q ? (size_t)(q - json) : size;
		const char *b = memchr(json + j, '\\', end - j);

		if (!b)
			return end;
		j = (size_t)(b - json) + 2; /* whatever the backslash escapes, a quote too */
	}
	return size;
}

int json_duplicate_key(const char *json, size_t size, char *ret_key, size_t key_max)
{
	struct frame stack[DEPTH_MAX];
	struct key *keys = NULL;
	size_t depth = 0, n_keys = 0, cap = 0;
	int r = 0;

	for (size_t i = 0; i < size && r == 0; i++) {
		struct frame *top = depth ? &stack[depth - 1] : NULL;
		size_t j;

		switch (json[i]) {
		case '"':
			j = string_end(json, size, i);
			if (j >= size) {
				r = -EINVAL;
				break;
			}
			if (top && top->object && top->want_key) {
				struct key k = { .s = json + i + 1, .n = j - i - 1 };

				if (memchr(k.s, '\\', k.n) && (r = key_decode(json + i, j - i + 1, &k)) < 0)
					break;
				if (n_keys == cap) {
					struct key *m = reallocarray(keys, cap ? 2 * cap : 16, sizeof(*keys));

					if (!m) {
						free(k.owned);
						r = -ENOMEM;
						break;
					}
					keys = m;
					cap = cap ? 2 * cap : 16;
				}
				keys[n_keys++] = k;
				top->want_key = false;
			}
			i = j;
			break;
		case '{':
		case '[':
			if (depth == DEPTH_MAX) {
				r = -EINVAL;
				break;
			}
			stack[depth++] = (struct frame){ .object = json[i] == '{', .want_key = true, .first = n_keys };
			break;
		case ',':
			if (top && top->object)
				top->want_key = true;
			break;
		case '}':
		case ']':
			if (!top || top->object != (json[i] == '}')) {
				r = -EINVAL;
				break;
			}
			if (top->object && keys_dup(keys + top->first, n_keys - top->first, ret_key, key_max))
				r = 1;
			keys_drop(keys, top->first, &n_keys);
			depth--;
			break;
		}
	}
	if (r == 0 && depth)
		r = -EINVAL;
	keys_drop(keys, 0, &n_keys);
	free(keys);
	return r;
}

/* Whether n bytes hold no backslash and no control character: 32 at a time, then closer. */
static bool plain(const char *p, size_t n)
{
	const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);
	size_t i = 0;

	for (; i + 32 <= n; i += 32) {
		uint64_t w[4], hit = 0;

		memcpy(w, p + i, sizeof(w));
		/* A byte below 0x20 in a word, or a zero byte in it XOR backslashes (a backslash). */
		for (size_t k = 0; k < 4; k++) {
			uint64_t b = w[k] ^ (ones * '\\');

			hit |= ((w[k] - ones * 0x20) & ~w[k]) | ((b - ones) & ~b);
		}
		if (hit & high)
			break;
	}
	for (; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == '\\')
			return false;
	return true;
}

size_t json_long_values(const char *json, size_t size, size_t min, struct json_long_value *ret, size_t max)
{
	size_t n = 0, depth = 0, key = 0, key_size = 0;
	bool have_key = false, value = false;

	for (size_t i = 0; i < size && n < max; i++) {
		size_t j;

		switch (json[i]) {
		case '"':
			j = string_end(json, size, i);
			if (j >= size)
				return n;
			if (depth == 1 && value) {
				if (have_key && j - i - 1 >= min && plain(json + i + 1, j - i - 1))
					ret[n++] = (struct json_long_value){ key, key_size, i + 1, j };
				have_key = value = false;
			} else if (depth == 1) {
				key = i + 1;
				key_size = j - i - 1;
				have_key = !memchr(json + key, '\\', key_size);
			}
			i = j;
			break;
		case '{':
		case '[':
			depth++;
			have_key = value = false;
			break;
		case '}':
		case ']':
			if (depth-- == 0)
				return n;
			have_key = value = false;
			break;
		case ':':
			value = depth == 1 && have_key;
			break;
		case ' ':
		case '\t':
		case '\r':
		case '\n':
			break;
		default: /* a comma, a number, a literal: whatever follows is no value of the key before */
			have_key = value = false;
		}
	}
	return n;
}
