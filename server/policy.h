/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest-msg.h"
#include "macro.h"
#include "payload.h"
#include "pcr.h"

/*
 * Policy as code (issue 5): what a node must have booted and what it then receives. A policy
 * is a JSON document (format in keystrap-server(8)) that takes effect only with signatures
 * from at least k of the n operator keys in the server configuration. It is stored with its
 * signatures and re-verified whenever a server reads it back, so write access to the database
 * alone cannot change what is trusted.
 */

#define POLICY_GROUPS_MAX 64
#define POLICY_SECRETS_MAX 32
#define POLICY_EVENTS_MAX 256

struct policy_group {
	char name[33];
	char (*secrets)[NODE_SECRET_NAME_MAX + 1]; /* secret names, malloc'ed */
	size_t n_secrets;
};

struct policy {
	int64_t version;        /* strictly increasing: an older or equal one is refused */
	int64_t expires_us;     /* wall clock; an expired policy releases nothing */
	char min_version[ATTEST_VERSION_MAX + 1]; /* advisory: a node reporting less is noted, not refused */
	int64_t credential_lifetime; /* seconds */
	const struct pcr_bank *bank;
	uint32_t mask;          /* what nodes quote: value_mask | event_mask */
	uint32_t value_mask;    /* PCRs pinned to a reference value */
	uint8_t reference[PCR_COUNT][PCR_DIGEST_MAX];
	uint32_t event_mask;    /* PCRs whose every logged event must be in allowed[] */
	uint8_t (*allowed[PCR_COUNT])[PCR_DIGEST_MAX];
	size_t n_allowed[PCR_COUNT];
	struct policy_group *groups;
	size_t n_groups;
};

/* Strict parse of the policy document alone (no signatures): pure, fuzzed. */
int policy_parse(const char *json, size_t size, struct policy **ret, char reason[ATTEST_REASON_MAX]);
/* SHA-256 of a policy's text: what its policy-load audit record names it by. */
int policy_text_digest(const void *text, size_t size, uint8_t ret[32]);
void policy_free(struct policy *p);
static inline void policy_freep(struct policy **p)
{
	policy_free(*p);
}
#define _cleanup_policy_ _cleanup_(policy_freep)

/* NULL when the policy names no such group (the node then receives no secrets). */
const struct policy_group *policy_group(const struct policy *p, const char *name);

/*
 * The allowed-events rule for one PCR of p->event_mask: every event the node's log extended into
 * it (digest in p->bank) must be one of p->allowed[pcr]. False for PCRs outside event_mask.
 */
bool policy_event_allowed(const struct policy *p, unsigned pcr, const uint8_t *digest);

/*
 * What a refused attestation carried (evidence_judge's JSON, read back from the store, so
 * untrusted), parsed as strictly as a policy: "pcr_bank", "reference_pcrs" (the quoted values
 * of the pinned PCRs) and "allowed_events" (the digests that were not allowed).
 */
int policy_evidence_parse(const char *json, size_t size, struct policy **ret, char reason[ATTEST_REASON_MAX]);

struct policy_draft_changes {
	uint32_t replaced;         /* PCRs whose reference value the draft replaces */
	size_t added[PCR_COUNT];   /* events the draft adds to each PCR's allowed list */
	size_t n_added;
};

/*
 * policy draft: the next version of the policy cur (parsed from text, NUL-terminated, and trusted) with ev
 * merged into it: the reference value of each PCR both pin replaced where ev's differs, and
 * ev's events added to the allowed list of each PCR both check by events; everything else as
 * text has it. *ret is malloc'ed pretty-printed JSON that policy_parse accepts. -EBADMSG with
 * reason: another bank, nothing new, or an allowed list past POLICY_EVENTS_MAX.
 */
int policy_draft(const char *text, const struct policy *cur, const struct policy *ev, char **ret,
		 struct policy_draft_changes *ret_changes, char reason[ATTEST_REASON_MAX]);

/* Dotted decimal ("0.1.0"), at most ATTEST_VERSION_MAX characters: what versions look like. */
bool policy_version_valid(const char *s);
/* strverscmp-like comparison of dotted keystrap versions; < 0 when a is older than b. */
int policy_version_compare(const char *a, const char *b);
