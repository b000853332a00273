/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "attest.h"
#include "pcr.h"
#include "secbuf.h"

struct crypt_device;

/*
 * Seals a new disk key under spec (PCRs without a given value take the TPM's current one; spec
 * is completed in place) and adds its keyslot and token to cd, authorised by existing (what
 * existing_what names: "key file" or "passphrase"). Every failure is logged in one line naming
 * path and saying what was left behind; ret_* are written only on success.
 */
int enroll_volume(struct crypt_device *cd, const char *path, const struct secbuf *existing, const char *existing_what,
		  struct pcr_spec *spec, uint16_t alg, bool srk, int *ret_slot, int *ret_token);
/*
 * The same through a TPM connection the caller holds (NULL: one of its own); replaces (NULL:
 * none), the token_blob_digest of the token this one is written to replace, goes into the token
 * as keystrap-replaces, so that luks_repair finishes the replacement if it is cut short.
 */
struct tpm;
int enroll_volume_tpm(struct tpm *t, struct crypt_device *cd, const char *path, const struct secbuf *existing,
		      const char *existing_what, struct pcr_spec *spec, uint16_t alg, bool srk,
		      const uint8_t *replaces, int *ret_slot, int *ret_token);

/* size bytes from getrandom in a new secbuf; a failure is logged. */
int enroll_random(size_t size, struct secbuf **ret);

/*
 * Seals secret in the TPM (through t; NULL: a connection of its own) under spec (completed in
 * place, as enroll_volume does) and fills in tok's sealed object and policy fields (not its
 * keyslot). One line on failure.
 */
struct tpm2_token;
int enroll_seal(struct tpm *t, struct pcr_spec *spec, uint16_t alg, bool srk, const struct secbuf *secret,
		struct tpm2_token *tok);

/*
 * luks_enroll, each failure said in one line naming path and what was left behind; make_json
 * may refuse with -ECANCELED after saying why itself (before anything is written).
 */
int enroll_add_keyslot(struct crypt_device *cd, const char *path, const struct secbuf *existing,
		       const char *existing_what, const struct secbuf *passphrase,
		       int (*make_json)(int slot, void *userdata, char **ret_json), void *userdata,
		       int *ret_slot, int *ret_token);

/*
 * enroll --replace: enroll_replace_check, before anything is written, lists the tokens of type
 * (systemd-tpm2 for --replace) there are (*ret_old, a bitmask) and refuses (-EBUSY) when one cannot go with its
 * keyslots; enroll_replace, once the new keyslot and token are committed, removes them, each
 * with its keyslots (*ret_keyslots), keyslots first. A kill at any point leaves the old token
 * or the new one, never a keyslot without its token. One line on failure, naming path.
 */
int enroll_replace_check(struct crypt_device *cd, const char *path, const char *type, uint32_t *ret_old);
/* The same refusal for the tokens in the bitmask tokens only (reseal: the stale ones). */
int enroll_replace_check_tokens(struct crypt_device *cd, const char *path, uint32_t tokens);
int enroll_replace(struct crypt_device *cd, const char *path, int slot, int token, uint32_t old,
		   uint32_t *ret_keyslots);

/*
 * enroll --recovery-key: a fresh recovery key in systemd-cryptenroll's form (token_recovery_key)
 * as the passphrase of a new keyslot, with a systemd-recovery token bound to it, committed as
 * enroll_volume commits (a cut leaves what luks_repair removes). *ret_key is the key, for the
 * caller to show once.
 */
int enroll_recovery(struct crypt_device *cd, const char *path, const struct secbuf *existing,
		    const char *existing_what, struct secbuf **ret_key, int *ret_slot, int *ret_token);

/*
 * enroll --attested (enroll-attested.c): share_tpm, sealed in this TPM under spec, and
 * share_srv, given to attest->server inside an attestation (disk_share_put); only once that
 * attestation passed and its reply verified, a keyslot whose passphrase is
 * token_attested_passphrase of both, with a keystrap-attested token, through enroll_add_keyslot
 * (a kill leaves what luks_repair removes). A failed or refused attestation writes nothing:
 * -ECANCELED, its cause logged, then a line saying so; *ret_failure says which kind. Once the
 * new token is committed, every earlier keystrap-attested token goes (the server keeps one
 * share per node and volume: the new one) and, when !offline, every systemd-tpm2 token, each
 * with its keyslots (enroll_replace).
 */
struct enroll_attested_result {
	int keyslot, token;
	uint32_t replaced;         /* tokens removed */
	uint32_t keyslots_removed; /* ... with these keyslots */
};
int enroll_attested(struct crypt_device *cd, const char *path, const struct secbuf *existing,
		    const char *existing_what, struct pcr_spec *spec, uint16_t alg, bool srk,
		    const struct attest_options *attest, bool offline, struct enroll_attested_result *ret,
		    enum attest_failure *ret_failure);
