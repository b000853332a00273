/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The secret payload (common/payload.c): encoding, AES-256-GCM sealing, and what is refused. */
#include <errno.h>
#include <string.h>

#include "payload.h"
#include "tap.h"

static const char session[] = "0123456789abcdef0123456789abcdef";

/* The one name rule (secret_name_valid), for every name the tree takes. */
static void test_names(void)
{
	char longname[NODE_SECRET_NAME_MAX + 2];

	CHECK(secret_name_valid("db") && secret_name_valid("a.b_c-1") && secret_name_valid("DB_PASSWORD") &&
		      secret_name_valid("x") && secret_name_valid("a..b") && secret_name_valid("9-lives.") &&
		      secret_name_valid("a-"),
	      "letters, digits, '.', '_' and '-' make a secret name");
	CHECK(!secret_name_valid("") && !secret_name_valid(".hidden") && !secret_name_valid("-rf") &&
		      !secret_name_valid("../etc") && !secret_name_valid("a/b") && !secret_name_valid("a b") &&
		      !secret_name_valid("a:b") && !secret_name_valid("a\nb") && !secret_name_valid("caf\xc3\xa9") &&
		      !secret_name_valid("a\tb"),
	      "empty, a leading '.' or '-', a slash, a blank, a colon, a control or non-ASCII byte: not a name");
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	CHECK(!secret_name_valid(longname) && (longname[NODE_SECRET_NAME_MAX] = 0, secret_name_valid(longname)),
	      "a secret name is at most 64 characters");
	CHECK(keystrap_name_valid("abc", 3, 3) && !keystrap_name_valid("abcd", 4, 3),
	      "a shorter max (node groups) is honoured, and its twin");
	CHECK(keystrap_name_valid("ab\0", 2, 8) && !keystrap_name_valid("ab\0", 3, 8),
	      "counted bytes: a NUL inside the length is refused");
}

int main(void)
{
	_cleanup_secbuf_ struct secbuf *a = secbuf_dup("hunter2", 7), *empty = secbuf_new(0), *plain = NULL;
	_cleanup_secbuf_ struct secbuf *opened = NULL;
	struct payload_item items[] = { { "db-password", a }, { "empty", empty } };
	uint8_t key[PAYLOAD_KEY_SIZE] = { 1 }, other[PAYLOAD_KEY_SIZE] = { 2 }, iv[12];
	_cleanup_free_ uint8_t *ct = NULL;
	struct node_secret *s = NULL;
	struct secbuf *tmp = NULL;
	size_t n = 0, ct_size = 0, bad = 99;

	test_names();
	CHECK(payload_encode(items, 2, &plain, &bad) == 0 && plain->size == 1 + 11 + 2 + 7 + 1 + 5 + 2,
	      "two secrets encode to name/value records");
	CHECK(payload_encrypt(key, session, plain, iv, &ct, &ct_size) == 0 && ct_size == plain->size + 16,
	      "sealed: ciphertext plus a 16-byte tag");
	CHECK(memmem(ct, ct_size, "hunter2", 7) == NULL, "the value is not in the ciphertext");
	CHECK(payload_decrypt(key, session, iv, ct, ct_size, &opened) == 0 && opened->size == plain->size &&
		      memcmp(opened->data, plain->data, plain->size) == 0,
	      "the right key and session open it");
	CHECK(payload_decode(opened->data, opened->size, &s, &n) == 0 && n == 2 && streq(s[0].name, "db-password") &&
		      s[0].value->size == 7 && memcmp(s[0].value->data, "hunter2", 7) == 0 && s[1].value->size == 0,
	      "decoded back to the same names and values");
	node_secrets_free(s, n);

	CHECK(payload_decrypt(other, session, iv, ct, ct_size, &tmp) == -EBADMSG && !tmp, "another key: refused");
	CHECK(payload_decrypt(key, "ffffffffffffffffffffffffffffffff", iv, ct, ct_size, &tmp) == -EBADMSG,
	      "another session (AAD): refused");
	ct[0] ^= 1;
	CHECK(payload_decrypt(key, session, iv, ct, ct_size, &tmp) == -EBADMSG, "one flipped bit: refused");
	CHECK(payload_decrypt(key, session, iv, ct, 15, &tmp) == -EBADMSG, "shorter than the tag: refused");

	items[1].name = "../etc";
	CHECK(payload_encode(items, 2, &tmp, &bad) == -EINVAL && bad == 1, "a name with a slash is refused, by index");
	CHECK(payload_decode((const uint8_t *)"\x01" "a\x00\x00\x01" "a\x00\x00", 8, &s, &n) == -EBADMSG,
	      "a name given twice is refused");
	CHECK(payload_decode((const uint8_t *)"\x01" "a\x00\x05" "ab", 6, &s, &n) == -EBADMSG,
	      "a value running past the end is refused");
	CHECK(payload_decode((const uint8_t *)"", 0, &s, &n) == 0 && n == 0, "no secrets is an empty payload");
	CHECK(payload_decode((const uint8_t *)"\x02" "-a\x00\x00", 5, &s, &n) == -EBADMSG,
	      "a name the rule refuses is refused in a payload too");
	CHECK(payload_decode((const uint8_t *)"\x02" "a-\x00\x00", 5, &s, &n) == 0 && n == 1 && streq(s[0].name, "a-"),
	      "... and its twin, a name it takes, decodes");
	node_secrets_free(s, n);
	return TAP_DONE();
}
