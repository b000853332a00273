/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "attest-msg.h"

/*
 * The node as a witness of the server's audit log (issue 14): with a pinned log key
 * ([Attest] LogKey=), a reply is trusted only when it carries a checkpoint signed by that
 * key, the attestation's own record (this node, this EK, this certificate's serial, allowed)
 * proved included in it, and, when the node holds a checkpoint from before, a proof that the
 * new one extends it. A server whose log forked or was rewritten is caught here.
 */

/* log_key: the verifier key text; held: the checkpoint note the node holds ("" or NULL: none). */
int witness_request_size(const char *log_key, const char *held, uint64_t *ret_size);

/*
 * 0 and *ret_note (malloc'ed, the checkpoint to hold now), or -EPROTO after logging which
 * check failed, in one line.
 */
int witness_check(const char *log_key, const char *held, const char *ek_hash, const struct attest_result *res,
		  char **ret_note);
