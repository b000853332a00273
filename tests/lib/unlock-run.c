/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * unlock-run: keystrap unlock's flow for one volume (node/unlock.c's unlock_volume with the hook
 * keystrap unlock installs, node/reseal.c's reseal_attested) on a LUKS2 image against a real TPM
 * and a real server, where there is no device-mapper to open it: the keyslot is only checked, as a
 * dry run's is, but everything that follows an open is done (the reseal, written), and PCR 15 is
 * not extended. For tests/bats/reseal.bats; keystrap itself always opens the volume.
 *
 *   unlock-run IMAGE CONFIG
 *
 * CONFIG: keystrap.conf with [Attest] and [Unlock] Offline= (measured into PCR 12, as unlock
 * does). Exit 0 when the volume's keyslot opened, 1 otherwise, 2 on usage.
 */
#include <stdio.h>

#include "config.h"
#include "reseal.h"
#include "unlock.h"

int main(int argc, char **argv)
{
	_cleanup_tpm_ struct tpm *t = NULL;
	struct volume v = { .path = NULL, .name = NULL };
	struct unlock_options o = { .attested = reseal_attested };
	int r;

	if (argc != 3)
		return fprintf(stderr, "usage: unlock-run IMAGE CONFIG\n"), 2;
	v.path = argv[1];
	o.config_path = argv[2];
	r = unlock_volume(&t, &v, &o);
	config_free(o.loaded);
	return r < 0 ? 1 : 0;
}
