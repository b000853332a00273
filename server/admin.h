/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "store.h"

/*
 * The admin commands' command line: VERB [ARG] --config FILE [--id ID]. Opens the store the
 * configuration names. Returns 0, or the exit code after saying what was wrong. ret_id and
 * ret_arg NULL: the command takes no --id / no ARG.
 */
int admin_open(int argc, char **argv, const char *usage, const char **ret_id, const char **ret_verb,
	       const char **ret_arg, struct store **ret);
