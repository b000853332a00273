/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "store.h"

/*
 * The hook behind keystrap_audit_verified (and its alert): whether the audit log as stored
 * still verifies. 1 verified, 0 not (why says where, one line), < 0 when it could not be read.
 *
 * Today the log is a hash chain and this walks it end to end, as `keystrap-server audit verify`
 * does: O(records), so serve.c calls it at start and then every AUDIT_CHECK_US or 1000 times
 * the last walk's time, whichever is longer; never per scrape.
 * Whoever replaces the chain (the Merkle log) replaces only this function's body, with the
 * cheap check that log allows (the newest checkpoint consistent with the last one verified);
 * the gauge, its alert and the callers stay as they are.
 */
#define AUDIT_CHECK_US (300 * 1000000LL)

int audit_verify_status(struct store *s, char *why, size_t why_size);
