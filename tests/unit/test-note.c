/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* common/note.c: the C2SP signed-note vector (golang.org/x/mod/sumdb/note's PeterNeumann key),
 * signing with its signer key gives the vector's signature byte for byte, and checkpoints. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "note.h"
#include "secbuf.h"
#include "tap.h"

static const char vkey[] = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
static const char skey[] = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
static const char text[] = "If you think cryptography is the answer to your problem,\n"
			   "then you don't know what your problem is.\n";
static const char note[] = "If you think cryptography is the answer to your problem,\n"
			   "then you don't know what your problem is.\n"
			   "\n"
			   "\xe2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

static void test_vector(void)
{
	_cleanup_(note_signer_freep) struct note_signer *s = NULL;
	_cleanup_free_ char *signed_note = NULL;
	struct note_verifier v, other;
	char why[160], buf[sizeof(note) + 8], fmt[NOTE_KEY_MAX];
	size_t n = 0;

	CHECK(note_verifier_parse(vkey, &v, why, sizeof(why)) == 0 && streq(v.name, "PeterNeumann") &&
		      v.id == 0xc74f20a3,
	      "the vector's verifier key parses, its key id checked");
	note_verifier_format(&v, fmt);
	CHECK(streq(fmt, vkey), "and formats back to itself");
	CHECK(note_open(note, strlen(note), &v, &n, why, sizeof(why)) == 0 && n == strlen(text),
	      "the vector's note opens, its text the vector's");
	memcpy(buf, note, sizeof(note));
	buf[14] ^= 0x20;
	CHECK(note_open(buf, strlen(buf), &v, &n, why, sizeof(why)) == -EKEYREJECTED && strstr(why, "does not verify"),
	      "one changed letter of the text: the signature does not verify");
	CHECK(note_signer_parse(skey, strlen(skey), &s, why, sizeof(why)) == 0 &&
		      memcmp(note_signer_verifier(s)->pub, v.pub, 32) == 0,
	      "the vector's signer key parses to the verifier's public key");
	CHECK(note_sign(s, text, &signed_note) == 0 && streq(signed_note, note),
	      "signing the text gives the vector's note byte for byte (Ed25519 is deterministic)");
	other = v;
	snprintf(other.name, sizeof(other.name), "PeterNeumann2");
	CHECK(note_open(note, strlen(note), &other, &n, why, sizeof(why)) == -ENOKEY,
	      "a note with no signature of the key asked for: ENOKEY");
	CHECK(note_verifier_parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", &v, why,
				  sizeof(why)) == -EINVAL &&
		      strstr(why, "does not match"),
	      "a verifier key whose id is not its key's is refused");
	CHECK(note_verifier_parse("PeterNeumann+c74f20a3", &v, why, sizeof(why)) == -EINVAL,
	      "a verifier key with no key is refused");
	CHECK(note_open(text, strlen(text), &v, &n, why, sizeof(why)) == -EBADMSG, "text with no signature is no note");
}

static void test_generate_checkpoint(void)
{
	_cleanup_(note_signer_freep) struct note_signer *s = NULL;
	_cleanup_secbuf_ struct secbuf *sk = NULL;
	_cleanup_free_ char *cp_text = NULL, *cp_note = NULL;
	static const char ext[] = "o\n1\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\nother ext\n";
	struct checkpoint c = { .size = 1234567, .time = 1764740000 }, got;
	struct note_verifier v;
	char why[160], vk[NOTE_KEY_MAX];

	CHECK(note_key_generate("keystrap.test/log", &sk, vk, why, sizeof(why)) == 0 &&
		      note_signer_parse((const char *)sk->data, sk->size, &s, why, sizeof(why)) == 0 &&
		      note_verifier_parse(vk, &v, why, sizeof(why)) == 0,
	      "a generated key's signer and verifier texts parse");
	CHECK(note_key_generate("bad name", &sk, vk, why, sizeof(why)) == -EINVAL && strstr(why, "'bad name'"),
	      "a log name with a space is refused, quoted");
	snprintf(c.origin, sizeof(c.origin), "keystrap.test/log");
	memset(c.root, 0xab, sizeof(c.root));
	CHECK(checkpoint_format(&c, &cp_text) == 0 && note_sign(s, cp_text, &cp_note) == 0 &&
		      checkpoint_open(cp_note, strlen(cp_note), &v, &got, why, sizeof(why)) == 0 &&
		      got.size == c.size && got.time == c.time && memcmp(got.root, c.root, 32) == 0,
	      "a signed checkpoint opens to its size, root and time");
	CHECK(checkpoint_parse("o\n01\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n", 46, &got, why, sizeof(why)) ==
		      -EBADMSG,
	      "a tree size with a leading zero is refused");
	CHECK(checkpoint_parse("o\n1\nq6ur\n", 9, &got, why, sizeof(why)) == -EBADMSG && strstr(why, "third line"),
	      "a root that is not 32 bytes is refused");
	CHECK(checkpoint_parse(ext, strlen(ext), &got, why, sizeof(why)) == 0 &&
		      got.size == 1 && got.time == 0,
	      "an extension line of someone else's is left alone");
}

/* A rotation's note: one text, two signatures, each key opens it; the vector's is first. */
static void test_two_signers(void)
{
	_cleanup_(note_signer_freep) struct note_signer *a = NULL, *b = NULL;
	_cleanup_secbuf_ struct secbuf *sk = NULL;
	_cleanup_free_ char *two = NULL;
	const struct note_signer *both[2];
	struct note_verifier va, vb;
	char why[160], vk[NOTE_KEY_MAX];
	size_t n = 0;

	note_signer_parse(skey, strlen(skey), &a, why, sizeof(why));
	note_key_generate("PeterNeumann", &sk, vk, why, sizeof(why));
	note_signer_parse((const char *)sk->data, sk->size, &b, why, sizeof(why));
	note_verifier_parse(vkey, &va, why, sizeof(why));
	note_verifier_parse(vk, &vb, why, sizeof(why));
	both[0] = a;
	both[1] = b;
	CHECK(a && b && note_sign_all(both, 2, text, &two) == 0 && strncmp(two, note, strlen(note)) == 0,
	      "a note signed by two keys starts as the vector's, the second line after it");
	CHECK(two && note_open(two, strlen(two), &va, &n, why, sizeof(why)) == 0 &&
		      note_open(two, strlen(two), &vb, &n, why, sizeof(why)) == 0 && n == strlen(text),
	      "each of the two keys opens it, to the same text");
}

int main(void)
{
	test_vector();
	test_two_signers();
	test_generate_checkpoint();
	return TAP_DONE();
}
