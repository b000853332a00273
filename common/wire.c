/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "wire.h"

void wire_fail(struct wire *w)
{
	w->bad = true;
	w->left = 0;
}

static const uint8_t *take(struct wire *w, size_t size)
{
	const uint8_t *p;

	if (w->bad || size > w->left) {
		wire_fail(w);
		return NULL;
	}
	p = w->p;
	w->p += size;
	w->left -= size;
	return p;
}

uint8_t wire_u8(struct wire *w)
{
	const uint8_t *p = take(w, 1);

	return p ? p[0] : 0;
}

uint16_t wire_u16(struct wire *w)
{
	const uint8_t *p = take(w, 2);

	return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t wire_u32(struct wire *w)
{
	const uint8_t *p = take(w, 4);

	return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

uint64_t wire_u64(struct wire *w)
{
	uint64_t hi = wire_u32(w);

	return hi << 32 | wire_u32(w);
}

void wire_bytes(struct wire *w, void *dst, size_t size)
{
	const uint8_t *p = take(w, size);

	if (p && size)
		memcpy(dst, p, size);
}

uint16_t wire_tpm2b(struct wire *w, uint8_t *dst, size_t dst_max)
{
	uint16_t size = wire_u16(w);

	if (size > dst_max) {
		wire_fail(w);
		return 0;
	}
	wire_bytes(w, dst, size);
	return w->bad ? 0 : size;
}

struct wire wire_sub(struct wire *w, size_t size)
{
	const uint8_t *p = take(w, size);

	return p ? wire_init(p, size) : (struct wire){ .bad = true };
}
