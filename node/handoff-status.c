/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
#include "handoff-status.h"
#include "macro.h"

enum kind { STR, INT };

#define F(name, kind, field) { name, kind, offsetof(struct handoff_status, field), sizeof(((struct handoff_status *)0)->field) }
static const struct field {
	const char *name;
	enum kind kind;
	size_t offset, size;
} fields[] = {
	F("node_id", STR, node_id),
	F("server", STR, server),
	F("policy_version", INT, policy_version),
	F("attested_at", INT, attested_at),
	F("not_after", INT, not_after),
	F("clock_skew", INT, clock_skew),
	F("result", STR, result),
	F("uid", INT, uid),
	F("gid", INT, gid),
	F("pcrs", STR, pcrs),
	F("generation", STR, generation),
	F("revoked_at", INT, revoked_at),
	F("checkpoint", STR, checkpoint),
};

char *handoff_status_checkpoint(const struct handoff_status *s)
{
	size_t n = strlen(s->checkpoint);
	char *note = malloc(n + 1);
	long k;

	if (!note || n == 0 || (k = base64_decode(s->checkpoint, n, (uint8_t *)note, n)) <= 0) {
		free(note);
		return NULL;
	}
	note[k] = 0;
	return note;
}

int handoff_status_set_checkpoint(struct handoff_status *s, const char *note)
{
	size_t n = note ? strlen(note) : 0;

	if (base64_encoded_len(n) > HANDOFF_CHECKPOINT_MAX)
		return -E2BIG;
	base64_encode((const uint8_t *)(note ? note : ""), n, s->checkpoint);
	return 0;
}

int handoff_status_format(const struct handoff_status *s, char **ret)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
		const char *p = (const char *)s + fields[i].offset;

		if (fields[i].kind == STR && strchr(p, '\n')) {
			fclose(f);
			free(buf);
			return -EINVAL;
		}
		if (fields[i].kind == STR)
			fprintf(f, "%s=%s\n", fields[i].name, p);
		else
			fprintf(f, "%s=%" PRId64 "\n", fields[i].name, *(const int64_t *)p);
	}
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	return 0;
}

static int parse_int(const char *v, size_t n, int64_t *ret)
{
	char tmp[24], *end;
	long long x;

	if (n == 0 || n >= sizeof(tmp))
		return -EBADMSG;
	memcpy(tmp, v, n);
	tmp[n] = 0;
	errno = 0;
	x = strtoll(tmp, &end, 10);
	if (errno || *end || (tmp[0] != '-' && (tmp[0] < '0' || tmp[0] > '9')))
		return -EBADMSG;
	*ret = x;
	return 0;
}

int handoff_status_parse(const char *text, size_t size, struct handoff_status *ret)
{
	struct handoff_status s = { .uid = -1, .gid = -1 };
	bool seen[ELEMENTSOF(fields)] = {};

	for (size_t off = 0; off < size;) {
		const char *line = text + off, *nl = memchr(line, '\n', size - off), *eq;
		size_t len = nl ? (size_t)(nl - line) : size - off, i;

		off += len + 1;
		if (len == 0)
			continue;
		eq = memchr(line, '=', len);
		if (!eq || memchr(line, 0, len))
			return -EBADMSG;
		for (i = 0; i < ELEMENTSOF(fields); i++)
			if (strlen(fields[i].name) == (size_t)(eq - line) && memcmp(fields[i].name, line, (size_t)(eq - line)) == 0)
				break;
		if (i == ELEMENTSOF(fields) || seen[i])
			return -EBADMSG;
		seen[i] = true;
		const char *v = eq + 1;
		size_t vn = len - (size_t)(v - line);
		char *field = (char *)&s + fields[i].offset;

		if (fields[i].kind == INT) {
			if (parse_int(v, vn, (int64_t *)field) < 0)
				return -EBADMSG;
		} else {
			if (vn >= fields[i].size)
				return -EBADMSG;
			memcpy(field, v, vn);
			field[vn] = 0;
		}
	}
	if (!seen[0] || !seen[4])
		return -EBADMSG; /* node_id and not_after at least */
	*ret = s;
	return 0;
}

int handoff_pcrs_get(const char *pcrs, unsigned index, char hex[129])
{
	const char *p = strchr(pcrs, ':');

	if (!p)
		return -EBADMSG;
	for (p++; *p;) {
		char *end;
		unsigned long i;
		size_t n;

		errno = 0;
		i = strtoul(p, &end, 10);
		if (errno || end == p || *end != '=' || *p < '0' || *p > '9')
			return -EBADMSG;
		p = end + 1;
		n = strspn(p, "0123456789abcdef");
		if (n == 0 || n > 128 || (p[n] != ',' && p[n] != 0))
			return -EBADMSG;
		if (i == index) {
			memcpy(hex, p, n);
			hex[n] = 0;
			return 0;
		}
		p += n + (p[n] == ',');
	}
	return -ENOENT;
}
