/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The signatures stored beside a policy (server/operator.c policy_signers), as arbitrary bytes:
 * whoever can write to the database controls them, and every server re-verifies them. Input:
 * the policy text, a NUL, then the signatures JSON. One ECDSA P-256 operator key (below; the
 * seeds in tests/fuzz/seeds/policy-signatures/ carry real signatures by its private half).
 * Invariants besides "no crash": a set of signers names only configured keys, and a text
 * nobody signed (the same text with one byte flipped) is signed by no one.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "operator.h"

static const char pub[] = "-----BEGIN PUBLIC KEY-----\n"
			  "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqQZegz0r0Ce1w96Fn1irAfb95HHM\n"
			  "E7rOXc4wzUWkJXKr59/XShGFkyaJxTSOfSTyv/90LigrNstAllpPAFPMpQ==\n"
			  "-----END PUBLIC KEY-----\n";
static struct operator_keys *keys;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[] = "/tmp/fuzz-operator-XXXXXX";
	char *paths[] = { path };
	int fd = mkstemp(path);

	(void)argc;
	(void)argv;
	assert(fd >= 0 && write(fd, pub, sizeof(pub) - 1) == (ssize_t)(sizeof(pub) - 1));
	close(fd);
	assert(operator_keys_load(paths, 1, &keys) == 0);
	unlink(path);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t text_size = nul ? (size_t)(nul - data) : 0;
	char *text = malloc(text_size + 1), *sigs;
	uint32_t signers;

	assert(text);
	memcpy(text, data, text_size);
	text[text_size] = 0;
	sigs = strndup(nul ? (const char *)nul + 1 : (const char *)data, nul ? size - text_size - 1 : size);
	assert(sigs);
	if (policy_signers(keys, text, text_size, sigs, &signers) == 0) {
		assert((signers & ~1u) == 0);
		if (signers && text_size) {
			text[0] ^= 1;
			assert(policy_signers(keys, text, text_size, sigs, &signers) == 0 && signers == 0);
		}
	}
	free(text);
	free(sigs);
	return 0;
}
