/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* common/pcr.c: banks, --pcrs parsing (and its errors), the PolicyPCR digest, mask formatting. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
#include "macro.h"
#include "pcr.h"
#include "tap.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const struct pcr_bank *sha1, *sha256, *sha384, *sha512;

static void test_banks(void)
{
	sha1 = pcr_bank_by_name("sha1");
	sha256 = pcr_bank_by_name("sha256");
	sha384 = pcr_bank_by_name("sha384");
	sha512 = pcr_bank_by_name("sha512");
	CHECK(sha1 && sha1->size == 20 && sha1->alg == TPM2_ALG_SHA1, "sha1 bank: 20 bytes");
	CHECK(sha256 && sha256->size == 32 && sha256->alg == TPM2_ALG_SHA256, "sha256 bank: 32 bytes");
	CHECK(sha384 && sha384->size == 48, "sha384 bank: 48 bytes");
	CHECK(sha512 && sha512->size == 64, "sha512 bank: 64 bytes");
	CHECK(!pcr_bank_by_name("md5") && !pcr_bank_by_name("SHA256") && !pcr_bank_by_name(""),
	      "unknown or mis-cased bank names are not found");
	CHECK(pcr_bank_by_alg(TPM2_ALG_SHA256) == sha256 && !pcr_bank_by_alg(TPM2_ALG_NULL) && !pcr_bank_by_alg(TPM2_ALG_AES),
	      "banks are found by algorithm id, non-hash algorithms are not");
}

static void test_bank_digest(void)
{
	uint8_t d[PCR_DIGEST_MAX];
	char hex[2 * PCR_DIGEST_MAX + 1];

	/* FIPS 180-2 "abc" vectors. */
	CHECK(pcr_bank_digest(sha256, "abc", 3, d) == 0, "sha256 digest computes");
	hex_encode(d, 32, hex);
	CHECK(streq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
	      "sha256(\"abc\") matches FIPS 180-2");
	CHECK(pcr_bank_digest(sha1, "abc", 3, d) == 0, "sha1 digest computes");
	hex_encode(d, 20, hex);
	CHECK(streq(hex, "a9993e364706816aba3e25717850c26c9cd0d89d"), "sha1(\"abc\") matches FIPS 180-2");
}

static int parse(const char *s, const struct pcr_bank *bank, struct pcr_spec *spec, char **bad)
{
	*bad = NULL;
	return pcr_spec_parse(s, bank, spec, bad);
}

static void test_spec_parse(void)
{
	struct pcr_spec spec;
	uint8_t want[32];
	char *bad;

	CHECK(parse("7,15", sha256, &spec, &bad) == 0 && spec.mask == (1u << 7 | 1u << 15) && spec.given == 0 &&
	      spec.bank == sha256, "\"7,15\": both bound, values read from the TPM later");
	CHECK(parse("0,23", sha256, &spec, &bad) == 0 && spec.mask == (1u | 1u << 23), "0 and 23 are valid");
	CHECK(parse("15:0", sha256, &spec, &bad) == 0 && spec.mask == 1u << 15 && spec.given == 1u << 15,
	      "\"15:0\" gives PCR 15's value");
	memset(want, 0xee, sizeof(want));
	memset(spec.values[15], 0xee, sizeof(spec.values[15]));
	CHECK(parse("15:0", sha256, &spec, &bad) == 0 && memcmp(spec.values[15], (uint8_t[32]){ 0 }, 32) == 0,
	      "\":0\" is the all-zero digest of the bank");
	CHECK(parse("7,11:" HEX64 ",15:0", sha256, &spec, &bad) == 0 &&
	      spec.mask == (1u << 7 | 1u << 11 | 1u << 15) && spec.given == (1u << 11 | 1u << 15),
	      "a mix of current, given and zero values");
	hex_decode(HEX64, want, 32);
	CHECK(memcmp(spec.values[11], want, 32) == 0, "\":HEX\" stores that digest");
	CHECK(parse("7:" HEX64, sha256, &spec, &bad) == 0, "lower-case hex");
	CHECK(parse("7:0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF", sha256, &spec,
		    &bad) == 0, "upper-case hex");
	CHECK(parse("7:0123456789abcdef0123456789abcdef01234567", sha1, &spec, &bad) == 0,
	      "40 hex digits for the sha1 bank");
	CHECK(parse("07", sha256, &spec, &bad) == 0 && spec.mask == 1u << 7, "a leading zero is accepted");
}

/* Each bad --pcrs value is refused and the offending item is handed back for the message. */
static void test_spec_errors(void)
{
	static const struct {
		const char *in, *bad, *why;
		int bank; /* 1: sha1 */
	} cases[] = {
		{ "24", "24", "PCR 24 does not exist" },
		{ "7,24", "24", "the bad item of a list is the one quoted" },
		{ "7,7", "7", "a PCR listed twice" },
		{ "7,15:0,7:0", "7:0", "a PCR listed twice, once with a value" },
		{ "11:zz", "11:zz", "a value that is not hex" },
		{ "", "", "the empty list" },
		{ "7,", "7,", "a trailing comma" },
		{ ",7", "", "an empty first item" },
		{ "7,,15", "", "an empty middle item" },
		{ "-1", "-1", "a negative index" },
		{ "100", "100", "three digits" },
		{ "x", "x", "not a number" },
		{ " 7", " 7", "leading space" },
		{ "7:", "7:", "a colon without a value" },
		{ "7:00", "7:00", "\"00\" is neither \"0\" nor a full digest" },
		{ "7:0:0", "7:0:0", "two colons" },
		{ "7:" HEX64 "00", "7:" HEX64 "00", "a digest one byte too long" },
		{ "7:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", NULL, "one digit short" },
		{ "7:" HEX64, NULL, "a sha256 digest for the sha1 bank", 1 },
		{ "7:" HEX64 HEX64 HEX64, NULL, "an item longer than any digest" },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct pcr_spec spec;
		char *bad = NULL;
		int r = parse(cases[i].in, cases[i].bank ? sha1 : sha256, &spec, &bad);

		CHECK(r == -EINVAL && bad && (!cases[i].bad || streq(bad, cases[i].bad)), cases[i].why);
		free(bad);
	}
	{
		struct pcr_spec spec;

		CHECK(pcr_spec_parse("24", sha256, &spec, NULL) == -EINVAL, "ret_bad may be NULL");
	}
}

/*
 * Known vectors, produced once with tpm2-tools 5.4 on swtpm 0.7 (a trial session computes the
 * same digest a real TPM does), e.g. for the first one:
 *   head -c 64 /dev/zero >v; tpm2_createpolicy --policy-pcr -l sha256:7,15 -f v -L p; xxd -p -c64 p
 * (the -f file holds the PCR values concatenated in index order).
 */
static void test_policy_digest(void)
{
	static const struct {
		const char *spec, *bank, *digest, *why;
	} vectors[] = {
		{ "7:0,15:0", "sha256", "f62d13a8dfa1a3dca5b7f16214692abd321889814e17d52ab9e830623eb8f15d",
		  "sha256 PCRs 7+15 at zero (keystrap's default after a fresh boot)" },
		{ "11:" HEX64, "sha256", "d3940ed96e13091c7b95ed4e6fbde8b8c23f6b4b0e12baec9a84992701138e56",
		  "sha256 PCR 11 at a given value" },
		{ "7:0", "sha1", "84278b60d0547dc27ec6667e7afeece0711c09b5ced09a30a65b389d3afda1ef",
		  "sha1 PCR 7 at zero: the policy hash is sha256 whatever the bank" },
		{ "0:0,23:0123456789abcdef0123456789abcdef01234567", "sha1",
		  "c7958e70b9ca5d8120a98ad225f5649a0b02be39f3ba137b39024be9a4a84d58",
		  "sha1 PCRs 0 and 23: the selection spans all three bytes" },
		{ "0:0", "sha384", "9bd43a810c4bfecc42d29a48834a677552a4313308caa1b5029fcb93afbcdcf8",
		  "sha384 PCR 0 at zero (also what the TPM itself computes: tpm2_policypcr in a trial "
		  "session on a swtpm with the sha384 bank active)" },
	};

	for (size_t i = 0; i < ELEMENTSOF(vectors); i++) {
		struct pcr_spec spec;
		uint8_t d[32];
		char hex[65], *bad = NULL;

		if (parse(vectors[i].spec, pcr_bank_by_name(vectors[i].bank), &spec, &bad) < 0) {
			CHECK(0, vectors[i].why);
			free(bad);
			continue;
		}
		CHECK(pcr_policy_digest(&spec, d) == 0, "policy digest computes");
		hex_encode(d, 32, hex);
		CHECK(streq(hex, vectors[i].digest), vectors[i].why);
	}
	{
		struct pcr_spec spec;
		uint8_t d[32];
		char *bad = NULL;

		CHECK(parse("7,15:0", sha256, &spec, &bad) == 0 && pcr_policy_digest(&spec, d) == -EINVAL,
		      "no digest while a bound PCR's value is still unknown");
	}
}

static void test_selection_and_format(void)
{
	TPML_PCR_SELECTION sel;
	char buf[80];

	pcr_selection_from_mask(1u << 7 | 1u << 15 | 1u << 23, TPM2_ALG_SHA1, &sel);
	CHECK(sel.count == 1 && sel.pcrSelections[0].hash == TPM2_ALG_SHA1 &&
	      sel.pcrSelections[0].sizeofSelect == 3 && sel.pcrSelections[0].pcrSelect[0] == 0x80 &&
	      sel.pcrSelections[0].pcrSelect[1] == 0x80 && sel.pcrSelections[0].pcrSelect[2] == 0x80,
	      "selection bitmap: PCR n is bit n%8 of byte n/8");

	pcr_mask_format(1u << 7 | 1u << 15, buf, sizeof(buf));
	CHECK(streq(buf, "7,15"), "mask formats as \"7,15\"");
	pcr_mask_format(0xffffff, buf, sizeof(buf));
	CHECK(streq(buf, "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23"), "all 24 PCRs");
	pcr_mask_format(0, buf, sizeof(buf));
	CHECK(streq(buf, ""), "no PCR formats as the empty string");
	memset(buf, 'x', sizeof(buf));
	pcr_mask_format(0xffffff, buf, 8);
	CHECK(strnlen(buf, 8) < 8 && strncmp(buf, "0,1,2,3", 7) == 0 && buf[8] == 'x',
	      "a short buffer is truncated, terminated, and not overrun");
}

int main(void)
{
	test_banks();
	test_bank_digest();
	test_spec_parse();
	test_spec_errors();
	test_policy_digest();
	test_selection_and_format();
	return TAP_DONE();
}
