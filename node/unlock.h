/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "token.h"
#include "tpm.h"

#define UNLOCK_VOLUMES_MAX 64

struct volume {
	char *path; /* the LUKS2 device or image */
	char *name; /* the device-mapper name to open it as */
};

/*
 * Opens v with the first of its systemd-tpm2 tokens whose key the TPM unseals (*t is connected
 * on first use). signature: systemd's PCR signature file for signed-policy tokens, NULL for
 * systemd's default places. dry_run: only proves the key opens its keyslot. Each failure is logged in one
 * line; -EACCES when no token opened it, -ENOENT when it has none.
 */
int unlock_volume(struct tpm **t, const struct volume *v, const char *signature, bool dry_run);

/*
 * For a token with tpm2_pubkey: the key as the TPM loads it and the signature, from the file
 * signature or (NULL) systemd's default places, for the current values of its
 * tpm2_pubkey_pcrs. Logs why not in one line.
 */
int unlock_signed_policy(struct tpm *t, const char *path, int tok, const struct tpm2_token *k,
			 const char *signature, struct tpm_authorize *ret);

/* Every crypto_LUKS block device with a systemd-tpm2 token, as luks-UUID, into vols (up to
 * UNLOCK_VOLUMES_MAX); the caller frees each path and name. */
int unlock_find_all(struct volume *vols, size_t *n);
