/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "tpm.h"

#define UNLOCK_VOLUMES_MAX 64

struct volume {
	char *path; /* the LUKS2 device or image */
	char *name; /* the device-mapper name to open it as */
};

/*
 * Opens v with the first of its systemd-tpm2 tokens whose key the TPM unseals (*t is connected
 * on first use). dry_run: only proves the key opens its keyslot. Each failure is logged in one
 * line; -EACCES when no token opened it, -ENOENT when it has none.
 */
int unlock_volume(struct tpm **t, const struct volume *v, bool dry_run);

/* Every crypto_LUKS block device with a systemd-tpm2 token, as luks-UUID, into vols (up to
 * UNLOCK_VOLUMES_MAX); the caller frees each path and name. */
int unlock_find_all(struct volume *vols, size_t *n);
