/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "secbuf.h"
#include "token.h"
#include "tpm.h"

#define UNLOCK_VOLUMES_MAX 64

struct volume {
	char *path; /* the LUKS2 device or image */
	char *name; /* the device-mapper name to open it as; NULL: only its keyslot checked, as a dry
		     * run's, but what follows an open done (tests/lib/unlock-run: no device-mapper) */
};

/*
 * What unlock knows once a volume opened through its keystrap-attested token, for the step that
 * reseals the strict tokens that failed (node/reseal.c): the hook in unlock_options gets it
 * after the volume is open (or, dry_run, its keyslot checked) and before keystrap locks PCR 15.
 * Everything is valid during the call only; passphrase opens keyslot, so it authorises a new
 * keyslot (luks_enroll's existing). The hook says its own failures; the volume is open either
 * way, so what it returns does not change unlock's result.
 */
struct reseal_pcrs;
struct unlock_attested {
	const struct volume *volume;
	struct crypt_device *cd;         /* the volume's header as unlock loaded it */
	struct tpm *tpm;                 /* connected */
	int token, keyslot;              /* the keystrap-attested token that opened it, and its keyslot */
	uint32_t stale;                  /* systemd-tpm2 tokens tried first whose bound PCRs differed (-EPERM) */
	const struct reseal_pcrs *seen;  /* their bound PCRs as the strict attempt read them (before attest) */
	const struct secbuf *passphrase; /* the attested keyslot's passphrase */
	bool dry_run;
};

struct keystrap_config;
struct unlock_options {
	const char *signature; /* systemd's PCR signature file for signed-policy tokens; NULL: its default places */
	bool dry_run;          /* only prove a key opens its keyslot */
	/*
	 * [Attest] (where an attested token's share comes from) and [Unlock] Offline=; NULL:
	 * config_path is loaded (and measured) the first time a volume with a keystrap-attested
	 * token needs it, into loaded (the caller frees it); neither: no attested unlock.
	 */
	const struct keystrap_config *config;
	const char *config_path;
	struct keystrap_config *loaded;
	bool config_tried;
	int (*attested)(const struct unlock_attested *u, void *userdata);
	void *userdata;
};

/*
 * Opens v with the first of its systemd-tpm2 tokens whose key the TPM unseals (*t is connected
 * on first use), without the network. Only when none does and v has a keystrap-attested token:
 * this TPM's share, then an attestation to [Attest] Server= (which must be the token's) for the
 * server's, then the keyslot both open, then o->attested. Offline=no: where an attested token
 * is, the systemd-tpm2 tokens are not tried. Each failure is logged in one line; -EACCES when
 * no token opened it, -ENOENT when it has none.
 */
int unlock_volume(struct tpm **t, const struct volume *v, struct unlock_options *o);

/*
 * For a token with tpm2_pubkey: the key as the TPM loads it and the signature, from the file
 * signature or (NULL) systemd's default places, for the current values of its
 * tpm2_pubkey_pcrs. Logs why not in one line.
 */
int unlock_signed_policy(struct tpm *t, const char *path, int tok, const struct tpm2_token *k,
			 const char *signature, struct tpm_authorize *ret);

/* Every crypto_LUKS block device with a systemd-tpm2 or keystrap-attested token, as luks-UUID, into vols (up to
 * UNLOCK_VOLUMES_MAX); the caller frees each path and name. */
int unlock_find_all(struct volume *vols, size_t *n);
