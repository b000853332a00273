/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "encode.h"
#include "envelope.h"
#include "fileio.h"
#include "keyref.h"
#include "log.h"
#include "ossl.h"
#include "payload.h"

#define IV_SIZE 12

/*
 * One adapter per kind of KEK. The file adapter holds the key in a secbuf and wraps with
 * AES-256-GCM itself. The hardware adapter holds an EVP_PKEY handle to an EC P-256 key in the
 * TPM or on a PKCS#11 token (keyref.h) and wraps by ECDH: a fresh ephemeral key E, Z = ECDH(E,
 * KEK), a wrapping key HKDF-SHA256(Z, info = label ‖ E ‖ KEK), and the data key sealed under
 * it with AES-256-GCM and the record's identity as associated data, as the file adapter seals
 * it. Wrapping needs only the public half; unwrapping asks the token or the TPM for Z.
 */
struct kek_ops {
	int (*load)(struct kek *k, char *why, size_t why_size);
	int (*wrap)(struct kek *k, const char *aad, const struct secbuf *data_key, uint8_t **ret, size_t *ret_size);
	int (*unwrap)(struct kek *k, const char *aad, const uint8_t *wrapped, size_t size, struct secbuf **ret);
	void (*done)(struct kek *k);
};

struct kek {
	const struct kek_ops *ops;
	char *name; /* as shown: a PIN in a URI is "***" */
	char *uri;  /* as configured */
	char *path; /* the file adapter's */
	char id[KEK_ID_HEX + 1];
	struct secbuf *key;
	EVP_PKEY *hw;  /* the hardware adapter's: a handle, the private key stays in the TPM or on the token */
	EVP_PKEY *pub; /* its public half, in the default library context */
};

int data_key_new(struct secbuf **ret)
{
	struct secbuf *b = secbuf_new(DATA_KEY_SIZE);

	if (!b)
		return -ENOMEM;
	if (RAND_priv_bytes(b->data, DATA_KEY_SIZE) != 1) {
		secbuf_free(b);
		return -EIO;
	}
	*ret = b;
	return 0;
}

int envelope_seal(const struct secbuf *key, const char *aad, const struct secbuf *plain, uint8_t **ret,
		  size_t *ret_size)
{
	_cleanup_free_ uint8_t *ct = NULL, *out = NULL;
	uint8_t iv[IV_SIZE];
	size_t n;
	int r;

	if (key->size != DATA_KEY_SIZE)
		return -EINVAL;
	if ((r = payload_encrypt(key->data, aad, plain, iv, &ct, &n)) < 0)
		return r;
	out = malloc(IV_SIZE + n);
	if (!out)
		return -ENOMEM;
	memcpy(out, iv, IV_SIZE);
	memcpy(out + IV_SIZE, ct, n);
	*ret_size = IV_SIZE + n;
	*ret = TAKE_PTR(out);
	return 0;
}

int envelope_open(const struct secbuf *key, const char *aad, const uint8_t *sealed, size_t size,
		  struct secbuf **ret)
{
	if (key->size != DATA_KEY_SIZE)
		return -EINVAL;
	if (size < ENVELOPE_OVERHEAD)
		return -EBADMSG;
	return payload_decrypt(key->data, aad, sealed, sealed + IV_SIZE, size - IV_SIZE, ret);
}

/* HMAC-SHA256(key, label): a KEK's name for records and messages, from which the key cannot be had. */
static int key_id(const struct secbuf *key, char ret[KEK_ID_HEX + 1])
{
	static const char label[] = "keystrap kek id";
	uint8_t mac[32];
	unsigned n = sizeof(mac);

	if (!HMAC(EVP_sha256(), key->data, (int)key->size, (const uint8_t *)label, sizeof(label) - 1, mac, &n))
		return -EIO;
	hex_encode(mac, KEK_ID_HEX / 2, ret);
	secmem_wipe(mac, sizeof(mac));
	return 0;
}

static int file_load(struct kek *k, char *why, size_t why_size)
{
	_cleanup_secbuf_ struct secbuf *key = NULL;
	char id[KEK_ID_HEX + 1];
	int r;

	/* Whoever can read it can read every secret in any copy of the database. */
	r = file_check_private(k->path, why, why_size);
	if (r == -EACCES) {
		char mode[512];

		snprintf(mode, sizeof(mode), "%s", why);
		snprintf(why, why_size, "KEK %s", mode);
		return r;
	}
	if (r == -ENOENT) {
		snprintf(why, why_size, "KEK '%s' does not exist (keystrap-server kek init creates one)", k->path);
		return r;
	}
	if (r < 0) {
		snprintf(why, why_size, "cannot read KEK '%s': %s", k->path, strerror(-r));
		return r;
	}
	r = secbuf_read_file(k->path, KEK_FILE_SIZE, &key);
	if (r == -EFBIG || r == -ENODATA || (r >= 0 && key->size != KEK_FILE_SIZE)) {
		snprintf(why, why_size, "KEK '%s' is not %d bytes (keystrap-server kek init makes one)", k->path,
			 KEK_FILE_SIZE);
		return -EBADMSG;
	}
	if (r < 0) {
		snprintf(why, why_size, "cannot read KEK '%s': %s", k->path, strerror(-r));
		return r;
	}
	if ((r = key_id(key, id)) < 0) {
		snprintf(why, why_size, "cannot use KEK '%s': %s", k->path, strerror(-r));
		return r;
	}
	secbuf_free(k->key);
	k->key = TAKE_PTR(key);
	memcpy(k->id, id, sizeof(id));
	return 0;
}

static int file_wrap(struct kek *k, const char *aad, const struct secbuf *data_key, uint8_t **ret, size_t *ret_size)
{
	return envelope_seal(k->key, aad, data_key, ret, ret_size);
}

/* A data key sealed under key: -EBADMSG unless it opens and is a data key's size. */
static int data_key_open(const struct secbuf *key, const char *aad, const uint8_t *sealed, size_t size,
			 struct secbuf **ret)
{
	_cleanup_secbuf_ struct secbuf *d = NULL;
	int r = envelope_open(key, aad, sealed, size, &d);

	if (r < 0)
		return r;
	if (d->size != DATA_KEY_SIZE)
		return -EBADMSG;
	*ret = TAKE_PTR(d);
	return 0;
}

static int file_unwrap(struct kek *k, const char *aad, const uint8_t *wrapped, size_t size, struct secbuf **ret)
{
	return data_key_open(k->key, aad, wrapped, size, ret);
}

static void file_done(struct kek *k)
{
	secbuf_free(k->key);
	k->key = NULL;
}

static const struct kek_ops file_ops = { file_load, file_wrap, file_unwrap, file_done };

#define HW_INFO "keystrap kek ecdh"
#define P256_SPKI_SIZE 91

static int spki_of(EVP_PKEY *k, uint8_t ret[P256_SPKI_SIZE])
{
	uint8_t *p = ret;

	return i2d_PUBKEY(k, NULL) == P256_SPKI_SIZE && i2d_PUBKEY(k, &p) == P256_SPKI_SIZE ? 0 : -EINVAL;
}

static int hw_selftest(struct kek *k);

static int hw_load(struct kek *k, char *why, size_t why_size)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *hw = NULL, *pub = NULL;
	uint8_t spki[P256_SPKI_SIZE], digest[32];
	const uint8_t *p = spki;
	char group[16] = "";
	unsigned n = sizeof(digest);
	int r;

	if ((r = keyref_load_private(k->uri, &hw, why, why_size)) < 0) {
		char detail[KEYREF_WHY_MAX];

		snprintf(detail, sizeof(detail), "%s", why);
		snprintf(why, why_size, "KEK %s", detail);
		return r;
	}
	/* The public half, read back through DER into the default context: it wraps without the token. */
	if (spki_of(hw, spki) < 0 || !(pub = d2i_PUBKEY(NULL, &p, sizeof(spki))) ||
	    EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) != 1 ||
	    !streq(group, "prime256v1")) {
		ERR_clear_error();
		snprintf(why, why_size, "KEK '%s' is not an EC P-256 key (a KEK in hardware wraps by ECDH)", k->name);
		return -EINVAL;
	}
	if (!EVP_Digest(spki, sizeof(spki), digest, &n, EVP_sha256(), NULL)) {
		snprintf(why, why_size, "cannot use KEK '%s'", k->name);
		return -EIO;
	}
	EVP_PKEY_free(k->hw);
	EVP_PKEY_free(k->pub);
	k->hw = TAKE_PTR(hw);
	k->pub = TAKE_PTR(pub);
	hex_encode(digest, KEK_ID_HEX / 2, k->id);
	/* Once round, now: a key the token or the TPM will not let derive is refused here, not per secret. */
	if ((r = hw_selftest(k)) < 0) {
		snprintf(why, why_size, "KEK '%s' cannot unwrap: the key must allow ECDH (PKCS#11 CKA_DERIVE, a TPM "
			 "key's decrypt attribute)", k->name);
		return r;
	}
	return 0;
}

/* The wrapping key for ephemeral key e (its SPKI) and Z, the ECDH secret. */
static int hw_wrapping_key(struct kek *k, const uint8_t e[P256_SPKI_SIZE], struct secbuf *z, struct secbuf **ret)
{
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	_cleanup_secbuf_ struct secbuf *w = secbuf_new(DATA_KEY_SIZE);
	uint8_t info[sizeof(HW_INFO) - 1 + 2 * P256_SPKI_SIZE];
	size_t n = DATA_KEY_SIZE;

	memcpy(info, HW_INFO, sizeof(HW_INFO) - 1);
	memcpy(info + sizeof(HW_INFO) - 1, e, P256_SPKI_SIZE);
	if (!c || !w || spki_of(k->pub, info + sizeof(HW_INFO) - 1 + P256_SPKI_SIZE) < 0)
		return -ENOMEM;
	if (EVP_PKEY_derive_init(c) != 1 || EVP_PKEY_CTX_set_hkdf_md(c, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set1_hkdf_key(c, z->data, (int)z->size) != 1 ||
	    EVP_PKEY_CTX_add1_hkdf_info(c, info, (int)sizeof(info)) != 1 || EVP_PKEY_derive(c, w->data, &n) != 1 ||
	    n != DATA_KEY_SIZE) {
		ERR_clear_error();
		return -EIO;
	}
	*ret = TAKE_PTR(w);
	return 0;
}

/* Z = ECDH(key, peer) into a secbuf; key through its own context (the token's, the TPM's). */
static int hw_ecdh(EVP_PKEY *key, EVP_PKEY *peer, bool hardware, struct secbuf **ret)
{
	_cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *c = hardware ? keyref_pkey_ctx(key) : EVP_PKEY_CTX_new(key, NULL);
	_cleanup_secbuf_ struct secbuf *z = NULL;
	size_t n = 0;

	if (!c || EVP_PKEY_derive_init(c) != 1 || EVP_PKEY_derive_set_peer(c, peer) != 1 ||
	    EVP_PKEY_derive(c, NULL, &n) != 1 || n == 0 || n > 66 || !(z = secbuf_new(n)) ||
	    EVP_PKEY_derive(c, z->data, &n) != 1) {
		ERR_clear_error();
		return -EBADMSG;
	}
	z->size = n;
	*ret = TAKE_PTR(z);
	return 0;
}

static int hw_wrap(struct kek *k, const char *aad, const struct secbuf *data_key, uint8_t **ret, size_t *ret_size)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *e = EVP_EC_gen("P-256");
	_cleanup_secbuf_ struct secbuf *z = NULL, *w = NULL;
	_cleanup_free_ uint8_t *sealed = NULL, *out = NULL;
	uint8_t spki[P256_SPKI_SIZE];
	size_t n;
	int r;

	if (!e || spki_of(e, spki) < 0)
		return -EIO;
	if ((r = hw_ecdh(e, k->pub, false, &z)) < 0 || (r = hw_wrapping_key(k, spki, z, &w)) < 0 ||
	    (r = envelope_seal(w, aad, data_key, &sealed, &n)) < 0)
		return r == -EBADMSG ? -EIO : r;
	if (!(out = malloc(sizeof(spki) + n)))
		return -ENOMEM;
	memcpy(out, spki, sizeof(spki));
	memcpy(out + sizeof(spki), sealed, n);
	*ret_size = sizeof(spki) + n;
	*ret = TAKE_PTR(out);
	return 0;
}

static int hw_unwrap(struct kek *k, const char *aad, const uint8_t *wrapped, size_t size, struct secbuf **ret)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *e = NULL;
	_cleanup_secbuf_ struct secbuf *z = NULL, *w = NULL;
	const uint8_t *p = wrapped;
	int r;

	/* Another KEK's wrap (a file KEK's is 60 bytes), cut or altered: not this KEK's. */
	if (size < P256_SPKI_SIZE + ENVELOPE_OVERHEAD || !(e = d2i_PUBKEY(NULL, &p, P256_SPKI_SIZE)) ||
	    p != wrapped + P256_SPKI_SIZE) {
		ERR_clear_error();
		return -EBADMSG;
	}
	if ((r = hw_ecdh(k->hw, e, true, &z)) < 0 || (r = hw_wrapping_key(k, wrapped, z, &w)) < 0)
		return r;
	return data_key_open(w, aad, wrapped + P256_SPKI_SIZE, size - P256_SPKI_SIZE, ret);
}

static void hw_done(struct kek *k)
{
	EVP_PKEY_free(k->hw);
	EVP_PKEY_free(k->pub);
	k->hw = k->pub = NULL;
}

static int hw_selftest(struct kek *k)
{
	_cleanup_secbuf_ struct secbuf *v = NULL, *back = NULL;
	_cleanup_free_ uint8_t *w = NULL;
	size_t n;
	int r;

	if ((r = data_key_new(&v)) < 0 || (r = hw_wrap(k, "keystrap kek self-test", v, &w, &n)) < 0 ||
	    (r = hw_unwrap(k, "keystrap kek self-test", w, n, &back)) < 0)
		return r;
	return CRYPTO_memcmp(v->data, back->data, DATA_KEY_SIZE) == 0 ? 0 : -EBADMSG;
}

static const struct kek_ops hw_ops = { hw_load, hw_wrap, hw_unwrap, hw_done };

const char *kek_name_file(const char *name)
{
	return keyref_file(name);
}

int kek_load(const char *name, struct kek **ret, char *why, size_t why_size)
{
	_cleanup_kek_ struct kek *k = NULL;
	const char *path = kek_name_file(name);
	char shown[KEYREF_WHY_MAX / 2];
	int r;

	keyref_display(name, shown, sizeof(shown));
	if (!path && !keyref_is_hardware(name)) {
		snprintf(why, why_size, "KEK '%s': not a file (PATH, file:PATH), a TPM's key (handle:) or a token's "
			 "(pkcs11:)", shown);
		return -EPROTONOSUPPORT;
	}
	if (path && !path[0]) {
		snprintf(why, why_size, "KEK '%s' names no file", name);
		return -EINVAL;
	}
	k = calloc(1, sizeof(*k));
	if (!k || !(k->name = strdup(shown)) || !(k->uri = strdup(name)) || (path && !(k->path = strdup(path)))) {
		snprintf(why, why_size, "out of memory");
		return -ENOMEM;
	}
	k->ops = path ? &file_ops : &hw_ops;
	if ((r = k->ops->load(k, why, why_size)) < 0)
		return r;
	*ret = TAKE_PTR(k);
	return 0;
}

void kek_free(struct kek *k)
{
	if (!k)
		return;
	if (k->ops)
		k->ops->done(k);
	free(k->name);
	free(k->uri);
	free(k->path);
	free(k);
}

const char *kek_name(const struct kek *k)
{
	return k->name;
}

const char *kek_id(const struct kek *k)
{
	return k->id;
}

const char *kek_path(const struct kek *k)
{
	return k->path;
}

int kek_reload(struct kek *k, char *why, size_t why_size)
{
	return k->ops->load(k, why, why_size);
}

int kek_wrap(struct kek *k, const char *aad, const struct secbuf *data_key, uint8_t **ret, size_t *ret_size)
{
	return k->ops->wrap(k, aad, data_key, ret, ret_size);
}

int kek_unwrap(struct kek *k, const char *aad, const uint8_t *wrapped, size_t size, struct secbuf **ret)
{
	return k->ops->unwrap(k, aad, wrapped, size, ret);
}

int kek_file_create(const char *path)
{
	_cleanup_secbuf_ struct secbuf *key = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if ((r = data_key_new(&key)) < 0)
		return r;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return -errno;
	/* Whatever the umask, and a file made half-way is no KEK: it goes. */
	if (fchmod(fd, 0600) < 0 || (r = write_full(fd, key->data, key->size)) < 0 || fsync(fd) < 0) {
		r = r < 0 ? r : -errno;
		(void)unlink(path);
		return r;
	}
	return fsync_parent_dir(path);
}
