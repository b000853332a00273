/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "store.h"

/*
 * The hook behind keystrap_audit_verified (and its alert): whether the audit log as stored
 * still verifies. 1 verified, 0 not (why says where, one line), < 0 when it could not be read.
 *
 * It walks the records end to end, as `keystrap-server audit verify` does: each record's chain
 * link and hash, the Merkle tree rebuilt from them against the stored one, and (with a log
 * key) the signed checkpoint against both. O(records), so serve.c calls it at start and then
 * every AUDIT_CHECK_US or 1000 times the last walk's time, whichever is longer; never per
 * scrape.
 */
#define AUDIT_CHECK_US (300 * 1000000LL)

int audit_verify_status(struct store *s, char *why, size_t why_size);
