/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A bounds-checked reader over untrusted TPM wire bytes (big-endian). Every read checks the
 * remaining length before touching memory; after the first failure every later read fails
 * too and yields zeros, so a parser reads a whole structure and checks wire_ok() once.
 * It never allocates: lengths read from the input only ever index the input.
 */
struct wire {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static inline struct wire wire_init(const void *p, size_t size)
{
	return (struct wire){ .p = p, .left = size };
}

uint8_t wire_u8(struct wire *w);
uint16_t wire_u16(struct wire *w);
uint32_t wire_u32(struct wire *w);
uint64_t wire_u64(struct wire *w);
/* Copies size bytes into dst, or fails and copies nothing. */
void wire_bytes(struct wire *w, void *dst, size_t size);
/* A TPM2B: a 16-bit size, then that many bytes into dst; fails when they exceed dst_max. */
uint16_t wire_tpm2b(struct wire *w, uint8_t *dst, size_t dst_max);
/* Splits off the next size bytes as a reader of their own (a TPM2B holding a structure). */
struct wire wire_sub(struct wire *w, size_t size);
/* Marks the input malformed (a value the parser does not accept). */
void wire_fail(struct wire *w);

static inline bool wire_ok(const struct wire *w)
{
	return !w->bad;
}

/* Parsed without error and nothing left over. */
static inline bool wire_done(const struct wire *w)
{
	return !w->bad && w->left == 0;
}
