/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-leaf.h"
#include "unaligned.h"

static size_t put(uint8_t *out, size_t at, size_t cap, const char *s, size_t n)
{
	if (at + 4 + n > cap)
		n = at + 4 < cap ? cap - at - 4 : 0;
	be32_put(out + at, (uint32_t)n);
	memcpy(out + at + 4, s, n);
	return at + 4 + n;
}

int audit_leaf_encode(int64_t seq, int64_t time_us, const char *peer, const char *ek_hash, const char *node_id,
		      const char *action, const char *decision, const char *reasons, uint8_t *ret, size_t *ret_size)
{
	const char *f[AUDIT_LEAF_FIELDS] = { NULL, NULL, peer, ek_hash, node_id, action, decision, reasons };
	char seq_s[24], time_s[24];
	size_t at = 1, fixed = 1;

	snprintf(seq_s, sizeof(seq_s), "%" PRId64, seq);
	snprintf(time_s, sizeof(time_s), "%" PRId64, time_us);
	f[0] = seq_s;
	f[1] = time_s;
	for (size_t i = 0; i < AUDIT_LEAF_FIELDS - 1; i++)
		fixed += 4 + (f[i] ? strlen(f[i]) : 0);
	/* Everything but the reasons always fits: they are short fields of the server's. */
	if (fixed + 4 > AUDIT_LEAF_MAX)
		return -E2BIG;
	ret[0] = AUDIT_LEAF_VERSION;
	for (size_t i = 0; i < AUDIT_LEAF_FIELDS; i++)
		at = put(ret, at, AUDIT_LEAF_MAX, f[i] ? f[i] : "", f[i] ? strlen(f[i]) : 0);
	*ret_size = at;
	return 0;
}

static int number(const char *p, size_t n, int64_t *ret)
{
	char s[24];
	char *end;

	if (n == 0 || n >= sizeof(s))
		return -EBADMSG;
	memcpy(s, p, n);
	s[n] = 0;
	errno = 0;
	*ret = strtoll(s, &end, 10);
	return errno || *end ? -EBADMSG : 0;
}

int audit_leaf_parse(const uint8_t *p, size_t size, struct audit_leaf *ret)
{
	const char *f[AUDIT_LEAF_FIELDS];
	size_t len[AUDIT_LEAF_FIELDS], at = 1;
	struct audit_leaf l;

	if (size < 1 || size > AUDIT_LEAF_MAX || p[0] != AUDIT_LEAF_VERSION)
		return -EBADMSG;
	for (size_t i = 0; i < AUDIT_LEAF_FIELDS; i++) {
		uint32_t n;

		if (size - at < 4)
			return -EBADMSG;
		n = be32(p + at);
		if (n > size - at - 4)
			return -EBADMSG;
		f[i] = (const char *)p + at + 4;
		len[i] = n;
		at += 4 + n;
	}
	if (at != size || number(f[0], len[0], &l.seq) < 0 || number(f[1], len[1], &l.time_us) < 0)
		return -EBADMSG;
	l.peer = f[2], l.peer_len = len[2];
	l.ek_hash = f[3], l.ek_hash_len = len[3];
	l.node_id = f[4], l.node_id_len = len[4];
	l.action = f[5], l.action_len = len[5];
	l.decision = f[6], l.decision_len = len[6];
	l.reasons = f[7], l.reasons_len = len[7];
	*ret = l;
	return 0;
}

int audit_leaf_field_is(const char *field, size_t len, const char *s)
{
	return strlen(s) == len && memcmp(field, s, len) == 0;
}
