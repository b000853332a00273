/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Minimal TAP for the C unit tests: one "ok N - name" line per check, and the plan "1..N"
 * last, so that tests/unit/run.sh can tell a binary that finished from one that died early.
 */
#pragma once

#include <stdio.h>

static int tap_n, tap_failed;

#define CHECK(cond, name)                                                          \
	do {                                                                       \
		tap_n++;                                                           \
		if (cond)                                                          \
			printf("ok %d - %s: %s\n", tap_n, __FILE__, name);        \
		else {                                                             \
			tap_failed++;                                              \
			printf("not ok %d - %s: %s (line %d)\n", tap_n, __FILE__, \
			       name, __LINE__);                                    \
		}                                                                  \
	} while (0)

/* A check that cannot run here: it counts as passed, with TAP's SKIP directive saying why. */
#define SKIP(name, why) printf("ok %d - %s: %s # SKIP %s\n", ++tap_n, __FILE__, name, why)

#define TAP_DONE() (printf("1..%d\n", tap_n), tap_failed ? 1 : 0)
