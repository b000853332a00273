/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * C2SP signed-note and tlog-checkpoint, Ed25519 (key type 0x01) and ECDSA (0x02). A note's
 * text ends at its last blank line; each line after it is "— NAME BASE64(KEYID || SIGNATURE)",
 * of which we look only for ours (a note may carry up to 16 signatures, by witnesses among them).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <openssl/ec.h>
#include <openssl/rand.h>

#include "encode.h"
#include "macro.h"
#include "note.h"
#include "ossl.h"
#include "secbuf.h"

#define SIG_PREFIX "\xe2\x80\x94 " /* U+2014 EM DASH, then a space */
#define SIGS_MAX 16
/* A DER ECDSA signature on P-521 is at most 139 bytes; Ed25519's is 64. */
#define SIG_MAX 144

struct note_signer {
	struct note_verifier v;
	EVP_PKEY *key;
	int (*sign_init)(EVP_MD_CTX *ctx, EVP_PKEY *key);
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

static uint32_t be32(const uint8_t b[4])
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/*
 * The key id: for Ed25519 of SHA-256(NAME || "\n" || 0x01 || key), for ECDSA of SHA-256(the
 * DER SubjectPublicKeyInfo) alone (transparency-dev's keyHashECDSA): the name is not in it.
 */
static int key_id(const struct note_verifier *v, uint32_t *ret)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *c = EVP_MD_CTX_new();
	uint8_t h[32], tail[2] = { '\n', NOTE_ED25519 };
	bool ed = v->type == NOTE_ED25519;

	if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) ||
	    (ed && (!EVP_DigestUpdate(c, v->name, strlen(v->name)) || !EVP_DigestUpdate(c, tail, 2))) ||
	    !EVP_DigestUpdate(c, v->key, v->key_size) || !EVP_DigestFinal_ex(c, h, NULL))
		return -EIO;
	*ret = be32(h);
	return 0;
}

/* An ECDSA verifier's key: its DER SubjectPublicKeyInfo, of an EC key on a curve the spec names. */
static int ecdsa_pub(const uint8_t *der, size_t n, EVP_PKEY **ret, char *why, size_t why_size)
{
	const uint8_t *p = der;
	EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)n);
	char group[32] = "";
	size_t glen = 0;

	if (!k || p != der + n) {
		EVP_PKEY_free(k);
		return fail(why, why_size, -EINVAL, "%s", "the ECDSA key is not a DER SubjectPublicKeyInfo");
	}
	if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC || !EVP_PKEY_get_group_name(k, group, sizeof(group), &glen) ||
	    (!streq(group, "prime256v1") && !streq(group, "secp384r1") && !streq(group, "secp521r1"))) {
		EVP_PKEY_free(k);
		return fail(why, why_size, -EINVAL, "the ECDSA key is not on P-256, P-384 or P-521%s%s%s",
			    group[0] ? " (" : "", group, group[0] ? ")" : "");
	}
	*ret = k;
	return 0;
}

/*
 * "NAME+KEYID+BASE64(TYPE || KEY)" from s (len bytes): the name, the id, the type and the key
 * bytes into key (key_max at most; secret for a signer's seed, wiped here on every way out).
 */
static int key_text_parse(const char *s, size_t len, char name[NOTE_NAME_MAX + 1], uint32_t *id, uint8_t *ret_type,
			  uint8_t *key, size_t key_max, size_t *ret_key_size, char *why, size_t why_size)
{
	const char *p1 = memchr(s, '+', len), *p2;
	uint8_t raw[1 + NOTE_PUB_MAX + 2];
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
	if (n < 2 || (size_t)n - 1 > key_max ||
	    (raw[0] == NOTE_ED25519 && n != 33)) {
		secmem_wipe(raw, sizeof(raw));
		return fail(why, why_size, -EINVAL, "%s",
			    n >= 2 && raw[0] == NOTE_ED25519 ? "the key is not base64 of 33 bytes"
							      : "the key is not base64 of a key type and a key");
	}
	*ret_type = raw[0];
	memcpy(key, raw + 1, (size_t)n - 1);
	*ret_key_size = (size_t)n - 1;
	secmem_wipe(raw, sizeof(raw));
	return 0;
}

int note_verifier_parse(const char *vkey, struct note_verifier *ret, char *why, size_t why_size)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
	struct note_verifier v = { 0 };
	uint32_t want;
	int r;

	if ((r = key_text_parse(vkey, strlen(vkey), v.name, &v.id, &v.type, v.key, sizeof(v.key), &v.key_size, why,
				why_size)) < 0)
		return r;
	if (v.type != NOTE_ED25519 && v.type != NOTE_ECDSA)
		return fail(why, why_size, -EINVAL,
			    "the key is of type 0x%02x, not Ed25519 (0x01) or ECDSA (0x02)", v.type);
	if (v.type == NOTE_ECDSA && (r = ecdsa_pub(v.key, v.key_size, &k, why, why_size)) < 0)
		return r;
	if ((r = key_id(&v, &want)) < 0)
		return r;
	if (want != v.id)
		return fail(why, why_size, -EINVAL, "the key id of '%s' does not match its key", v.name);
	*ret = v;
	return 0;
}

int note_signer_parse(const char *skey, size_t size, struct note_signer **ret, char *why, size_t why_size)
{
	static const char prefix[] = "PRIVATE+KEY+";
	_cleanup_secbuf_ struct secbuf *seed = secbuf_new(NOTE_PUB_MAX);
	struct note_signer *s;
	uint32_t want;
	size_t pub_len = 32, seed_len = 0;
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
	r = key_text_parse(skey + sizeof(prefix) - 1, size - (sizeof(prefix) - 1), s->v.name, &s->v.id, &s->v.type,
			   seed->data, seed->alloc, &seed_len, why, why_size);
	if (r < 0)
		goto out;
	if (s->v.type != NOTE_ED25519) {
		r = fail(why, why_size, -EINVAL, "%s", "the key is not an Ed25519 key (type 0x01)");
		goto out;
	}
	s->v.key_size = 32;
	s->key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed->data, 32);
	if (!s->key || !EVP_PKEY_get_raw_public_key(s->key, s->v.key, &pub_len)) {
		r = fail(why, why_size, -EIO, "%s", "OpenSSL cannot load the Ed25519 key");
		goto out;
	}
	if ((r = key_id(&s->v, &want)) < 0)
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

static int sig_check(const struct note_verifier *v, const char *text, size_t text_size, const uint8_t *sig,
		     size_t sig_size);
static int sign_raw(const struct note_signer *s, const char *text, size_t n, uint8_t *sig, size_t *sig_size);

int note_signer_from_pkey(const char *name, EVP_PKEY *key, int (*sign_init)(EVP_MD_CTX *ctx, EVP_PKEY *key),
			  struct note_signer **ret, char *why, size_t why_size)
{
	static const char probe[] = "keystrap log key probe\n";
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = NULL;
	struct note_signer *s;
	uint8_t *der = NULL, sig[SIG_MAX];
	size_t sig_size = sizeof(sig);
	int n, r;

	if (!name_valid(name, strlen(name)))
		return fail(why, why_size, -EINVAL, "'%s' is not a note key name (1-128 bytes, no '+', no space)", name);
	/* The public half as DER: the verifier's key, checked as a verifier checks it. */
	n = i2d_PUBKEY(key, &der);
	if (n <= 0 || (size_t)n > NOTE_PUB_MAX) {
		OPENSSL_free(der);
		return fail(why, why_size, -EINVAL, "%s", "its public key cannot be read, or is not an EC key");
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		OPENSSL_free(der);
		return -ENOMEM;
	}
	snprintf(s->v.name, sizeof(s->v.name), "%s", name);
	s->v.type = NOTE_ECDSA;
	s->v.key_size = (size_t)n;
	memcpy(s->v.key, der, (size_t)n);
	OPENSSL_free(der);
	s->sign_init = sign_init;
	if ((r = ecdsa_pub(s->v.key, s->v.key_size, &pub, why, why_size)) < 0 || (r = key_id(&s->v, &s->v.id)) < 0)
		goto out;
	if (EVP_PKEY_up_ref(key) != 1) {
		r = -ENOMEM;
		goto out;
	}
	s->key = key;
	/* Signs now, and its own public key verifies it: a key that cannot sign is refused at load, not at a checkpoint. */
	if (sign_raw(s, probe, strlen(probe), sig, &sig_size) < 0) {
		r = fail(why, why_size, -EIO, "%s", "it does not sign (ECDSA with SHA-256)");
		goto out;
	}
	if (sig_check(&s->v, probe, strlen(probe), sig, sig_size) < 0) {
		r = fail(why, why_size, -EKEYREJECTED, "%s", "its signature does not verify with its public key");
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

bool note_verifier_same_key(const struct note_verifier *a, const struct note_verifier *b)
{
	return a->type == b->type && a->key_size == b->key_size && memcmp(a->key, b->key, a->key_size) == 0;
}

void note_verifier_format(const struct note_verifier *v, char *ret)
{
	uint8_t raw[1 + NOTE_PUB_MAX];
	char b64[(1 + NOTE_PUB_MAX + 2) / 3 * 4 + 1];

	raw[0] = v->type;
	memcpy(raw + 1, v->key, v->key_size);
	base64_encode(raw, 1 + v->key_size, b64);
	snprintf(ret, NOTE_KEY_MAX, "%s+%08" PRIx32 "+%s", v->name, v->id, b64);
}

int note_key_generate(const char *name, struct secbuf **ret_skey, char ret_vkey[NOTE_KEY_MAX], char *why,
		      size_t why_size)
{
	_cleanup_secbuf_ struct secbuf *seed = secbuf_new(33), *text = secbuf_new(NOTE_KEY_MAX + 16);
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
	struct note_verifier v = { .type = NOTE_ED25519, .key_size = 32 };
	size_t pub_len = 32;
	char b64[64];
	int r, n;

	if (!seed || !text)
		return -ENOMEM;
	if (!name_valid(name, strlen(name)))
		return fail(why, why_size, -EINVAL,
			    "log name '%s' is not a note key name (1-128 bytes, no '+', no space)", name);
	seed->data[0] = NOTE_ED25519;
	if (RAND_priv_bytes(seed->data + 1, 32) != 1 ||
	    !(k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed->data + 1, 32)) ||
	    !EVP_PKEY_get_raw_public_key(k, v.key, &pub_len))
		return fail(why, why_size, -EIO, "%s", "OpenSSL cannot make an Ed25519 key");
	snprintf(v.name, sizeof(v.name), "%s", name);
	if ((r = key_id(&v, &v.id)) < 0)
		return r;
	base64_encode(seed->data, 33, b64);
	n = snprintf((char *)text->data, text->alloc, "PRIVATE+KEY+%s+%08" PRIx32 "+%s\n", v.name, v.id, b64);
	secmem_wipe(b64, sizeof(b64));
	text->size = (size_t)n;
	note_verifier_format(&v, ret_vkey);
	*ret_skey = TAKE_PTR(text);
	return 0;
}

/* s's signature of text: Ed25519's 64 bytes, or ECDSA's DER of SHA-256(text), through the key's own context. */
static int sign_raw(const struct note_signer *s, const char *text, size_t n, uint8_t *sig, size_t *sig_size)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t len = 0;

	if (!c)
		return -ENOMEM;
	if (s->v.type == NOTE_ED25519) {
		len = 64;
		if (!EVP_DigestSignInit(c, NULL, NULL, NULL, s->key) ||
		    !EVP_DigestSign(c, sig, &len, (const uint8_t *)text, n) || len != 64)
			return -EIO;
		*sig_size = len;
		return 0;
	}
	if (s->sign_init ? s->sign_init(c, s->key) < 0 : !EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, s->key))
		return -EIO;
	len = *sig_size;
	if (EVP_DigestSign(c, sig, &len, (const uint8_t *)text, n) != 1 || len > *sig_size)
		return -EIO;
	*sig_size = len;
	return 0;
}

/* "— NAME BASE64(KEYID || SIGNATURE)\n" by s over text. */
static int sig_line(const struct note_signer *s, const char *text, size_t n, FILE *out)
{
	uint8_t sig[4 + SIG_MAX];
	size_t sig_size = SIG_MAX;
	char b64[2 * (4 + SIG_MAX)];
	int r;

	sig[0] = (uint8_t)(s->v.id >> 24);
	sig[1] = (uint8_t)(s->v.id >> 16);
	sig[2] = (uint8_t)(s->v.id >> 8);
	sig[3] = (uint8_t)s->v.id;
	if ((r = sign_raw(s, text, n, sig + 4, &sig_size)) < 0)
		return r;
	base64_encode(sig, 4 + sig_size, b64);
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

static int sig_check(const struct note_verifier *v, const char *text, size_t text_size, const uint8_t *sig,
		     size_t sig_size)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *c = EVP_MD_CTX_new();
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
	char why[128];

	if (!c)
		return -ENOMEM;
	if (v->type == NOTE_ED25519) {
		if (sig_size != 64 || !(k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, v->key, 32)) ||
		    !EVP_DigestVerifyInit(c, NULL, NULL, NULL, k))
			return sig_size != 64 ? -EKEYREJECTED : -EIO;
	} else if (ecdsa_pub(v->key, v->key_size, &k, why, sizeof(why)) < 0 ||
		   !EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, k))
		return -EIO;
	/* OpenSSL's ECDSA takes only the DER it would itself write: no second encoding of one signature. */
	return EVP_DigestVerify(c, sig, sig_size, (const uint8_t *)text, text_size) == 1 ? 0 : -EKEYREJECTED;
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
		uint8_t raw[4 + SIG_MAX];
		long n;

		if (nsig >= SIGS_MAX)
			return fail(why, why_size, -EBADMSG, "%s", "the note has more than 16 signatures");
		if ((size_t)(nl - p) < plen || memcmp(p, SIG_PREFIX, plen) != 0 ||
		    !(sp = memchr(p + plen, ' ', (size_t)(nl - p - (long)plen))))
			return fail(why, why_size, -EBADMSG, "%s", "a signature line is not '— NAME SIGNATURE'");
		name_len = (size_t)(sp - p - (long)plen);
		p = nl + 1;
		/* Another signer's line is left alone: its signature may be of a kind, and a size, not known here. */
		if (name_len != strlen(v->name) || memcmp(sp - name_len, v->name, name_len) != 0)
			continue;
		n = base64_decode(sp + 1, (size_t)(nl - sp - 1), raw, sizeof(raw));
		if (n == -ENOBUFS) {
			rejected = true;
			continue;
		}
		if (n < 5)
			return fail(why, why_size, -EBADMSG, "%s", "a signature is not base64 of a key id and a signature");
		if (be32(raw) != v->id)
			continue;
		if (sig_check(v, note, text_size, raw + 4, (size_t)n - 4) == 0) {
			*ret_text_size = text_size;
			return 0;
		}
		rejected = true;
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
