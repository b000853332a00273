/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * disk-share: what an attacker holding one half of an attested keyslot can do with it, for
 * tests/bats/attested.bats. Test-only.
 *
 *   disk-share get DATABASE KEK EK-HASH VOLUME
 *       the server's share as its database and KEK give it (a stolen database with its KEK),
 *       base64 on stdout;
 *   disk-share try IMAGE TOKEN SHARE-SRV-BASE64 tpm|random
 *       derives the attested keyslot's passphrase from share_tpm (unsealed from token TOKEN's
 *       blob by the TPM at KEYSTRAP_TCTI, or 32 random bytes) and the given server share, and
 *       checks it against the token's keyslot. Exit 0: it opens the keyslot; 1: it does not;
 *       2: share_tpm could not be unsealed (another TPM, other PCRs); 3: anything else.
 *   disk-share show IMAGE TOKEN SHARE-SRV-BASE64 tpm
 *       as try, and prints share_tpm (base64 and hex) and the passphrase on one line: what a
 *       test then looks for in everything keystrap printed or wrote, where none may be.
 *
 * Neither share nor the passphrase is ever printed by try.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "encode.h"
#include "luks.h"
#include "store.h"
#include "token.h"
#include "tpm.h"

static int get(char **argv)
{
	_cleanup_secbuf_ struct secbuf *share = NULL;
	struct store *s = NULL;
	char *b64;
	int r;

	if (store_open(argv[0], argv[1], &s) < 0)
		return fprintf(stderr, "disk-share: cannot open the store %s\n", argv[0]), 3;
	r = store_disk_share_get(s, argv[2], argv[3], &share);
	store_close(s);
	if (r < 0)
		return fprintf(stderr, "disk-share: no share: %s\n", strerror(-r)), 1;
	b64 = calloc(1, base64_encoded_len(share->size) + 1);
	if (!b64)
		return 3;
	base64_encode(share->data, share->size, b64);
	printf("%s\n", b64);
	free(b64);
	return 0;
}

static int try(char **argv, bool show)
{
	_cleanup_secbuf_ struct secbuf *share_tpm = NULL, *share_srv = secbuf_new(TOKEN_SHARE_SIZE), *pass = NULL;
	_cleanup_crypt_ struct crypt_device *cd = NULL;
	_cleanup_free_ struct attested_token *k = calloc(1, sizeof(*k));
	const char *json = NULL, *why = NULL;
	int tok = atoi(argv[1]), r;
	long n;

	if (!k || !share_srv || luks_open(argv[0], &cd) < 0 || crypt_token_json_get(cd, tok, &json) < 0 ||
	    token_attested_parse(json, strlen(json), k, &why) < 0)
		return fprintf(stderr, "disk-share: no attested token %d in %s: %s\n", tok, argv[0], why ?: ""), 3;
	n = base64_decode(argv[2], strlen(argv[2]), share_srv->data, TOKEN_SHARE_SIZE);
	if (n != TOKEN_SHARE_SIZE)
		return fprintf(stderr, "disk-share: the server share is not base64 of 32 bytes\n"), 3;
	if (strcmp(argv[3], "tpm") == 0) {
		_cleanup_tpm_ struct tpm *t = NULL;
		ESYS_TR parent = ESYS_TR_NONE;

		if ((r = tpm_open(&t)) < 0 || (r = tpm_primary_create(t, k->tpm.primary_alg, &parent)) < 0)
			return fprintf(stderr, "disk-share: the TPM: %s\n", strerror(-r)), 3;
		r = tpm_unseal(t, parent, k->tpm.blob, k->tpm.blob_size, NULL, k->tpm.bank, k->tpm.pcr_mask, &share_tpm);
		tpm_flush(t, &parent);
		if (r < 0)
			return fprintf(stderr, "disk-share: this TPM does not unseal share_tpm: %s\n", strerror(-r)), 2;
	} else {
		share_tpm = secbuf_new(TOKEN_SHARE_SIZE);
		if (!share_tpm || getrandom(share_tpm->data, TOKEN_SHARE_SIZE, 0) != TOKEN_SHARE_SIZE)
			return 3;
	}
	if (token_attested_passphrase(share_tpm, share_srv, k->volume, &pass) < 0)
		return 3;
	if (show) {
		_cleanup_free_ char *b64 = calloc(1, base64_encoded_len(TOKEN_SHARE_SIZE) + 1);
		char hex[2 * TOKEN_SHARE_SIZE + 1];

		if (!b64)
			return 3;
		base64_encode(share_tpm->data, TOKEN_SHARE_SIZE, b64);
		hex_encode(share_tpm->data, TOKEN_SHARE_SIZE, hex);
		printf("%s %s %.*s\n", b64, hex, (int)pass->size, (const char *)pass->data);
	}
	r = luks_activate(cd, NULL, k->tpm.keyslot, pass);
	if (!show)
		printf("%s keyslot %d\n", r == 0 ? "opens" : "does not open", k->tpm.keyslot);
	return r == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "get") == 0)
		return get(argv + 2);
	if (argc == 6 && strcmp(argv[1], "try") == 0)
		return try(argv + 2, false);
	if (argc == 6 && strcmp(argv[1], "show") == 0)
		return try(argv + 2, true);
	fprintf(stderr, "usage: disk-share get DATABASE KEK EK-HASH VOLUME | (try|show) IMAGE TOKEN SHARE-B64 tpm|random\n");
	return 3;
}
