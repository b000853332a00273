/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "health.h"

void health_store_result(struct health *h, int err, const char *what, int64_t now_us)
{
	if (err >= 0) {
		h->committed_us = now_us;
		h->store_failing = false;
		h->store_reason[0] = 0;
		return;
	}
	if (!h->store_failing)
		h->failing_since_us = now_us;
	h->store_failing = true;
	snprintf(h->store_reason, sizeof(h->store_reason), "store unavailable: %s: %s", what, strerror(-err));
}

static void probe(struct health *h, struct server *srv, int64_t now_us)
{
	health_store_result(h, store_probe(srv->store, now_us), "cannot commit a decision", now_us);
}

int health_check(struct health *h, struct server *srv, int64_t now_us, char reason[ATTEST_REASON_MAX])
{
	const struct policy *p;
	char why[ATTEST_REASON_MAX];
	int r;

	r = policy_cache_current(&srv->policy, srv->store, srv->config, now_us, &p, why);
	/* Anything but a verdict on the policy is the store failing to answer. */
	if (r < 0 && r != -ENOENT && r != -EKEYREJECTED && r != -EBADMSG && r != -ETIME)
		health_store_result(h, r, "cannot read the policy", now_us);
	else if (h->store_failing || now_us - h->committed_us >= HEALTH_PROBE_US)
		probe(h, srv, now_us);
	if (h->store_failing) {
		snprintf(reason, ATTEST_REASON_MAX, "%s", h->store_reason);
		return -EIO;
	}
	if (r < 0) {
		snprintf(reason, ATTEST_REASON_MAX, "%s", why);
		return r;
	}
	return 0;
}
