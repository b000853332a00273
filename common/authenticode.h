/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "pcr.h"

/* "PE header at offset 1234 runs past the end of the file (1300 bytes)" fits. */
#define AUTHENTICODE_ERROR_MAX 160
/* More sections than any EFI image has; bounds the work a hostile file can ask for. */
#define AUTHENTICODE_SECTIONS_MAX 256

/*
 * The Authenticode hash of a PE/COFF image in bank's algorithm, as UEFI firmware measures an
 * EV_EFI_BOOT_SERVICES_APPLICATION (PE/COFF spec, "Calculating the PE Image Hash"; edk2's
 * Tcg2MeasurePeImage): the headers without the checksum and the certificate table entry,
 * the sections in file order, then any data after them but the certificate table. Pure code
 * on a buffer the caller owns. -EBADMSG with a one-line reason in err for what is not a PE
 * image, or whose headers point outside it.
 */
int authenticode_digest(const uint8_t *data, size_t size, const struct pcr_bank *bank, uint8_t *out,
			char err[static AUTHENTICODE_ERROR_MAX]);
