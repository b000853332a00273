/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PKCS#10 reader keystrap-server runs on every finish (server/verify/csr.c): whatever parses points
 * inside the input, the signed span and the key lie inside the request, and the key is the
 * one canonical P-256 form.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "csr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct csr c;

	if (csr_parse_p256(data, size, &c) < 0)
		return 0;
	assert(c.info > data && c.info + c.info_size <= data + size);
	assert(c.spki > c.info && c.spki + c.spki_size <= c.info + c.info_size);
	assert(c.spki_size == 91 && c.point == c.spki + 26 && c.point[0] == 0x04);
	assert(c.sig > c.info + c.info_size && c.sig + c.sig_size == data + size);
	return 0;
}
