/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * authenticode_digest on arbitrary bytes: the image keystrap predict hashes is the user's
 * file, possibly hostile. Besides "no crash": a refusal is -EBADMSG with a one-line reason,
 * and an accepted image hashes the same every time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "authenticode.h"

static void must(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct pcr_bank *bank = pcr_bank_by_name("sha256");
	uint8_t a[PCR_DIGEST_MAX], b[PCR_DIGEST_MAX];
	char err[AUTHENTICODE_ERROR_MAX];
	int r;

	r = authenticode_digest(data, size, bank, a, err);
	if (r < 0) {
		must(r == -EBADMSG && err[0] && memchr(err, 0, sizeof(err)) && !strchr(err, '\n'));
		return 0;
	}
	must(authenticode_digest(data, size, bank, b, err) == 0 && memcmp(a, b, bank->size) == 0);
	return 0;
}
