/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/*
 * The one home for secret bytes: keys, unsealed blobs, passphrases and their encodings.
 * Memory is page-backed, mlocked (failure tolerated: locked memory may be rlimited in
 * an initrd), excluded from core dumps, and wiped with explicit_bzero on free.
 */
struct secbuf {
	size_t size;
	size_t alloc;
	uint8_t *data;
};

struct secbuf *secbuf_new(size_t size);
void secbuf_free(struct secbuf *b);
static inline void secbuf_freep(struct secbuf **b)
{
	secbuf_free(*b);
}
#define _cleanup_secbuf_ _cleanup_(secbuf_freep)

struct secbuf *secbuf_dup(const void *p, size_t size);

/* Reads a whole file of at most max bytes, byte for byte (a LUKS key file). */
int secbuf_read_file(const char *path, size_t max, struct secbuf **ret);

/* Reads one line (no echo when fd is a terminal). */
int secbuf_read_line(int fd, const char *prompt, size_t max, struct secbuf **ret);

/* Constant-time equality, for any secret comparison. */
int secmem_equal(const void *a, const void *b, size_t n);

/* Wipes a stack object, for TSS structures that transiently hold a secret. */
void secmem_wipe(void *p, size_t n);
