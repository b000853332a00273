/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "attest-msg.h"
#include "store.h"

/*
 * What a witnessing node is shown (docs/protocol.md, "The log"): a checkpoint signed in the
 * batch's transaction, so that it covers the node's own record, that record's inclusion
 * proof and, from the checkpoint the node holds, a consistency proof. All of it is read in
 * the transaction before its commit; the replies go out only after the commit.
 */

/* Signs the checkpoint of the tree as the batch leaves it: its note (malloc'ed) and size. */
int witness_checkpoint(struct store *s, char **ret_note, uint64_t *ret_size);

/*
 * log->record and log->index set by the caller (the record's leaf): the rest filled for the
 * checkpoint note of size leaves. A node holding a larger checkpoint than this log gets no
 * consistency proof (none exists): it refuses the reply, as it should.
 */
int witness_prove(struct store *s, const char *note, uint64_t size, uint64_t held, struct attest_log *log);
