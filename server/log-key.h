/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

struct note_signer;
struct store;

/*
 * The audit log's signing key: a C2SP note signer key file ("PRIVATE+KEY+NAME+ID+KEY"), owner
 * only, never in the database. why: one line naming the file.
 */
int log_key_load(const char *path, struct note_signer **ret, char *why, size_t why_size);
struct server_config;
/*
 * The configuration's log_key (and log_key_next, which must have its name) set on the store:
 * 0, or < 0 with why (one line). No log_key: nothing set, 0.
 */
int log_keys_attach(struct store *s, const struct server_config *c, char *why, size_t why_size);
/* keystrap-server log-key generate: the new file (O_EXCL, 0600) and the verifier key on ret_vkey. */
int log_key_generate(const char *path, const char *name, char *ret_vkey, char *why, size_t why_size);
