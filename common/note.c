/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * C2SP signed-note and tlog-checkpoint, Ed25519 only (key type 0x01). A note's text ends at
 * its last blank line; each line after it is "— NAME BASE64(KEYID || SIGNATURE)", of which
 * we look only for ours (a note may carry up to 16 signatures, by witnesses among them).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <openssl/rand.h>

#include "encode.h"
#include "macro.h"
#include "note.h"
#include "ossl.h"
#include "secbuf.h"

#define ED25519 0x01
#define SIG_PREFIX "\xe2\x80\x94 " /* U+2014 EM DASH, then a space */
#define SIGS_MAX 16

struct note_signer {
	struct note_verifier v;
	EVP_PKEY *key;
};

_printf_(4, 5) static int fail(char *why, size_t size, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return err;
}

/* A name has no "+", no whitespace and no control character (the spec's rule). */
static bool name_valid(const char *n, size_t len)
{
	if (len == 0 || len > NOTE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (n[i] == '+' || (unsigned char)n[i] <= ' ' || n[i] == 0x7f)
			return false;
	return true;
}

static int key_id(const char *name, const uint8_t pub[32], uint32_t *ret)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *c = EVP_MD_CTX_new();
	uint8_t h[32], tail[2] = { '\n', ED25519 };

	if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) || !EVP_DigestUpdate(c, name, strlen(name)) ||
	    !EVP_DigestUpdate(c, tail, 2) || !EVP_DigestUpdate(c, pub, 32) || !EVP_DigestFinal_ex(c, h, NULL))
		return -EIO;
	*ret = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
	return 0;
}

/* "NAME+KEYID+BASE64" from s (len bytes): the name, the id, 32 key bytes after the type. */
static int key_text_parse(const char *s, size_t len, char name[NOTE_NAME_MAX + 1], uint32_t *id,
			  struct secbuf *key, char *why, size_t why_size)
{
	const char *p1 = memchr(s, '+', len), *p2;
	uint8_t raw[40];
	char hex[9];
	long n;

	p2 = p1 ? memchr(p1 + 1, '+', len - (size_t)(p1 + 1 - s)) : NULL;
	if (!p1 || !p2 || !name_valid(s, (size_t)(p1 - s)) || p2 - p1 - 1 != 8)
		return fail(why, why_size, -EINVAL, "%s", "not NAME+KEYID+KEY (a C2SP note key)");
	memcpy(name, s, (size_t)(p1 - s));
	name[p1 - s] = 0;
	memcpy(hex, p1 + 1, 8);
	hex[8] = 0;
	if (sscanf(hex, "%8" SCNx32, id) != 1 || strspn(hex, "0123456789abcdef") != 8)
		return fail(why, why_size, -EINVAL, "key id '%s' is not 8 lowercase hex digits", hex);
	n = base64_decode(p2 + 1, len - (size_t)(p2 + 1 - s), raw, sizeof(raw));
	if (n != 33) {
		secmem_wipe(raw, sizeof(raw));
		return fail(why, why_size, -EINVAL, "%s", "the key is not base64 of 33 bytes");
	}
	if (raw[0] != ED25519) {
		secmem_wipe(raw, sizeof(raw));
		return fail(why, why_size, -EINVAL, "%s", "the key is not an Ed25519 key (type 0x01)");
	}
	memcpy(key->data, raw + 1, 32);
	secmem_wipe(raw, sizeof(raw));
	return 0;
}

int note_verifier_parse(const char *vkey, struct note_verifier *ret, char *why, size_t why_size)
{
	_cleanup_secbuf_ struct secbuf *k = secbuf_new(32);
	struct note_verifier v = { 0 };
	uint32_t want;
	int r;

	if (!k)
		return -ENOMEM;
	if ((r = key_text_parse(vkey, strlen(vkey), v.name, &v.id, k, why, why_size)) < 0)
		return r;
	memcpy(v.pub, k->data, 32);
	if ((r = key_id(v.name, v.pub, &want)) < 0)
		return r;
	if (want != v.id)
		return fail(why, why_size, -EINVAL, "the key id of '%s' does not match its key", v.name);
	*ret = v;
	return 0;
}

int note_signer_parse(const char *skey, size_t size, struct note_signer **ret, char *why, size_t why_size)
{
	static const char prefix[] = "PRIVATE+KEY+";
	_cleanup_secbuf_ struct secbuf *seed = secbuf_new(32);
	struct note_signer *s;
	uint32_t want;
	size_t pub_len = 32;
	int r;

	if (!seed)
		return -ENOMEM;
	while (size > 0 && (skey[size - 1] == '\n' || skey[size - 1] == '\r'))
		size--;
	if (size < sizeof(prefix) - 1 || memcmp(skey, prefix, sizeof(prefix) - 1) != 0)
		return fail(why, why_size, -EINVAL, "%s", "not a C2SP note signer key (PRIVATE+KEY+NAME+KEYID+KEY)");
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = key_text_parse(skey + sizeof(prefix) - 1, size - (sizeof(prefix) - 1), s->v.name, &s->v.id, seed, why,
			   why_size);
	if (r < 0)
		goto out;
	s->key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed->data, 32);
	if (!s->key || !EVP_PKEY_get_raw_public_key(s->key, s->v.pub, &pub_len)) {
		r = fail(why, why_size, -EIO, "%s", "OpenSSL cannot load the Ed25519 key");
		goto out;
	}
	if ((r = key_id(s->v.name, s->v.pub, &want)) < 0)
		goto out;
	if (want != s->v.id) {
		r = fail(why, why_size, -EINVAL, "the key id of '%s' does not match its key", s->v.name);
		goto out;
	}
	*ret = TAKE_PTR(s);
	return 0;
out:
	note_signer_free(s);
	return r;
}

void note_signer_free(struct note_signer *s)
{
	if (!s)
		return;
	EVP_PKEY_free(s->key);
	free(s);
}

const struct note_verifier *note_signer_verifier(const struct note_signer *s)
{
	return &s->v;
}

void note_verifier_format(const struct note_verifier *v, char *ret)
{
	uint8_t raw[33] = { ED25519 };
	char b64[64];

	memcpy(raw + 1, v->pub, 32);
	base64_encode(raw, sizeof(raw), b64);
	snprintf(ret, NOTE_KEY_MAX, "%s+%08" PRIx32 "+%s", v->name, v->id, b64);
}

int note_key_generate(const char *name, struct secbuf **ret_skey, char ret_vkey[NOTE_KEY_MAX], char *why,
		      size_t why_size)
{
	_cleanup_secbuf_ struct secbuf *seed = secbuf_new(33), *text = secbuf_new(NOTE_KEY_MAX + 16);
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
	struct note_verifier v = { 0 };
	size_t pub_len = 32;
	char b64[64];
	int r, n;

	if (!seed || !text)
		return -ENOMEM;
	if (!name_valid(name, strlen(name)))
		return fail(why, why_size, -EINVAL,
			    "log name '%s' is not a note key name (1-128 bytes, no '+', no space)", name);
	seed->data[0] = ED25519;
	if (RAND_priv_bytes(seed->data + 1, 32) != 1 ||
	    !(k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed->data + 1, 32)) ||
	    !EVP_PKEY_get_raw_public_key(k, v.pub, &pub_len))
		return fail(why, why_size, -EIO, "%s", "OpenSSL cannot make an Ed25519 key");
	snprintf(v.name, sizeof(v.name), "%s", name);
	if ((r = key_id(v.name, v.pub, &v.id)) < 0)
		return r;
	base64_encode(seed->data, 33, b64);
	n = snprintf((char *)text->data, text->alloc, "PRIVATE+KEY+%s+%08" PRIx32 "+%s\n", v.name, v.id, b64);
	secmem_wipe(b64, sizeof(b64));
	text->size = (size_t)n;
	note_verifier_format(&v, ret_vkey);
	*ret_skey = TAKE_PTR(text);
	return 0;
}

/* "— NAME BASE64(KEYID || SIGNATURE)\n" by s over text. */
static int sig_line(const struct note_signer *s, const char *text, size_t n, FILE *out)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t sig_len = 64;
	uint8_t sig[4 + 64];
	char b64[128];

	sig[0] = (uint8_t)(s->v.id >> 24);
	sig[1] = (uint8_t)(s->v.id >> 16);
	sig[2] = (uint8_t)(s->v.id >> 8);
	sig[3] = (uint8_t)s->v.id;
	if (!c || !EVP_DigestSignInit(c, NULL, NULL, NULL, s->key) ||
	    !EVP_DigestSign(c, sig + 4, &sig_len, (const uint8_t *)text, n) || sig_len != 64)
		return -EIO;
	base64_encode(sig, sizeof(sig), b64);
	return fprintf(out, SIG_PREFIX "%s %s\n", s->v.name, b64) < 0 ? -ENOMEM : 0;
}

int note_sign_all(const struct note_signer *const *signers, size_t n_signers, const char *text, char **ret)
{
	size_t n = strlen(text), size = 0;
	char *buf = NULL;
	FILE *out;
	int r = 0;

	if (n == 0 || text[n - 1] != '\n' || strstr(text, "\n\n") || n_signers == 0 || n_signers > SIGS_MAX)
		return -EINVAL;
	if (!(out = open_memstream(&buf, &size)))
		return -ENOMEM;
	if (fprintf(out, "%s\n", text) < 0)
		r = -ENOMEM;
	for (size_t i = 0; i < n_signers && r == 0; i++)
		r = sig_line(signers[i], text, n, out);
	if (fclose(out) != 0 && r == 0)
		r = -ENOMEM;
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	return 0;
}

int note_sign(const struct note_signer *s, const char *text, char **ret)
{
	return note_sign_all(&s, 1, text, ret);
}

static int sig_check(const struct note_verifier *v, const char *text, size_t text_size, const uint8_t sig[64])
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, v->pub, 32);
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *c = EVP_MD_CTX_new();

	if (!k || !c || !EVP_DigestVerifyInit(c, NULL, NULL, NULL, k))
		return -EIO;
	return EVP_DigestVerify(c, sig, 64, (const uint8_t *)text, text_size) == 1 ? 0 : -EKEYREJECTED;
}

int note_open(const char *note, size_t size, const struct note_verifier *v, size_t *ret_text_size, char *why,
	      size_t why_size)
{
	const char *sigs = NULL, *p, *end = note + size;
	size_t text_size, nsig = 0;
	bool rejected = false;

	if (size == 0 || size > NOTE_MAX || note[size - 1] != '\n' || memchr(note, 0, size))
		return fail(why, why_size, -EBADMSG, "%s", "not a signed note (empty, too long or not newline-ended)");
	/* The text ends at the last blank line. */
	for (p = note; p + 1 < end; p++)
		if (p[0] == '\n' && p[1] == '\n')
			sigs = p + 2;
	if (!sigs || sigs >= end)
		return fail(why, why_size, -EBADMSG, "%s", "not a signed note (no signature lines)");
	text_size = (size_t)(sigs - 1 - note);
	for (p = sigs; p < end; nsig++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *sp;
		size_t name_len, plen = strlen(SIG_PREFIX);
		uint8_t raw[4 + 64 + 1];
		uint32_t id;
		long n;

		if (nsig >= SIGS_MAX)
			return fail(why, why_size, -EBADMSG, "%s", "the note has more than 16 signatures");
		if ((size_t)(nl - p) < plen || memcmp(p, SIG_PREFIX, plen) != 0 ||
		    !(sp = memchr(p + plen, ' ', (size_t)(nl - p - (long)plen))))
			return fail(why, why_size, -EBADMSG, "%s", "a signature line is not '— NAME SIGNATURE'");
		name_len = (size_t)(sp - p - (long)plen);
		n = base64_decode(sp + 1, (size_t)(nl - sp - 1), raw, sizeof(raw));
		if (n < 5)
			return fail(why, why_size, -EBADMSG, "%s", "a signature is not base64 of a key id and a signature");
		id = (uint32_t)raw[0] << 24 | (uint32_t)raw[1] << 16 | (uint32_t)raw[2] << 8 | raw[3];
		if (name_len == strlen(v->name) && memcmp(p + plen, v->name, name_len) == 0 && id == v->id) {
			if (n == 68 && sig_check(v, note, text_size, raw + 4) == 0) {
				*ret_text_size = text_size;
				return 0;
			}
			rejected = true;
		}
		p = nl + 1;
	}
	if (rejected)
		return fail(why, why_size, -EKEYREJECTED, "the signature of '%s' does not verify", v->name);
	return fail(why, why_size, -ENOKEY, "the note carries no signature of '%s'", v->name);
}

int checkpoint_format(const struct checkpoint *c, char **ret)
{
	char b64[64];

	base64_encode(c->root, MERKLE_HASH_SIZE, b64);
	return asprintf(ret, "%s\n%" PRIu64 "\n%s\ntime %" PRId64 "\n", c->origin, c->size, b64, c->time) < 0 ? -ENOMEM
													       : 0;
}

/* The next line of [*p, end), without its newline; false when none is left. */
static bool next_line(const char **p, const char *end, const char **ret, size_t *ret_len)
{
	const char *nl;

	if (*p >= end || !(nl = memchr(*p, '\n', (size_t)(end - *p))))
		return false;
	*ret = *p;
	*ret_len = (size_t)(nl - *p);
	*p = nl + 1;
	return true;
}

int checkpoint_parse(const char *text, size_t size, struct checkpoint *ret, char *why, size_t why_size)
{
	const char *p = text, *end = text + size, *l;
	struct checkpoint c = { 0 };
	char num[24];
	size_t n;
	long k;

	if (!next_line(&p, end, &l, &n) || !name_valid(l, n))
		return fail(why, why_size, -EBADMSG, "%s", "the checkpoint's first line is not an origin");
	memcpy(c.origin, l, n);
	if (!next_line(&p, end, &l, &n) || n == 0 || n >= sizeof(num) || strspn(l, "0123456789") < n ||
	    (n > 1 && l[0] == '0'))
		return fail(why, why_size, -EBADMSG, "%s", "the checkpoint's second line is not a tree size");
	memcpy(num, l, n);
	num[n] = 0;
	errno = 0;
	c.size = strtoull(num, NULL, 10);
	if (errno || c.size > INT64_MAX)
		return fail(why, why_size, -EBADMSG, "tree size %s is out of range", num);
	if (!next_line(&p, end, &l, &n) || (k = base64_decode(l, n, c.root, sizeof(c.root))) != MERKLE_HASH_SIZE)
		return fail(why, why_size, -EBADMSG, "%s", "the checkpoint's third line is not a base64 SHA-256 root");
	/* Extension lines: ours is the time; any other is someone else's and left alone. */
	while (next_line(&p, end, &l, &n))
		if (n > 5 && memcmp(l, "time ", 5) == 0) {
			if (n - 5 >= sizeof(num) || strspn(l + 5, "0123456789") < n - 5)
				return fail(why, why_size, -EBADMSG, "%s", "the checkpoint's time line is not a number");
			memcpy(num, l + 5, n - 5);
			num[n - 5] = 0;
			c.time = strtoll(num, NULL, 10);
		}
	if (p != end)
		return fail(why, why_size, -EBADMSG, "%s", "the checkpoint does not end with a newline");
	*ret = c;
	return 0;
}

int checkpoint_open(const char *note, size_t size, const struct note_verifier *v, struct checkpoint *ret,
		    char *why, size_t why_size)
{
	struct checkpoint c;
	size_t text_size;
	int r;

	if ((r = note_open(note, size, v, &text_size, why, why_size)) < 0 ||
	    (r = checkpoint_parse(note, text_size, &c, why, why_size)) < 0)
		return r;
	if (!streq(c.origin, v->name))
		return fail(why, why_size, -EBADMSG, "the checkpoint's origin '%s' is not the log key's name", c.origin);
	*ret = c;
	return 0;
}
