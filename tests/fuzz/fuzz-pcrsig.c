/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pcrsig_find on arbitrary JSON: a PCR signature file (in /.extra, from a UKI anyone may build)
 * is untrusted. The pkfp and pol it looks for are the sha256 of "k" and "p", as in the seed.
 * Besides "no crash": a found signature fits its buffer and is not empty, a refusal says why.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "json-cleanup.h"
#include "pcrsig.h"
#include "token.h"

static void must(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_json_ json_object *root = json_parse_object((const char *)data, size, PCRSIG_FILE_MAX);
	uint8_t fp[32], pol[32], sig[PCRSIG_SIG_MAX];
	const char *why = NULL;
	size_t sig_size = 0;
	int r;

	if (!root)
		return 0;
	must(EVP_Digest("k", 1, fp, NULL, EVP_sha256(), NULL) == 1);
	must(EVP_Digest("p", 1, pol, NULL, EVP_sha256(), NULL) == 1);
	r = pcrsig_find(root, pcr_bank_by_name("sha256"), 1u << 11, fp, pol, sig, sizeof(sig), &sig_size, &why);
	if (r == 0)
		must(why == NULL && sig_size > 0 && sig_size <= sizeof(sig));
	else
		must(why != NULL && (r == -ENOENT || r == -EKEYREJECTED || r == -ESTALE || r == -EBADMSG));
	return 0;
}
