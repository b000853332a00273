/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* common/note.c: the C2SP signed-note vector (golang.org/x/mod/sumdb/note's PeterNeumann key),
 * signing with its signer key gives the vector's signature byte for byte, and checkpoints; the
 * ECDSA type 0x02 against Rekor's and the Pixel log's published keys and checkpoints (the
 * vectors transparency-dev/formats' note verifier is tested with), and signers of EVP keys. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "macro.h"
#include "note.h"
#include "ossl.h"
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
		      note_verifier_same_key(note_signer_verifier(s), &v),
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

/* Sigstore's Rekor log key and one of its checkpoints; the Pixel 6 transparency log's. */
static const char rekor_vkey[] = "rekor.sigstore.dev+c0d23d6a+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdGvXwBcK5AW5i0hrZLOC96l+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc=";
static const char rekor_note[] = "Rekor\n798034\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\n\n"
				 "\xe2\x80\x94 rekor.sigstore.dev wNI9ajBEAiARInWIWyCdyG27CO6LPnPekyw20qO0YJfoaPaowGp/XgIgc+qEHS3+GKVClgqq20uDLet7MCoTURUCRdxwWBHHufk=\n";
static const char pixel_vkey[] = "pixel6_transparency_log+91c16e30+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABN+4x0Jk1yTwvLFI9A4NDdGZcX0aiWVdWM5XJVy0M4VWD3AvyW5Q6Hs9A0mcDkpUoYgn+KKPNzFC0H3nN3q6JQ8=";
static const char pixel_note[] = "DEFAULT\n10\nbsWRucJU5xJPHb5eBdOm6+DM+VelCZBuvtI3sHERJ9Y=\n\n"
				 "\xe2\x80\x94 pixel6_transparency_log kcFuMDBFAiEAhqMAP8P6qf6QxtUJhzMhbN+MbZ9dwfUHzGQJmffJHtoCIGD0cNe47dHWBoPwYdgBCepB06/+g5O1FmYjXl06owL4\n";

static void test_ecdsa_vectors(void)
{
	struct note_verifier v, p;
	char why[160], fmt[NOTE_KEY_MAX], buf[sizeof(rekor_note)];
	size_t n = 0;

	CHECK(note_verifier_parse(rekor_vkey, &v, why, sizeof(why)) == 0 && v.type == NOTE_ECDSA && v.id == 0xc0d23d6a &&
		      v.key_size == 91 && streq(v.name, "rekor.sigstore.dev"),
	      "Rekor's ECDSA verifier key parses: type 0x02, its key hash that of the DER alone");
	note_verifier_format(&v, fmt);
	CHECK(streq(fmt, rekor_vkey), "and formats back to itself");
	CHECK(note_open(rekor_note, strlen(rekor_note), &v, &n, why, sizeof(why)) == 0 && n == 58,
	      "Rekor's checkpoint opens with it (an ECDSA P-256 signature over SHA-256 of the text)");
	memcpy(buf, rekor_note, sizeof(rekor_note));
	buf[6] = '9';
	CHECK(note_open(buf, strlen(buf), &v, &n, why, sizeof(why)) == -EKEYREJECTED,
	      "its tree size changed: the signature does not verify");
	memcpy(buf, rekor_note, sizeof(rekor_note));
	buf[strlen(buf) - 10] ^= 0x01; /* a letter of the signature's base64 */
	CHECK(note_open(buf, strlen(buf), &v, &n, why, sizeof(why)) == -EKEYREJECTED && strstr(why, "does not verify"),
	      "a signature with one bit changed is rejected");
	CHECK(note_verifier_parse(pixel_vkey, &p, why, sizeof(why)) == 0 &&
		      note_open(pixel_note, strlen(pixel_note), &p, &n, why, sizeof(why)) == 0,
	      "the Pixel log's key and checkpoint: the same");
	CHECK(note_open(rekor_note, strlen(rekor_note), &p, &n, why, sizeof(why)) == -ENOKEY,
	      "Rekor's checkpoint carries no signature of the Pixel log's key");
	CHECK(note_verifier_parse("rekor.sigstore.dev+00000000+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdG"
				  "vXwBcK5AW5i0hrZLOC96l+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc=",
				  &v, why, sizeof(why)) == -EINVAL &&
		      strstr(why, "does not match"),
	      "an ECDSA key whose key hash is not its DER's is refused");
	CHECK(note_verifier_parse("rekor.sigstore.dev+12345678+AwEB", &v, why, sizeof(why)) == -EINVAL &&
		      strstr(why, "type 0x03"),
	      "a key of an unknown type is refused, naming it");
	/* 0x02 || an Ed25519 SubjectPublicKeyInfo: DER, but not of an EC key. */
	CHECK(note_verifier_parse("x+00000000+AjAqMAUGAytlcAMhABpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", &v, why,
				  sizeof(why)) == -EINVAL &&
		      strstr(why, "P-256"),
	      "a 0x02 key that is not an EC key is refused");
}

static int sign_init_count;
static int sign_init_counting(EVP_MD_CTX *ctx, EVP_PKEY *key)
{
	sign_init_count++;
	return EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 ? 0 : -EIO;
}

/* A signer of an EVP key (what a TPM's or a token's key is): on each curve, beside Ed25519. */
static void test_ecdsa_signer(void)
{
	static const char *const curves[] = { "P-256", "P-384", "P-521" };
	_cleanup_(note_signer_freep) struct note_signer *ed = NULL;
	char why[160], vk[NOTE_KEY_MAX];

	note_signer_parse(skey, strlen(skey), &ed, why, sizeof(why));
	for (size_t i = 0; i < ELEMENTSOF(curves); i++) {
		_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = EVP_EC_gen(curves[i]);
		_cleanup_(note_signer_freep) struct note_signer *s = NULL;
		_cleanup_free_ char *one = NULL, *two = NULL;
		const struct note_signer *both[2] = { ed, NULL };
		struct note_verifier v, ved;
		size_t n = 0;

		sign_init_count = 0;
		CHECK(k && note_signer_from_pkey("keystrap.test/log", k, sign_init_counting, &s, why, sizeof(why)) == 0 &&
			      sign_init_count == 1,
		      "P-256, P-384, P-521: a signer of an EC key, which signed once to be checked, through its sign_init");
		if (!s)
			continue;
		note_verifier_format(note_signer_verifier(s), vk);
		CHECK(note_verifier_parse(vk, &v, why, sizeof(why)) == 0 && note_verifier_same_key(&v, note_signer_verifier(s)),
		      "P-256, P-384, P-521: its verifier key text parses back to it");
		CHECK(note_sign(s, text, &one) == 0 && note_open(one, strlen(one), &v, &n, why, sizeof(why)) == 0 &&
			      n == strlen(text) && sign_init_count == 2,
		      "P-256, P-384, P-521: a note it signs opens with its verifier key");
		both[1] = s;
		note_verifier_parse(vkey, &ved, why, sizeof(why));
		CHECK(note_sign_all(both, 2, text, &two) == 0 && note_open(two, strlen(two), &v, &n, why, sizeof(why)) == 0 &&
			      note_open(two, strlen(two), &ved, &n, why, sizeof(why)) == 0,
		      "P-256, P-384, P-521: a rotation's note signed by Ed25519 and by it opens with each");
		CHECK(!note_verifier_same_key(&ved, &v), "P-256, P-384, P-521: it is not the Ed25519 key");
	}
	{
		_cleanup_(EVP_PKEY_freep) EVP_PKEY *k1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1"),
						*rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048),
						*e = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		struct note_signer *s = NULL;

		CHECK(note_signer_from_pkey("n", k1, NULL, &s, why, sizeof(why)) == -EINVAL && strstr(why, "secp256k1") && !s,
		      "an EC key on another curve is refused, naming it");
		CHECK(note_signer_from_pkey("n", rsa, NULL, &s, why, sizeof(why)) == -EINVAL && !s, "an RSA key is refused");
		CHECK(note_signer_from_pkey("n", e, NULL, &s, why, sizeof(why)) == -EINVAL && !s,
		      "an Ed25519 key is refused (its note signer is the key file)");
		CHECK(note_signer_from_pkey("bad name", k1, NULL, &s, why, sizeof(why)) == -EINVAL && strstr(why, "'bad name'"),
		      "a bad log name is refused, quoted");
	}
}

int main(void)
{
	test_vector();
	test_two_signers();
	test_generate_checkpoint();
	test_ecdsa_vectors();
	test_ecdsa_signer();
	return TAP_DONE();
}
