/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "attest-msg.h"
#include "handshake.h"

/*
 * One health model: the server is healthy when it can admit a node now, that is when a trusted
 * policy is in force and the store can commit a decision. /healthz answers from it, and the
 * store's side of it is what an outage is: it begins with the first write (or read) that fails
 * and ends with the next commit that succeeds, whichever request, probe or batch made it.
 */

/* A commit this recent stands for the store; an older one is probed again (one small write). */
#define HEALTH_PROBE_US 1000000

struct health {
	int64_t committed_us; /* the last commit that succeeded */
	bool store_failing;
	int64_t failing_since_us;
	char store_reason[ATTEST_REASON_MAX]; /* "store unavailable: ...", while failing */
};

/* What became of a store operation: 0, or its -errno with what it was ("cannot commit a decision"). */
void health_store_result(struct health *h, int err, const char *what, int64_t now_us);

/*
 * 0 when a node could be admitted now; otherwise < 0 and reason says why: the store's failure
 * first, else what a node would be told about the policy (none loaded, not trusted, expired).
 * Reads the policy as a handshake does and probes the store unless it committed within
 * HEALTH_PROBE_US. Not with a transaction open.
 */
int health_check(struct health *h, struct server *srv, int64_t now_us, char reason[ATTEST_REASON_MAX]);
