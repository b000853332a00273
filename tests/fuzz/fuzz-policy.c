/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The policy document (server/policy.c) as arbitrary bytes: what an operator's file, or a row
 * someone edited in the database, may hold. Invariants besides "no crash": a refusal always
 * has a reason; an accepted policy selects PCRs, pins only PCRs 0-15, never pins and
 * event-checks the same PCR, came from text without duplicate keys, and finds its own groups;
 * the events check accepts every allowed digest and refuses one that is not listed. The same
 * bytes as a refusal's evidence read back from the store (policy_evidence_parse): a refusal
 * has a reason; and a draft from a policy's own values holds nothing new.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json-dup.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_policy_ struct policy *p = NULL, *ev = NULL;
	_cleanup_free_ char *text = NULL, *draft = NULL;
	char reason[ATTEST_REASON_MAX] = "", key[65];

	reason[0] = 0;
	if (policy_evidence_parse((const char *)data, size, &ev, reason) < 0)
		assert(reason[0]);
	else
		assert(!(ev->value_mask & ev->event_mask) && ev->bank);
	reason[0] = 0;
	if (policy_parse((const char *)data, size, &p, reason) < 0) {
		assert(reason[0]);
		return 0;
	}
	assert(p->mask && p->mask == (p->value_mask | p->event_mask));
	assert(!(p->value_mask & p->event_mask) && p->value_mask < (1u << 16));
	assert(p->version >= 1 && p->credential_lifetime >= 60 && p->bank);
	assert(policy_version_valid(p->min_version) && policy_version_compare(p->min_version, p->min_version) == 0);
	assert(json_duplicate_key((const char *)data, size, key, sizeof(key)) == 0);
	for (size_t i = 0; i < p->n_groups; i++)
		assert(policy_group(p, p->groups[i].name) == &p->groups[i]);
	text = strndup((const char *)data, size);
	assert(text);
	reason[0] = 0;
	assert(policy_draft(text, p, p, &draft, NULL, reason) == -EBADMSG && reason[0]);
	for (unsigned i = 0; i < PCR_COUNT; i++) {
		uint8_t other[1][PCR_DIGEST_MAX];

		if (!(p->event_mask & (1u << i))) {
			assert(p->n_allowed[i] == 0);
			continue;
		}
		for (size_t j = 0; j < p->n_allowed[i]; j++)
			assert(policy_event_allowed(p, i, p->allowed[i][j]));
		memcpy(other[0], p->allowed[i][0], PCR_DIGEST_MAX);
		other[0][0] ^= 0xff;
		bool listed = false;
		for (size_t j = 0; j < p->n_allowed[i]; j++)
			listed = listed || memcmp(other[0], p->allowed[i][j], p->bank->size) == 0;
		assert(listed == policy_event_allowed(p, i, other[0]));
	}
	return 0;
}
