/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * attest-peer: a node that misbehaves on purpose, for tests/bats/server.bats. It runs the same
 * lib/attest-node.c steps keystrap attest runs, but leaves the HTTP to curl, so a test can
 * replay, tamper with or mix up messages. Test-only.
 *
 *   start UNIQUE                    prints the start message: RSA EK + certificate, the AK
 *                                   with unique UNIQUE (hex; the same key again when repeated)
 *   finish UNIQUE CHALLENGE [FAULT] prints the finish message answering CHALLENGE (a file)
 *     FAULT: bad-proof              the proof of activation with one bit flipped
 *            other-tpm=TCTI         the quote made by the AK (same UNIQUE) of another TPM
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest-node.h"
#include "encode.h"
#include "fileio.h"
#include "log.h"
#include "ossl.h"
#include "tpm.h"

static int usage(void)
{
	fprintf(stderr, "usage: attest-peer start UNIQUE | finish UNIQUE CHALLENGE [bad-proof|other-tpm=TCTI]\n");
	return 2;
}

static int fail(const char *what, int r)
{
	fprintf(stderr, "attest-peer: %s: %s\n", what, strerror(-r));
	return 1;
}

static int open_tpm(const char *tcti, struct tpm **ret)
{
	if (tcti)
		setenv("KEYSTRAP_TCTI", tcti, 1);
	return tpm_open(ret);
}

int main(int argc, char **argv)
{
	_cleanup_tpm_ struct tpm *t = NULL;
	_cleanup_tpm_ struct tpm *other = NULL;
	_cleanup_free_ uint8_t *text = NULL;
	_cleanup_free_ char *json = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	static struct attest_start st;
	static struct attest_challenge ch;
	static struct attest_finish fin;
	uint8_t unique[TPM_AK_UNIQUE_SIZE];
	ESYS_TR ek = ESYS_TR_NONE, ak = ESYS_TR_NONE, other_ak = ESYS_TR_NONE;
	const char *what = "", *other_tcti = NULL, *tcti = getenv("KEYSTRAP_TCTI");
	char reason[ATTEST_REASON_MAX];
	bool bad_proof = false;
	size_t size;
	int r;

	setenv("TSS2_LOG", "all+none", 0);
	if (argc < 3 || strlen(argv[2]) != 2 * TPM_AK_UNIQUE_SIZE || hex_decode(argv[2], unique, sizeof(unique)) < 0)
		return usage();
	if (streq(argv[1], "finish")) {
		if (argc < 4 || argc > 5)
			return usage();
		if (argc == 5 && streq(argv[4], "bad-proof"))
			bad_proof = true;
		else if (argc == 5 && strncmp(argv[4], "other-tpm=", 10) == 0)
			other_tcti = argv[4] + 10;
		else if (argc == 5)
			return usage();
	} else if (!streq(argv[1], "start") || argc != 3)
		return usage();

	if ((r = open_tpm(tcti, &t)) < 0)
		return fail("opening the TPM", r);
	if ((r = attest_node_start(t, TPM_EK_RSA2048, unique, &ek, &ak, &st, &what)) < 0)
		return fail(what, r);
	if (streq(argv[1], "start")) {
		tpm_flush(t, &ek);
		tpm_flush(t, &ak);
		if ((r = attest_start_format(&st, &json)) < 0)
			return fail("formatting", r);
		puts(json);
		return 0;
	}
	if ((r = read_file(argv[3], 65536, &text, &size)) < 0)
		what = argv[3];
	else if (attest_challenge_parse((const char *)text, size, &ch, reason) < 0) {
		what = reason;
		r = -EBADMSG;
	} else if (other_tcti && ((r = open_tpm(other_tcti, &other)) < 0 ||
				  (r = tpm_ak_create(other, unique, &other_ak, NULL)) < 0))
		what = "the other TPM's AK";
	else
		r = attest_node_answer(t, ek, ak, &ch, other ? other : t, other ? other_ak : ak, &key, &fin, &what);
	tpm_flush(t, &ek);
	tpm_flush(t, &ak);
	if (other)
		tpm_flush(other, &other_ak);
	if (r < 0)
		return fail(what, r);
	if (bad_proof)
		fin.proof[0] ^= 1;
	if ((r = attest_finish_format(&fin, &json)) < 0)
		return fail("formatting", r);
	puts(json);
	return 0;
}
