/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * common/authenticode.c: a PE32+ image built here byte by byte (two sections out of file
 * order, trailing data, a certificate table), its hash computed here from the ranges the
 * PE/COFF spec names; and the images that are refused, each with its reason.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>

#include "authenticode.h"
#include "tap.h"

#define PE 0x80u
#define OPT (PE + 24u)
#define OPT_SIZE 240u /* PE32+: 112 fixed bytes and 16 directories */
#define TABLE (OPT + OPT_SIZE)
#define HEADERS 0x200u
#define SEC_A 0x400u /* section 0 lies after section 1 in the file */
#define SEC_B 0x200u
#define TRAILER 0x600u
#define CERT 0x640u
#define SIZE 0x680u

static uint8_t img[SIZE];

static void w16(size_t o, uint16_t v) { img[o] = v & 0xff; img[o + 1] = v >> 8; }
static void w32(size_t o, uint32_t v) { w16(o, v & 0xffff); w16(o + 2, v >> 16); }

static void build(void)
{
	for (size_t i = 0; i < SIZE; i++)
		img[i] = (uint8_t)(i * 7 + 3);
	img[0] = 'M';
	img[1] = 'Z';
	w32(0x3c, PE);
	memcpy(img + PE, "PE\0\0", 4);
	w16(PE + 6, 2);          /* sections */
	w16(PE + 20, OPT_SIZE);
	w16(OPT, 0x20b);
	w32(OPT + 60, HEADERS);
	w32(OPT + 108, 16);      /* directories */
	w32(OPT + 112 + 32, CERT);
	w32(OPT + 112 + 36, SIZE - CERT);
	w32(TABLE + 16, 0x200);  /* section 0: SizeOfRawData, PointerToRawData */
	w32(TABLE + 20, SEC_A);
	w32(TABLE + 40 + 16, 0x200);
	w32(TABLE + 40 + 20, SEC_B);
}

static void expected(uint8_t out[32])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t sum = OPT + 64, cert = OPT + 112 + 32;

	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, img, sum);
	EVP_DigestUpdate(c, img + sum + 4, cert - sum - 4);
	EVP_DigestUpdate(c, img + cert + 8, HEADERS - cert - 8);
	EVP_DigestUpdate(c, img + SEC_B, 0x200);
	EVP_DigestUpdate(c, img + SEC_A, 0x200);
	EVP_DigestUpdate(c, img + TRAILER, CERT - TRAILER);
	EVP_DigestFinal_ex(c, out, NULL);
	EVP_MD_CTX_free(c);
}

static bool refused(const char *want)
{
	char err[AUTHENTICODE_ERROR_MAX];
	uint8_t d[32];

	return authenticode_digest(img, SIZE, pcr_bank_by_name("sha256"), d, err) == -EBADMSG &&
	       strstr(err, want) != NULL;
}

int main(void)
{
	const struct pcr_bank *sha256 = pcr_bank_by_name("sha256");
	char err[AUTHENTICODE_ERROR_MAX];
	uint8_t got[32], want[32], plain[32];

	build();
	expected(want);
	CHECK(authenticode_digest(img, SIZE, sha256, got, err) == 0 && memcmp(got, want, 32) == 0,
	      "PE32+ hash: headers less checksum and certificate entry, sections in file order, trailer");
	/* Negative twins: the checksum and certificate table are outside the hash, a section byte is not. */
	w32(OPT + 64, 0xdeadbeef);
	img[CERT + 9] ^= 1;
	CHECK(authenticode_digest(img, SIZE, sha256, got, err) == 0 && memcmp(got, want, 32) == 0,
	      "the checksum and the signatures do not change the hash");
	img[SEC_A + 5] ^= 1;
	CHECK(authenticode_digest(img, SIZE, sha256, got, err) == 0 && memcmp(got, want, 32) != 0,
	      "a changed section byte changes the hash");
	EVP_Digest(img, SIZE, plain, NULL, EVP_sha256(), NULL);
	CHECK(memcmp(got, plain, 32) != 0, "the Authenticode hash is not the file's digest");

	build();
	img[0] = 'X';
	CHECK(refused("no MZ header"), "a file without MZ is refused");
	build();
	img[PE] = 'X';
	CHECK(refused("no PE signature at offset 128"), "a file without the PE signature is refused");
	build();
	w16(OPT, 0x107);
	CHECK(refused("magic 0x0107"), "an unknown optional header magic is refused");
	build();
	w32(TABLE + 20, SIZE - 0x100);
	CHECK(refused("PE section 0 (512 bytes at offset 1408) runs past the end"), "a section past the end is refused");
	build();
	w16(PE + 6, 1000);
	CHECK(refused("1000 sections"), "too many sections are refused");
	build();
	w32(OPT + 60, SIZE + 1);
	CHECK(refused("SizeOfHeaders 1665"), "SizeOfHeaders past the end is refused");
	build();
	w32(OPT + 108, 100);
	CHECK(refused("100 data directories"), "more data directories than fit are refused");
	return TAP_DONE();
}
