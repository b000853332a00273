/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Why an attestation request was turned away, as a small fixed set of classes: the reason
 * label of keystrap_refusals_total. The reply's text says what exactly; the class never holds
 * anything a request sent, so the label set stays bounded. REFUSAL_NONE: taken from the HTTP
 * status (metrics_refusal_of).
 */
enum refusal {
	REFUSAL_NONE,
	REFUSAL_MALFORMED,            /* 400, 413: a body that does not parse or is too large */
	REFUSAL_REQUEST,              /* 404, 405: not an endpoint, or the wrong method */
	REFUSAL_IDENTITY,             /* the EK, its certificate, the AK or the proof of activation */
	REFUSAL_ENROLLMENT_REQUESTED, /* an unknown EK: its enrollment request was recorded */
	REFUSAL_NOT_APPROVED,         /* a known EK an operator has not approved yet */
	REFUSAL_ENROLLMENT_CLOSED,    /* max_pending_enrollments reached */
	REFUSAL_REVOKED,
	REFUSAL_SESSION,              /* unknown session, nonce used or expired, TPM counters went back */
	REFUSAL_EVIDENCE,             /* the quote, the logs or the boot state against the policy */
	REFUSAL_POLICY_MISSING,       /* no policy loaded */
	REFUSAL_POLICY_UNTRUSTED,     /* under-signed or invalid */
	REFUSAL_POLICY_EXPIRED,
	REFUSAL_RATE_LIMITED,         /* 429 */
	REFUSAL_OVERLOADED,           /* 503: a start while the event loop is behind (max_queue_delay) */
	REFUSAL_STORE,                /* 503: the store could not read or record the decision */
	REFUSAL_INTERNAL,             /* 500 */
	_REFUSAL_MAX
};
