/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The lock: after it, nothing sealed to PCR 15's boot value unseals again this boot. */
#include <stdio.h>

#include "measure.h"

int lock_volumes(struct tpm *t)
{
	int r;

	/*
	 * The volumes-unlocked phase: "keystrap:volumes-unlocked" into PCR 15, logged like every
	 * other measurement. Public and fixed: what matters is that PCR 15 leaves the value keys
	 * are sealed against.
	 */
	r = measure_phase(t, "volumes-unlocked");
	if (r < 0)
		return r;
	printf("PCR %d extended: disk keys sealed to this boot can no longer be unsealed\n", LOCK_PCR);
	return 0;
}
