/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "audit-status.h"

struct walk {
	int64_t next;
	uint8_t prev[32];
	char *why;
	size_t why_size;
};

/* Each record numbered in turn, linked to the one before and matching its own hash. */
static int check_one(const struct audit_rec *r, void *userdata)
{
	struct walk *w = userdata;
	uint8_t h[32];

	if (r->seq == w->next && memcmp(r->prev_hash, w->prev, sizeof(w->prev)) == 0 && audit_rec_hash(r, h) >= 0 &&
	    memcmp(h, r->hash, sizeof(h)) == 0) {
		memcpy(w->prev, r->hash, sizeof(w->prev));
		w->next++;
		return 0;
	}
	snprintf(w->why, w->why_size, "audit record %" PRId64 " (after %" PRId64 " verified) breaks the chain", r->seq,
		 w->next - 1);
	return -EBADMSG;
}

int audit_verify_status(struct store *s, char *why, size_t why_size)
{
	struct walk w = { .next = 1, .why = why, .why_size = why_size };
	int r = store_audit_foreach(s, check_one, &w);

	if (r == -EBADMSG)
		return 0;
	if (r < 0) {
		snprintf(why, why_size, "cannot read the audit log: %s", strerror(-r));
		return r;
	}
	return 1;
}
