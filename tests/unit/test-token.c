/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* node/token.c: systemd-tpm2 token JSON, format -> parse round trip and one reason per defect. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "encode.h"
#include "macro.h"
#include "tap.h"
#include "token.h"

/* Written by `systemd-cryptenroll --tpm2-device=swtpm:... --tpm2-pcrs=7` (systemd 252). */
static const char cryptenroll_json[] =
	"{\"type\":\"systemd-tpm2\",\"keyslots\":[\"1\"],\"tpm2-blob\":\"AJ4AIMTHPi5Vys//qLs2bTvOGyrIKJfJmi6xye97"
	"/Db3zjUzABCr7OmDYwhnlFaXl1ix7artteULdLAh/1arPWZSulTiYStAbshCYQk/i4YOvwyBd09F1eYOFWjmyp59RvpfSfyUrUnQ"
	"laU+c+ZsXIYTvITtqiz0Bl/n+JAO3RHql5A51fNU/fwnSWb+o98vAlVw6akP2YKbyaBtn/I9kABOAAgACwAAABIAIItWgtgbKUNd"
	"CNeSeBUGEdx+WSOy/vzOaEoJV3tAEwqLABAAIKVslNaDe4CXWJfhanOpWREud4asHqzJq1eU455oWdZS\",\"tpm2-pcrs\":[7],"
	"\"tpm2-pcr-bank\":\"sha256\",\"tpm2-primary-alg\":\"ecc\",\"tpm2-policy-hash\":"
	"\"8b5682d81b29435d08d79278150611dc7e5923b2fefcce684a09577b40130a8b\",\"tpm2-pin\":false}";

static struct tpm2_token tok;

static int parse(const char *json, const char **why)
{
	return token_parse(json, strlen(json), &tok, why);
}

/* A token as keystrap enroll builds it: PCRs 7 and 15 in sha256, an rsa primary, a blob. */
static void sample(struct tpm2_token *t)
{
	memset(t, 0, sizeof(*t));
	t->keyslot = 3;
	t->pcr_mask = 1u << 7 | 1u << 15;
	t->bank = pcr_bank_by_name("sha256");
	t->primary_alg = TPM2_ALG_RSA;
	for (size_t i = 0; i < 240; i++)
		t->blob[i] = (uint8_t)(i * 7 + 1);
	t->blob_size = 240;
	for (size_t i = 0; i < 32; i++)
		t->policy_hash[i] = (uint8_t)(0xa0 + i);
	t->values_mask = t->pcr_mask;
	memset(t->values[7], 0x77, 32);
	memset(t->values[15], 0, 32);
}

static void test_roundtrip(void)
{
	_cleanup_free_ struct tpm2_token *in = calloc(1, sizeof(*in));
	_cleanup_free_ char *json = NULL;
	const char *why = "unset";

	sample(in);
	CHECK(token_format(in, &json) == 0 && json, "token formats");
	CHECK(parse(json, &why) == 0 && why == NULL, "its own output parses, with no reason");
	CHECK(tok.keyslot == 3 && tok.pcr_mask == in->pcr_mask && tok.bank == in->bank &&
	      tok.primary_alg == TPM2_ALG_RSA && !tok.pin && tok.pubkey_size == 0 && tok.srk_size == 0,
	      "keyslot, PCRs, bank, primary, pin survive the round trip");
	CHECK(tok.blob_size == 240 && memcmp(tok.blob, in->blob, 240) == 0, "the blob survives byte for byte");
	CHECK(memcmp(tok.policy_hash, in->policy_hash, 32) == 0, "the policy hash survives");
	CHECK(tok.values_mask == in->values_mask && memcmp(tok.values[7], in->values[7], 32) == 0 &&
	      memcmp(tok.values[15], in->values[15], 32) == 0, "keystrap-pcr-values survive");
	CHECK(strstr(json, "\"type\":\"systemd-tpm2\"") && strstr(json, "\"keyslots\":[\"3\"]") &&
	      strstr(json, "\"tpm2-pcrs\":[7,15]") && strstr(json, "\"tpm2-pcr-bank\":\"sha256\"") &&
	      strstr(json, "\"tpm2-primary-alg\":\"rsa\"") && strstr(json, "\"tpm2-pin\":false") &&
	      strstr(json, "\"tpm2-policy-hash\":\"a0a1a2a3"),
	      "the fields systemd 252 reads are there, spelled as systemd spells them");

	in->primary_alg = TPM2_ALG_ECC;
	in->bank = pcr_bank_by_name("sha1");
	in->values_mask = 0;
	in->pcr_mask = 0;
	in->keyslot = 31;
	free(json);
	json = NULL;
	CHECK(token_format(in, &json) == 0 && parse(json, &why) == 0 && tok.primary_alg == TPM2_ALG_ECC &&
	      tok.bank == in->bank && tok.pcr_mask == 0 && tok.keyslot == 31,
	      "ecc primary, sha1 bank, no PCRs and keyslot 31 round-trip too");
}

static void test_cryptenroll_shape(void)
{
	const char *why = NULL;
	uint8_t hash[32];

	CHECK(parse(cryptenroll_json, &why) == 0, "a systemd-cryptenroll token parses");
	hex_decode("8b5682d81b29435d08d79278150611dc7e5923b2fefcce684a09577b40130a8b", hash, 32);
	CHECK(tok.keyslot == 1 && tok.pcr_mask == 1u << 7 && tok.bank == pcr_bank_by_name("sha256") &&
	      tok.primary_alg == TPM2_ALG_ECC && tok.blob_size == 240 && !tok.pin &&
	      memcmp(tok.policy_hash, hash, 32) == 0, "its fields are read as systemd wrote them");
	CHECK(tok.values_mask == 0, "no keystrap-pcr-values: no expected values are known");
	CHECK(parse("{\"type\":\"systemd-tpm2\",\"keyslots\":[\"0\"],\"tpm2-blob\":\"AAAA\",\"tpm2-pcrs\":[],"
		    "\"tpm2-policy-hash\":\"" "0000000000000000000000000000000000000000000000000000000000000000\"}",
		    &why) == 0 && tok.bank == pcr_bank_by_name("sha256") && tok.primary_alg == TPM2_ALG_ECC &&
	      !tok.pin, "older tokens without bank, primary or pin get systemd's defaults");
	CHECK(parse("{\"type\":\"systemd-tpm2\",\"keyslots\":[\"0\"],\"tpm2-blob\":\"AAAA\",\"tpm2-pcrs\":[7],"
		    "\"tpm2-pin\":true,\"tpm2-policy-hash\":\""
		    "0000000000000000000000000000000000000000000000000000000000000000\"}", &why) == 0 && tok.pin,
	      "tpm2-pin true is read (unlock refuses it)");
	CHECK(parse("{\"type\":\"systemd-tpm2\",\"keyslots\":[\"0\"],\"tpm2-blob\":\"AAAA\",\"tpm2-pcrs\":[7],"
		    "\"tpm2_pubkey\":\"AAAA\",\"tpm2_pubkey_pcrs\":[11],\"tpm2-policy-hash\":\""
		    "0000000000000000000000000000000000000000000000000000000000000000\"}", &why) == 0 &&
	      tok.pubkey_size == 3 && tok.pubkey_pcr_mask == (1u << 11),
	      "tpm2_pubkey and tpm2_pubkey_pcrs are read");
	CHECK(parse("{\"type\":\"systemd-tpm2\",\"keyslots\":[\"0\"],\"tpm2-blob\":\"AAAA\",\"tpm2-pcrs\":[7],"
		    "\"tpm2_pubkey\":\"AAAA\",\"tpm2-policy-hash\":\""
		    "0000000000000000000000000000000000000000000000000000000000000000\"}", &why) == -EINVAL,
	      "tpm2_pubkey without tpm2_pubkey_pcrs is refused");
	CHECK(parse("{\"type\":\"systemd-tpm2\",\"keyslots\":[\"0\"],\"tpm2-blob\":\"AAAA\",\"tpm2-pcrs\":[7],"
		    "\"tpm2_srk\":\"AQIDBA==\",\"future-key\":{\"x\":[1]},\"tpm2-policy-hash\":\""
		    "0000000000000000000000000000000000000000000000000000000000000000\"}", &why) == 0 &&
	      tok.srk_size == 4 && memcmp(tok.srk, "\x01\x02\x03\x04", 4) == 0,
	      "tpm2_srk (systemd >= 254) is read; unknown keys are ignored");
}

/* The cryptenroll token with one key set to raw JSON value (NULL: removed), then parsed. */
static int parse_with(const char *key, const char *value, const char **why)
{
	json_object *root = json_tokener_parse(cryptenroll_json);
	int r;

	if (value)
		json_object_object_add(root, key, json_tokener_parse(value));
	else
		json_object_object_del(root, key);
	r = parse(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN), why);
	json_object_put(root);
	return r;
}

static void test_malformed(void)
{
	static const struct {
		const char *key, *value, *reason;
	} cases[] = {
		{ "type", "\"systemd-fido2\"", "token type is not systemd-tpm2" },
		{ "type", "7", "token type is not systemd-tpm2" },
		{ "type", NULL, "token type is not systemd-tpm2" },
		{ "keyslots", "[]", "token is bound to no keyslot (its keyslot was removed)" },
		{ "keyslots", "[\"1\",\"2\"]", "token must name exactly one keyslot" },
		{ "keyslots", "\"1\"", "token must name exactly one keyslot" },
		{ "keyslots", NULL, "token must name exactly one keyslot" },
		{ "keyslots", "[1]", "token keyslot is not a number from 0 to 31" },
		{ "keyslots", "[\"32\"]", "token keyslot is not a number from 0 to 31" },
		{ "keyslots", "[\"-1\"]", "token keyslot is not a number from 0 to 31" },
		{ "keyslots", "[\"\"]", "token keyslot is not a number from 0 to 31" },
		{ "keyslots", "[\"1x\"]", "token keyslot is not a number from 0 to 31" },
		{ "tpm2-pcrs", NULL, "token lacks tpm2-pcrs" },
		{ "tpm2-pcrs", "\"7\"", "token lacks tpm2-pcrs" },
		{ "tpm2-pcrs", "[\"7\"]", "tpm2-pcrs holds something other than a number" },
		{ "tpm2-pcrs", "[7.5]", "tpm2-pcrs holds something other than a number" },
		{ "tpm2-pcrs", "[24]", "tpm2-pcrs holds a PCR index outside 0..23" },
		{ "tpm2-pcrs", "[-1]", "tpm2-pcrs holds a PCR index outside 0..23" },
		{ "tpm2-pcrs", "[4294967303]", "tpm2-pcrs holds a PCR index outside 0..23" },
		{ "tpm2-pcr-bank", "\"md5\"", "tpm2-pcr-bank names an unknown bank" },
		{ "tpm2-primary-alg", "\"dsa\"", "tpm2-primary-alg is neither ecc nor rsa" },
		{ "tpm2-blob", NULL, "token lacks tpm2-blob" },
		{ "tpm2-blob", "42", "token lacks tpm2-blob" },
		{ "tpm2-blob", "\"\"", "tpm2-blob is not valid base64" },
		{ "tpm2-blob", "\"AJ4AIMTH*i5V\"", "tpm2-blob is not valid base64" },
		{ "tpm2-blob", "\"AJ4\"", "tpm2-blob is not valid base64" },
		{ "tpm2-policy-hash", NULL, "tpm2-policy-hash is missing or not a sha256 digest in hex" },
		{ "tpm2-policy-hash", "\"8b5682d81b29435d08d79278150611dc\"",
		  "tpm2-policy-hash is missing or not a sha256 digest in hex" },
		{ "tpm2-policy-hash", "\"zz5682d81b29435d08d79278150611dc7e5923b2fefcce684a09577b40130a8b\"",
		  "tpm2-policy-hash is missing or not a sha256 digest in hex" },
		{ "keystrap-pcr-values", "{\"x\":\"00\"}", "keystrap-pcr-values has a key that is not a PCR index" },
		{ "keystrap-pcr-values", "{\"24\":\"00\"}", "keystrap-pcr-values has a key that is not a PCR index" },
		{ "keystrap-pcr-values",
		  "{\"15\":\"0000000000000000000000000000000000000000000000000000000000000000\"}",
		  "keystrap-pcr-values names a PCR the token does not bind" },
		{ "keystrap-pcr-values", "{\"7\":\"0000000000000000000000000000000000000000\"}",
		  "keystrap-pcr-values has a value that is not a digest of the bank's size" },
		{ "keystrap-pcr-values", "{\"7\":0}",
		  "keystrap-pcr-values has a value that is not a digest of the bank's size" },
		{ "tpm2_srk", "\"not base64!\"", "tpm2_srk is not valid base64 of a serialized handle" },
		{ "tpm2_srk", "\"\"", "tpm2_srk is not valid base64 of a serialized handle" },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const char *why = NULL;
		char name[200];
		int r = parse_with(cases[i].key, cases[i].value, &why);

		snprintf(name, sizeof(name), "%s = %s: \"%s\"", cases[i].key,
			 cases[i].value ? cases[i].value : "(absent)", cases[i].reason);
		CHECK(r == -EINVAL && why && streq(why, cases[i].reason), name);
	}
}

static void test_blob_limits(void)
{
	_cleanup_free_ uint8_t *raw = calloc(1, TOKEN_BLOB_MAX + 1);
	_cleanup_free_ char *b64 = malloc(base64_encoded_len(TOKEN_BLOB_MAX + 1) + 3);
	const char *why = NULL;

	base64_encode(raw, TOKEN_BLOB_MAX, b64 + 1);
	b64[0] = '"';
	strcat(b64, "\"");
	CHECK(parse_with("tpm2-blob", b64, &why) == 0 && tok.blob_size == TOKEN_BLOB_MAX,
	      "a blob of exactly 4 KiB is accepted");
	base64_encode(raw, TOKEN_BLOB_MAX + 1, b64 + 1);
	strcat(b64, "\"");
	CHECK(parse_with("tpm2-blob", b64, &why) == -EINVAL && why && streq(why, "tpm2-blob is larger than 4 KiB"),
	      "a blob one byte over 4 KiB: \"tpm2-blob is larger than 4 KiB\"");
}

static void test_not_json(void)
{
	static const struct {
		const char *json, *name;
	} cases[] = {
		{ "", "empty input" },
		{ "{", "an unterminated object" },
		{ "[]", "an array, not an object" },
		{ "\"systemd-tpm2\"", "a bare string" },
		{ "null", "null" },
		{ "{\"type\":\"systemd-tpm2\"} {}", "a second value after the object" },
		{ "{\"type\":\"systemd-tpm2\"}x", "garbage after the object" },
		{ "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]}", "nesting deeper than 16" },
	};
	_cleanup_free_ char *big = malloc(TOKEN_JSON_MAX + 2);
	const char *why = NULL;

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		char name[120];

		why = NULL;
		snprintf(name, sizeof(name), "%s: \"token is not a well-formed JSON object\"", cases[i].name);
		CHECK(parse(cases[i].json, &why) == -EINVAL && why &&
		      streq(why, "token is not a well-formed JSON object"), name);
	}
	why = NULL;
	CHECK(token_parse("{\"type\":\"systemd-tpm2\"}\0{}", 25, &tok, &why) == -EINVAL && why,
	      "bytes after an embedded NUL are not ignored");

	/* Well-formed but over the limit: refused before json-c sees it. */
	memset(big, ' ', TOKEN_JSON_MAX + 1);
	big[0] = '{';
	big[TOKEN_JSON_MAX] = '}';
	big[TOKEN_JSON_MAX + 1] = 0;
	why = NULL;
	CHECK(parse(big, &why) == -EINVAL && why && streq(why, "token JSON is larger than 16 KiB"),
	      "JSON over 16 KiB: \"token JSON is larger than 16 KiB\"");
}

/* What luks_repair may remove hangs on token_classify: each kind with its look-alike twin. */
static void test_classify(void)
{
	static const struct {
		const char *json, *name;
		enum token_kind kind;
		int keyslot;
	} cases[] = {
		{ "{\"type\":\"keystrap-pending\",\"keyslots\":[],\"keystrap-keyslot\":\"7\"}",
		  "a pending record names its keyslot", TOKEN_PENDING, 7 },
		{ "{\"type\":\"keystrap-pending\",\"keyslots\":[],\"keystrap-keyslot\":\"32\"}",
		  "a pending record naming keyslot 32 names none", TOKEN_PENDING, -1 },
		{ "{\"type\":\"keystrap-pending\",\"keyslots\":[],\"keystrap-keyslot\":7}",
		  "a pending record with a number, not a string, names none", TOKEN_PENDING, -1 },
		{ "{\"type\":\"keystrap-pending\",\"keyslots\":[]",
		  "a truncated pending record is not one", TOKEN_OTHER, 99 },
		{ "{\"type\":\"keystrap-pending\"}", "a pending record without keyslots is not one",
		  TOKEN_OTHER, 99 },
		{ "{\"type\":\"systemd-tpm2\",\"keyslots\":[],\"keystrap-pcr-values\":{}}",
		  "keystrap's token bound to nothing", TOKEN_KEYSTRAP_UNBOUND, 99 },
		{ "{\"type\":\"systemd-tpm2\",\"keyslots\":[]}",
		  "systemd-cryptenroll's token bound to nothing is not keystrap's", TOKEN_OTHER, 99 },
		{ "{\"type\":\"systemd-tpm2\",\"keyslots\":[\"4\"],\"keystrap-pcr-values\":{}}",
		  "keystrap's token names its keyslot", TOKEN_KEYSTRAP, 4 },
		{ "{\"type\":\"systemd-tpm2\",\"keyslots\":[\"4\",\"5\"],\"keystrap-pcr-values\":{}}",
		  "a token bound to two keyslots is not keystrap's", TOKEN_OTHER, 99 },
		{ "{\"type\":\"systemd-recovery\",\"keyslots\":[],\"keystrap-pcr-values\":{}}",
		  "another type with keystrap's key is not keystrap's", TOKEN_OTHER, 99 },
	};
	_cleanup_free_ char *json = NULL;
	int slot;

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		slot = 99;
		CHECK(token_classify(cases[i].json, strlen(cases[i].json), &slot) == cases[i].kind &&
		      slot == cases[i].keyslot, cases[i].name);
	}
	slot = 99;
	CHECK(token_pending_format(31, &json) == 0 &&
	      token_classify(json, strlen(json), &slot) == TOKEN_PENDING && slot == 31,
	      "token_pending_format's record classifies as pending, for its keyslot");
	slot = 99;
	CHECK(token_classify(cryptenroll_json, strlen(cryptenroll_json), &slot) == TOKEN_OTHER && slot == 99,
	      "systemd-cryptenroll's real token is never keystrap's");
}

/* systemd-cryptenroll --recovery-key's form, by hand from its modhex alphabet cbdefghijklnrtuv. */
static void test_recovery(void)
{
	_cleanup_secbuf_ struct secbuf *random = secbuf_new(RECOVERY_KEY_BYTES), *key = NULL, *short_ = NULL;
	_cleanup_free_ char *json = NULL;
	int slot = 99;

	for (size_t i = 0; i < RECOVERY_KEY_BYTES; i++)
		random->data[i] = (uint8_t)i;
	CHECK(token_recovery_key(random, &key) == 0 && key->size == RECOVERY_KEY_LENGTH && key->size == 71 &&
	      streq((const char *)key->data, "cccbcdce-cfcgchci-cjckclcn-crctcucv-bcbbbdbe-bfbgbhbi-bjbkblbn-brbtbubv"),
	      "bytes 0..31 encode high nibble first, a dash after every 8 characters but the last");
	secbuf_free(key);
	key = NULL;
	random->data[0] = 0xff;
	random->data[31] = 0xa5;
	CHECK(token_recovery_key(random, &key) == 0 && strncmp((const char *)key->data, "vvcb", 4) == 0 &&
	      streq((const char *)key->data + 69, "lg"), "0xff is vv, 0xa5 is lg");
	short_ = secbuf_new(RECOVERY_KEY_BYTES - 1);
	CHECK(token_recovery_key(short_, &key) == -EINVAL, "anything but 32 bytes is refused");

	CHECK(token_recovery_format(7, &json) == 0 && streq(json, "{\"type\":\"systemd-recovery\",\"keyslots\":[\"7\"]}"),
	      "the recovery token is systemd-cryptenroll's, byte for byte");
	CHECK(token_classify(json, strlen(json), &slot) == TOKEN_OTHER && slot == 99,
	      "a recovery token is never taken for keystrap's own");
	CHECK(token_type_is_tpm("systemd-tpm2") && token_type_is_tpm("keystrap-pending") &&
	      !token_type_is_tpm("systemd-recovery") && !token_type_is_tpm("systemd-fido2") &&
	      !token_type_is_tpm("keystrap") && !token_type_is_tpm(""),
	      "TPM tokens: systemd-tpm2 and keystrap-*; a recovery or FIDO2 token is a person's");
}

/* The keystrap-attested token: format -> parse, the strict parse, classify, and the KDF. */
static void test_attested(void)
{
	static const char vol[] = "0b3f6f1e-4c1a-4d7e-9a55-2f6a1c9e8d01";
	_cleanup_free_ struct attested_token *in = calloc(1, sizeof(*in)), *out = calloc(1, sizeof(*out));
	_cleanup_secbuf_ struct secbuf *a = secbuf_new(32), *b = secbuf_new(32), *p = NULL, *q = NULL;
	_cleanup_free_ char *json = NULL;
	const char *why = NULL;
	int slot = 99;

	sample(&in->tpm);
	snprintf(in->server, sizeof(in->server), "https://attest.example:8443");
	memcpy(in->volume, vol, sizeof(vol));
	CHECK(token_attested_format(in, &json) == 0 && strstr(json, "\"type\":\"keystrap-attested\"") &&
	      !strstr(json, "tpm2-pin"), "formats as keystrap-attested, without tpm2-pin");
	CHECK(token_attested_parse(json, strlen(json), out, &why) == 0 && why == NULL && out->tpm.keyslot == 3 &&
	      out->tpm.pcr_mask == in->tpm.pcr_mask && out->tpm.blob_size == 240 &&
	      memcmp(out->tpm.blob, in->tpm.blob, 240) == 0 && streq(out->server, in->server) && streq(out->volume, vol),
	      "its own output parses back: keyslot, PCRs, blob, server, volume");
	CHECK(token_parse(json, strlen(json), &tok, &why) == -EINVAL && streq(why, "token type is not systemd-tpm2"),
	      "it is not a systemd-tpm2 token");
	CHECK(token_classify(json, strlen(json), &slot) == TOKEN_KEYSTRAP && slot == 3, "it is keystrap's, bound to its keyslot");

	struct {
		const char *from, *to, *reason;
	} bad[] = {
		{ "\"volume\":\"0b3f", "\"volume\":\"0B3F", "volume is missing or not a LUKS2 UUID (lowercase 8-4-4-4-12)" },
		{ "\"keystrap-server\":\"https", "\"keystrap-server\":\"http:", "keystrap-server is missing or not an https:// URL of at most 255 bytes" },
		{ "\"volume\"", "\"extra\":1,\"volume\"", "keystrap-attested token has a field keystrap does not know" },
		{ "\"tpm2-pcrs\":[7,15]", "\"tpm2-pcrs\":[7]", "keystrap-pcr-values names a PCR the token does not bind" },
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_free_ char *e = strdup(json);
		char *at = strstr(e, bad[i].from);
		_cleanup_free_ char *edited = NULL;

		if (at) {
			*at = 0;
			if (asprintf(&edited, "%s%s%s", e, bad[i].to, at + strlen(bad[i].from)) < 0)
				edited = NULL;
		}
		why = NULL;
		CHECK(edited && token_attested_parse(edited, strlen(edited), out, &why) == -EINVAL && why &&
		      streq(why, bad[i].reason), bad[i].reason);
	}

	/* RFC 5869, no salt; the answer from openssl kdf HKDF and from Python's hmac, both. */
	memset(a->data, 1, 32);
	memset(b->data, 2, 32);
	CHECK(token_attested_passphrase(a, b, vol, &p) == 0 && p->size == 44 &&
	      memcmp(p->data, "WWx+n0B5ZFhaPDOSxba9JAG1DWOp8LfjyfubhglMTl8=", 44) == 0,
	      "the passphrase is base64 of HKDF-SHA256(share_tpm || share_srv, info 'keystrap attested keyslot UUID')");
	CHECK(token_attested_passphrase(b, a, vol, &q) == 0 && memcmp(p->data, q->data, 44) != 0,
	      "the shares' order matters");
	secbuf_free(q);
	q = NULL;
	CHECK(token_attested_passphrase(a, b, "7d2c1a90-1111-4e2b-8c3d-5a6b7c8d9e0f", &q) == 0 &&
	      memcmp(p->data, q->data, 44) != 0, "another volume, another passphrase");
	secbuf_free(q);
	q = NULL;
	b->size = 31;
	CHECK(token_attested_passphrase(a, b, vol, &q) == -EINVAL && !q, "a share of 31 bytes is refused");
	b->size = 32;
	CHECK(token_attested_passphrase(a, b, "0B3F6F1E-4C1A-4D7E-9A55-2F6A1C9E8D01", &q) == -EINVAL,
	      "a volume that is not a canonical UUID is refused");
}

int main(void)
{
	test_roundtrip();
	test_cryptenroll_shape();
	test_malformed();
	test_blob_limits();
	test_not_json();
	test_classify();
	test_recovery();
	test_attested();
	return TAP_DONE();
}
