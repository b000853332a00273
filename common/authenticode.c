/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "authenticode.h"
#include "macro.h"
#include "unaligned.h"

#define PE_OFFSET_FIELD 0x3c
#define COFF_HEADER 20u
#define SECTION_HEADER 40u
#define PE32_MAGIC 0x10b
#define PE32PLUS_MAGIC 0x20b
#define CHECKSUM_AT 64u        /* in the optional header, both formats */
#define DIRECTORIES_PE32 96u   /* where the data directories start */
#define DIRECTORIES_PE32PLUS 112u
#define CERT_DIRECTORY 4u      /* IMAGE_DIRECTORY_ENTRY_SECURITY */

static _printf_(2, 3) int bad(char *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(err, AUTHENTICODE_ERROR_MAX, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static bool fits(size_t size, uint64_t off, uint64_t n)
{
	return off <= size && n <= size - off;
}

struct section {
	uint32_t offset, size;
};

static int by_offset(const void *a, const void *b)
{
	const struct section *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static void md_ctx_freep(EVP_MD_CTX **p)
{
	EVP_MD_CTX_free(*p);
}

int authenticode_digest(const uint8_t *d, size_t size, const struct pcr_bank *bank, uint8_t *out,
			char err[static AUTHENTICODE_ERROR_MAX])
{
	_cleanup_(md_ctx_freep) EVP_MD_CTX *ctx = NULL;
	_cleanup_free_ struct section *sections = NULL;
	const EVP_MD *md = EVP_get_digestbyname(bank->md);
	uint64_t pe, opt, opt_size, checksum, dirs, cert_entry = 0, headers, table, hashed, cert_size = 0;
	uint32_t n_dirs, n_sections, n = 0;
	uint16_t magic;
	bool ok;

	err[0] = 0;
	if (!md || (size_t)EVP_MD_get_size(md) != bank->size)
		return -EOPNOTSUPP;
	if (size < PE_OFFSET_FIELD + 4 || d[0] != 'M' || d[1] != 'Z')
		return bad(err, "not a PE/COFF image (no MZ header)");
	pe = le32(d + PE_OFFSET_FIELD);
	if (!fits(size, pe, 4 + COFF_HEADER) || memcmp(d + pe, "PE\0\0", 4) != 0)
		return bad(err, "not a PE/COFF image (no PE signature at offset %llu)", (unsigned long long)pe);
	n_sections = le16(d + pe + 6);
	opt_size = le16(d + pe + 20);
	opt = pe + 4 + COFF_HEADER;
	if (!fits(size, opt, opt_size) || opt_size < 2)
		return bad(err, "PE optional header (%llu bytes) runs past the end of the file (%zu bytes)",
			   (unsigned long long)opt_size, size);
	magic = le16(d + opt);
	if (magic != PE32_MAGIC && magic != PE32PLUS_MAGIC)
		return bad(err, "PE optional header magic 0x%04x is neither PE32 nor PE32+", magic);
	dirs = magic == PE32_MAGIC ? DIRECTORIES_PE32 : DIRECTORIES_PE32PLUS;
	if (opt_size < dirs)
		return bad(err, "PE optional header of %llu bytes is too short for its format",
			   (unsigned long long)opt_size);
	n_dirs = le32(d + opt + dirs - 4);
	if (n_dirs > (opt_size - dirs) / 8)
		return bad(err, "PE optional header declares %u data directories, more than fit", n_dirs);
	headers = le32(d + opt + 60);
	checksum = opt + CHECKSUM_AT;
	table = opt + opt_size;
	if (n_sections > AUTHENTICODE_SECTIONS_MAX)
		return bad(err, "PE image has %u sections; at most %u are accepted", n_sections,
			   AUTHENTICODE_SECTIONS_MAX);
	if (!fits(size, table, (uint64_t)n_sections * SECTION_HEADER))
		return bad(err, "PE section table runs past the end of the file (%zu bytes)", size);
	if (headers < table + (uint64_t)n_sections * SECTION_HEADER || headers > size)
		return bad(err, "PE SizeOfHeaders %llu does not cover the headers within the file (%zu bytes)",
			   (unsigned long long)headers, size);
	if (n_dirs > CERT_DIRECTORY) {
		cert_entry = opt + dirs + 8 * CERT_DIRECTORY;
		cert_size = le32(d + cert_entry + 4);
	}

	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	/* Headers, less the checksum and (where there is one) the certificate table entry. */
	ok = EVP_DigestInit_ex(ctx, md, NULL) && EVP_DigestUpdate(ctx, d, checksum);
	if (cert_entry)
		ok = ok && EVP_DigestUpdate(ctx, d + checksum + 4, cert_entry - checksum - 4) &&
		     EVP_DigestUpdate(ctx, d + cert_entry + 8, headers - cert_entry - 8);
	else
		ok = ok && EVP_DigestUpdate(ctx, d + checksum + 4, headers - checksum - 4);
	hashed = headers;

	sections = calloc(n_sections ? n_sections : 1, sizeof(*sections));
	if (!sections)
		return -ENOMEM;
	for (uint32_t i = 0; i < n_sections; i++) {
		const uint8_t *s = d + table + (uint64_t)i * SECTION_HEADER;
		struct section x = { .size = le32(s + 16), .offset = le32(s + 20) };

		if (x.size == 0)
			continue;
		if (!fits(size, x.offset, x.size))
			return bad(err, "PE section %u (%u bytes at offset %u) runs past the end of the file "
				   "(%zu bytes)", i, x.size, x.offset, size);
		sections[n++] = x;
	}
	qsort(sections, n, sizeof(*sections), by_offset);
	for (uint32_t i = 0; i < n && ok; i++) {
		ok = EVP_DigestUpdate(ctx, d + sections[i].offset, sections[i].size);
		hashed += sections[i].size;
	}
	/* Data after the sections (a UKI's appended payloads, debug data), but not the signatures. */
	if (ok && size > hashed && size - hashed > cert_size)
		ok = EVP_DigestUpdate(ctx, d + hashed, size - hashed - cert_size);
	if (!ok || !EVP_DigestFinal_ex(ctx, out, NULL))
		return -EIO;
	return 0;
}
