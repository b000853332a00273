/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "config.h"
#include "tpm.h"

/* PCR 15: disk keys are sealed to its boot value, and the lock moves it. */
#define LOCK_PCR 15
/* PCR 12: everything else keystrap measures (its configuration, the other phases). */
#define MEASURE_PCR 12

#define MEASURE_LOG_DEFAULT "/run/log/keystrap/tpm2-measure.log"

/* The PCR a phase goes to; -EINVAL for a name that is not a phase. */
int measure_phase_pcr(const char *phase);

/*
 * Measures "keystrap:PHASE" (enter-initrd, volumes-unlocked, attested, leave-initrd) into
 * its PCR and appends it to the measurement log. t may be NULL: a connection is made.
 */
int measure_phase(struct tpm *t, const char *phase);
/* The measurement log: path (NULL: $KEYSTRAP_MEASURE_LOG or the default) for what follows. */
void measure_log_use(const char *path);
const char *measure_log_path(void);

/*
 * The one way to read keystrap.conf: reads the file once, parses it strictly, measures those
 * bytes into PCR 12 (once per boot) and only then hands the result out. t may be NULL.
 */
int config_load(struct tpm *t, const char *path, struct keystrap_config **ret);

/*
 * Strictly parses path and applies the no-secrets rule, without measuring: for installers, and
 * for keystrap config get, which only decides what to start (what then acts on the file loads
 * and measures it itself). ret may be NULL.
 */
int config_check(const char *path, struct keystrap_config **ret);

/* Extends PCR 15 so nothing sealed against its boot value can be unsealed again. */
int lock_volumes(struct tpm *t);
