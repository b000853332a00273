/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * Reads a whole (non-secret) file of at most max bytes, NUL-terminated after the data.
 * Reads to EOF rather than trusting st_size: securityfs and procfs files report 0.
 * -EFBIG when the file is larger than max.
 */
int read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_size);
