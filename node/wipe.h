/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "luks.h"

/*
 * keystrap wipe: removes token from cd with the keyslots bound to it (luks_remove_token). A
 * token that is not a TPM one (token_type_is_tpm) goes only with force; never, even with force,
 * a keyslot another token shares, the last keyslot bound to no TPM token, or the last keyslot.
 * *ret says what went. Each refusal and failure is logged in one line naming path and token,
 * and what a failed write left.
 */
int wipe_token(struct crypt_device *cd, const char *path, int token, bool force, struct luks_removal *ret);
