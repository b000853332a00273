/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * A malloc'ed copy of s in which every byte that starts no valid UTF-8 sequence (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF, no truncated sequence) is replaced by
 * U+FFFD; valid text is copied unchanged. NULL stays NULL.
 */
int utf8_valid_dup(const char *s, char **ret);

/* Whether the n bytes at s are valid UTF-8 by the same rules (a NUL byte is valid U+0000). */
bool utf8_valid(const char *s, size_t n);
