/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * reseal-run: node/reseal.c's reseal_strict on a LUKS2 image against a real TPM, for
 * tests/bats/reseal.bats, in the order an attested boot runs it: the header loaded and repaired
 * as unlock does, the stale tokens' PCRs read (the strict attempt), "attested" measured into PCR
 * 12 (what attest does before the attested token opens the volume), then the reseal authorised
 * by the passphrase in KEYFILE (standing in for the attested token's). Test-only: keystrap
 * never reads a passphrase for this from a file.
 *
 *   reseal-run IMAGE KEYFILE TOKENS [--no-attest] [--no-snapshot]
 *
 * TOKENS: the stale tokens, "0" or "0,2". --no-attest: PCR 12 is not measured in between;
 * --no-snapshot: reseal_strict reads the PCRs itself, after the measurement. Exit 0 when
 * reseal_strict returned 0 (it prints what it resealed), 1 otherwise, 2 on usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libcryptsetup.h>

#include "log.h"
#include "luks.h"
#include "measure.h"
#include "open.h"
#include "reseal.h"
#include "token.h"

int main(int argc, char **argv)
{
	_cleanup_free_ struct reseal_pcrs *seen = calloc(1, sizeof(*seen));
	_cleanup_free_ struct tpm2_token *k = malloc(sizeof(*k));
	_cleanup_secbuf_ struct secbuf *key = NULL;
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	_cleanup_free_ char *path = NULL;
	_cleanup_tpm_ struct tpm *t = NULL;
	bool attest = true, snapshot = true;
	uint32_t stale = 0, leftovers;
	const char *json, *why;
	char *end;
	int r;

	if (argc < 4 || !seen || !k)
		return fprintf(stderr, "usage: reseal-run IMAGE KEYFILE TOKENS [--no-attest] [--no-snapshot]\n"), 2;
	for (int i = 4; i < argc; i++) {
		if (streq(argv[i], "--no-attest"))
			attest = false;
		else if (streq(argv[i], "--no-snapshot"))
			snapshot = false;
		else
			return fprintf(stderr, "reseal-run: unknown option '%s'\n", argv[i]), 2;
	}
	for (char *s = argv[3]; *s; s = *end ? end + 1 : end) {
		long tok = strtol(s, &end, 10);

		if (end == s || tok < 0 || tok > 31 || (*end && *end != ','))
			return fprintf(stderr, "reseal-run: '%s' is not a list of tokens\n", argv[3]), 2;
		stale |= 1u << tok;
	}
	if (luks_load_repaired(argv[1], &path, &cd, &leftovers) < 0 || tpm_connect(&t) < 0)
		return 1;
	r = secbuf_read_file(argv[2], 4096, &key);
	if (r < 0)
		return fprintf(stderr, "reseal-run: %s: %s\n", argv[2], strerror(-r)), 1;
	for (int tok = 0; snapshot && tok < 32; tok++) {
		if (!(stale & (1u << tok)) || crypt_token_json_get(cd, tok, &json) < 0 ||
		    token_parse(json, strlen(json), k, &why) < 0)
			continue;
		r = reseal_pcrs_read(seen, t, k->bank, k->pcr_mask);
		if (r < 0)
			return fprintf(stderr, "reseal-run: reading PCRs: %s\n", strerror(-r)), 1;
	}
	if (attest && measure_phase(t, "attested") < 0)
		return 1;
	r = reseal_strict(t, cd, path, key, stale, snapshot ? seen : NULL, false);
	return r < 0 ? 1 : 0;
}
