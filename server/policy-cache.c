/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "operator.h"
#include "policy-cache.h"

void policy_time_format(int64_t us, char buf[21])
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, 21, "?");
}

int policy_trust(const struct server_config *c, int64_t version, const char *text, size_t size,
		 const char *signatures, struct policy **ret, uint32_t *ret_signers, char reason[ATTEST_REASON_MAX])
{
	_cleanup_policy_ struct policy *p = NULL;
	char why[ATTEST_REASON_MAX];
	uint32_t signers;
	int r;

	r = policy_signers(c->operators, text, size, signatures, &signers);
	if (r == -EBADMSG) {
		snprintf(reason, ATTEST_REASON_MAX, "the stored policy version %lld has unreadable signatures",
			 (long long)version);
		return -EKEYREJECTED;
	}
	if (r < 0)
		return r;
	if (__builtin_popcount(signers) < c->policy_threshold) {
		snprintf(reason, ATTEST_REASON_MAX,
			 "the stored policy version %lld is signed by %d of the required %lld operator keys",
			 (long long)version, __builtin_popcount(signers), (long long)c->policy_threshold);
		return -EKEYREJECTED;
	}
	r = policy_parse(text, size, &p, why);
	if (r == -EBADMSG) {
		snprintf(reason, ATTEST_REASON_MAX, "the stored policy version %lld is invalid: %.120s", (long long)version,
			 why);
		return r;
	}
	if (r < 0)
		return r;
	if (p->version != version) {
		snprintf(reason, ATTEST_REASON_MAX, "the stored policy version %lld holds a policy of version %lld",
			 (long long)version, (long long)p->version);
		return -EBADMSG;
	}
	if (ret_signers)
		*ret_signers = signers;
	*ret = TAKE_PTR(p);
	return 0;
}

void policy_cache_done(struct policy_cache *pc)
{
	free(pc->text);
	free(pc->signatures);
	policy_free(pc->policy);
	*pc = (struct policy_cache){};
}

/*
 * The policy rows must agree with the audit log's last policy load: deleting the newest rows
 * would otherwise bring back an older policy, still validly signed (a rollback). Refused as
 * an untrusted policy is, naming both versions.
 */
static int policy_logged_check(struct store *s, int64_t version, const char *text, size_t size,
			       struct policy_cache *pc)
{
	struct policy_logged l;
	uint8_t d[32];
	int r = store_policy_logged(s, &l);

	if (r == -ENOENT || r == -EBADMSG)
		return 0; /* a store from before policies were audited with their version */
	if (r < 0 || (r = policy_text_digest(text, size, d)) < 0)
		return r;
	if (l.version == version && (!l.has_digest || memcmp(d, l.digest, sizeof(d)) == 0))
		return 0;
	snprintf(pc->reason, ATTEST_REASON_MAX,
		 "the stored policy (version %lld) is not the one the audit log says was loaded last (version %lld, "
		 "record %lld): policy rows were removed or replaced",
		 (long long)version, (long long)l.version, (long long)l.seq);
	policy_free(pc->policy);
	pc->policy = NULL;
	return -EKEYREJECTED;
}

int policy_cache_current(struct policy_cache *pc, struct store *s, const struct server_config *c, int64_t now_us,
		   const struct policy **ret, char reason[ATTEST_REASON_MAX])
{
	_cleanup_free_ char *text = NULL, *signatures = NULL;
	int64_t version;
	size_t size;
	int r;

	r = store_policy_current(s, &version, &text, &size, &signatures);
	if (r == -ENOENT) {
		snprintf(reason, ATTEST_REASON_MAX, "no policy is loaded: nothing is released until operators load a signed one");
		return r;
	}
	if (r < 0) {
		snprintf(reason, ATTEST_REASON_MAX, "cannot read the policy from the store: %s", strerror(-r));
		return r;
	}
	if (!pc->text || version != pc->version || !streq(text, pc->text) || !streq(signatures, pc->signatures)) {
		policy_cache_done(pc);
		pc->version = version;
		r = policy_trust(c, version, text, size, signatures, &pc->policy, NULL, pc->reason);
		if (r >= 0)
			r = policy_logged_check(s, version, text, size, pc);
		if (r < 0 && r != -EKEYREJECTED && r != -EBADMSG)
			return r; /* not cached: a transient failure (memory) is tried again */
		pc->text = TAKE_PTR(text);
		pc->signatures = TAKE_PTR(signatures);
	}
	if (!pc->policy) {
		snprintf(reason, ATTEST_REASON_MAX, "%s", pc->reason);
		return -EKEYREJECTED;
	}
	if (pc->policy->expires_us <= now_us) {
		char when[21];

		policy_time_format(pc->policy->expires_us, when);
		snprintf(reason, ATTEST_REASON_MAX, "policy version %lld expired at %s", (long long)version, when);
		return -ETIME;
	}
	*ret = pc->policy;
	return 0;
}
