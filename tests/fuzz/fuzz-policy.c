/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The policy document (server/policy.c) as arbitrary bytes: what an operator's file, or a row
 * someone edited in the database, may hold. Invariants besides "no crash": a refusal always
 * has a reason; an accepted policy selects PCRs, pins only PCRs 0-15, never pins and
 * event-checks the same PCR, came from text without duplicate keys, and finds its own groups;
 * the events check accepts every allowed digest and refuses one that is not listed.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json-dup.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_policy_ struct policy *p = NULL;
	char reason[ATTEST_REASON_MAX] = "", key[65];

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
	for (unsigned i = 0; i < PCR_COUNT; i++) {
		uint8_t other[1][PCR_DIGEST_MAX];

		if (!(p->event_mask & (1u << i))) {
			assert(p->n_allowed[i] == 0);
			continue;
		}
		assert(policy_check_events(p, i, (const uint8_t(*)[PCR_DIGEST_MAX])p->allowed[i], p->n_allowed[i],
					   reason) == 0);
		memcpy(other[0], p->allowed[i][0], PCR_DIGEST_MAX);
		other[0][0] ^= 0xff;
		bool listed = false;
		for (size_t j = 0; j < p->n_allowed[i]; j++)
			listed = listed || memcmp(other[0], p->allowed[i][j], p->bank->size) == 0;
		assert(listed == (policy_check_events(p, i, (const uint8_t(*)[PCR_DIGEST_MAX])other, 1, reason) == 0));
	}
	return 0;
}
