/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * attest-peer: a node that misbehaves on purpose, for tests/bats/server.bats. It runs the same
 * node/attest-node.c steps keystrap attest runs, but leaves the HTTP to curl, so a test can
 * replay, tamper with or mix up messages. Test-only.
 *
 *   start UNIQUE [EK]               prints the start message: RSA EK + certificate, the AK
 *                                   with unique UNIQUE (hex; the same key again when repeated)
 *     EK: ek-policy=HEX             the same EK (the certified key) re-encoded with another
 *         ek-attrs=HEX              authPolicy, other objectAttributes, or the default
 *         ek-exponent               exponent written out as 65537: what no TPM derived
 *   finish UNIQUE CHALLENGE [FAULT] prints the finish message answering CHALLENGE (a file), with
 *                                   the logs $PEER_EVENT_LOG and $KEYSTRAP_MEASURE_LOG (if set)
 *     FAULT: bad-proof              the proof of activation with one bit flipped
 *            other-tpm=TCTI         the quote made by the AK (same UNIQUE) of another TPM
 *   open UNIQUE CHALLENGE RESULT    opens RESULT's secret payload with this TPM's EK and the AK
 *                                   UNIQUE; prints each secret as NAME=SHA256-OF-VALUE
 *   secret UNIQUE CHALLENGE         activates CHALLENGE's credential and prints the activation
 *                                   secret (hex), for a test that looks for it where it must not be
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tss2/tss2_mu.h>

#include "attest-node.h"
#include "encode.h"
#include "fileio.h"
#include "log.h"
#include "ossl.h"
#include "payload.h"
#include "secbuf.h"
#include "tpm.h"
#include "tpmpub.h"

static int usage(void)
{
	fprintf(stderr, "usage: attest-peer start UNIQUE [ek-policy=HEX|ek-attrs=HEX|ek-exponent] |\n"
			"                   finish UNIQUE CHALLENGE [bad-proof|other-tpm=TCTI] |\n"
			"                   open UNIQUE CHALLENGE RESULT | secret UNIQUE CHALLENGE\n");
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

/* The start's EK, the key the certificate certifies, in a public area no TPM derived. */
static int reencode_ek(struct attest_start *st, const char *how)
{
	struct tpm_pub ek;
	TPM2B_DIGEST *policy = &ek.area.authPolicy;
	char *end;
	int r;

	if ((r = tpm_pub_parse(st->ek_pub, st->ek_pub_size, &ek)) < 0)
		return r;
	if (strncmp(how, "ek-policy=", 10) == 0) {
		policy->size = (uint16_t)(strlen(how + 10) / 2);
		if (policy->size > sizeof(policy->buffer) || hex_decode(how + 10, policy->buffer, policy->size) < 0)
			return -EINVAL;
	} else if (strncmp(how, "ek-attrs=", 9) == 0) {
		ek.area.objectAttributes = (TPMA_OBJECT)strtoul(how + 9, &end, 16);
		if (*end)
			return -EINVAL;
	} else if (streq(how, "ek-exponent"))
		ek.area.parameters.rsaDetail.exponent = 65537;
	else
		return -EINVAL;
	return tpm_pub_marshal(&ek, st->ek_pub, sizeof(st->ek_pub), &st->ek_pub_size);
}

static int log_from_env(const char *name, uint8_t **ret, size_t *ret_size)
{
	const char *path = getenv(name);
	int r;

	*ret = NULL;
	*ret_size = 0;
	if (!path)
		return 0;
	r = read_file(path, 1 << 20, ret, ret_size);
	return r == -ENOENT ? 0 : r;
}

static int open_payload(struct tpm *t, ESYS_TR ek, ESYS_TR ak, const struct attest_challenge *ch, const char *path,
			const char **what)
{
	_cleanup_free_ uint8_t *text = NULL;
	struct attest_result res;
	struct node_secret *s = NULL;
	char reason[ATTEST_REASON_MAX];
	size_t size, n = 0;
	int r;

	if ((r = read_file(path, 1 << 20, &text, &size)) < 0) {
		*what = path;
		return r;
	}
	if (attest_result_parse((const char *)text, size, &res, reason) < 0) {
		*what = "parsing the result";
		return -EBADMSG;
	}
	r = attest_node_open(t, ek, ak, ch->session, &res.payload, &s, &n, what);
	attest_result_done(&res);
	for (size_t i = 0; i < n; i++) {
		uint8_t d[32];
		char hex[65];

		if (pcr_bank_digest(pcr_bank_by_name("sha256"), s[i].value->data, s[i].value->size, d) < 0)
			return -EIO;
		hex_encode(d, sizeof(d), hex);
		printf("%s=%s\n", s[i].name, hex);
	}
	node_secrets_free(s, n);
	return r;
}

static int print_secret(struct tpm *t, ESYS_TR ek, ESYS_TR ak, const struct attest_challenge *ch, const char **what)
{
	_cleanup_secbuf_ struct secbuf *secret = NULL, *hex = NULL;
	TPM2B_ID_OBJECT blob = {};
	TPM2B_ENCRYPTED_SECRET seed = {};
	size_t off = 0;
	int r;

	*what = "reading the credential";
	if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(ch->credential_blob, ch->credential_blob_size, &off, &blob) != 0)
		return -EBADMSG;
	off = 0;
	if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(ch->credential_seed, ch->credential_seed_size, &off, &seed) != 0)
		return -EBADMSG;
	*what = "ActivateCredential";
	if ((r = tpm_credential_activate(t, ak, ek, &blob, &seed, &secret)) < 0)
		return r;
	if (!(hex = secbuf_new(2 * secret->size + 1)))
		return -ENOMEM;
	hex_encode(secret->data, secret->size, (char *)hex->data);
	puts((char *)hex->data);
	return 0;
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
	} else if (streq(argv[1], "open")) {
		if (argc != 5)
			return usage();
	} else if (streq(argv[1], "secret")) {
		if (argc != 4)
			return usage();
	} else if (!streq(argv[1], "start") || argc > 4)
		return usage();

	if ((r = open_tpm(tcti, &t)) < 0)
		return fail("opening the TPM", r);
	if ((r = attest_node_start(t, TPM_EK_RSA2048, unique, &ek, &ak, &st, &what)) < 0)
		return fail(what, r);
	if (streq(argv[1], "start")) {
		tpm_flush(t, &ek);
		tpm_flush(t, &ak);
		if (argc == 4 && reencode_ek(&st, argv[3]) < 0)
			return usage();
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
	} else if (streq(argv[1], "open"))
		r = open_payload(t, ek, ak, &ch, argv[4], &what);
	else if (streq(argv[1], "secret"))
		r = print_secret(t, ek, ak, &ch, &what);
	else if (other_tcti && ((r = open_tpm(other_tcti, &other)) < 0 ||
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
	if (streq(argv[1], "open") || streq(argv[1], "secret"))
		return 0;
	memcpy(fin.ek_pub, st.ek_pub, st.ek_pub_size);
	fin.ek_pub_size = st.ek_pub_size;
	if ((r = log_from_env("PEER_EVENT_LOG", &fin.event_log, &fin.event_log_size)) < 0 ||
	    (r = log_from_env("KEYSTRAP_MEASURE_LOG", (uint8_t **)&fin.cel_log, &fin.cel_log_size)) < 0)
		return fail("reading a log", r);
	if (bad_proof)
		fin.proof[0] ^= 1;
	r = attest_finish_format(&fin, &json);
	attest_finish_done(&fin);
	if (r < 0)
		return fail("formatting", r);
	puts(json);
	return 0;
}
