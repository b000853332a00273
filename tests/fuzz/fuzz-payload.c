/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The decrypted secret payload (common/payload.c) the node decodes: whatever decodes must encode
 * back to the same bytes.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct node_secret *s = NULL;
	struct payload_item items[64];
	struct secbuf *out = NULL;
	size_t n = 0, bad;

	if (payload_decode(data, size, &s, &n) < 0)
		return 0;
	if (n <= 64) {
		for (size_t i = 0; i < n; i++)
			items[i] = (struct payload_item){ .name = s[i].name, .value = s[i].value };
		assert(payload_encode(items, n, &out, &bad) == 0);
		assert(out->size == size && memcmp(out->data, data, size) == 0);
		secbuf_free(out);
	}
	node_secrets_free(s, n);
	return 0;
}
