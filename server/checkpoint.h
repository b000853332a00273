/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct note_verifier;
struct store;

/*
 * The store's newest checkpoint against its tree, in O(log n): signed by v, no larger than
 * the tree, its root the tree's root at its size, and every record a leaf. What the server
 * checks before it serves (a rewritten or truncated log is refused at start); audit verify
 * checks the records themselves. 0, -ENOENT (no checkpoint yet, why says so), or -EBADMSG.
 */
int checkpoint_check(struct store *s, const struct note_verifier *v, char *why, size_t why_size);

/* The log extends the checkpoint in path (signed by v): -EBADMSG, why says how it does not. */
int checkpoint_extends_file(struct store *s, const struct note_verifier *v, const char *path, char *why,
			    size_t why_size);
/* Whether the store holds a checkpoint at all. */
bool checkpoint_exists(struct store *s);

/*
 * The newest checkpoint, when newer than *published: one journal line (size, root, the
 * signature line), and written to path (write beside, rename) when path is set.
 */
int checkpoint_publish(struct store *s, const char *path, uint64_t *published);
