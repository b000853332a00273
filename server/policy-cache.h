/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "policy.h"
#include "server-config.h"
#include "store.h"

/*
 * Trusting a stored policy: parsed strictly, its version column equal to its text's, and
 * signed by at least policy_threshold distinct operator keys of this server's configuration,
 * re-verified here so that write access to the database alone cannot change what is trusted.
 * -EKEYREJECTED under-signed, -EBADMSG invalid; reason says which. ret_signers: bit i for
 * operator key i (may be NULL).
 */
int policy_trust(const struct server_config *c, int64_t version, const char *text, size_t size,
		 const char *signatures, struct policy **ret, uint32_t *ret_signers, char reason[ATTEST_REASON_MAX]);

/*
 * What a server holds between requests: the last policy read from the store and whether it was
 * trusted. Several servers share one database, so every request reads the current row; only
 * a change (version, text or signatures) costs a new parse and signature check.
 */
struct policy_cache {
	int64_t version;
	char *text, *signatures;
	struct policy *policy; /* NULL: what the store holds was refused, for reason */
	char reason[ATTEST_REASON_MAX];
};

/*
 * The policy in force now, borrowed from the cache until the next call. Fails closed: no
 * policy loaded (-ENOENT), an untrusted one (-EKEYREJECTED, -EBADMSG) or an expired one
 * (-ETIME) give a reason fit for the node and the audit log.
 */
int policy_cache_current(struct policy_cache *pc, struct store *s, const struct server_config *c, int64_t now_us,
		   const struct policy **ret, char reason[ATTEST_REASON_MAX]);
void policy_cache_done(struct policy_cache *pc);

/* "2027-01-31T00:00:00Z" */
void policy_time_format(int64_t us, char buf[21]);
