/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "encode.h"
#include "envelope.h"
#include "fileio.h"
#include "log.h"
#include "payload.h"

#define IV_SIZE 12

/*
 * One adapter per kind of KEK. The file adapter holds the key in a secbuf and wraps with
 * AES-256-GCM itself; a provider adapter would hold an EVP_PKEY (or a PKCS#11 handle) and let
 * the provider wrap and unwrap.
 */
struct kek_ops {
	int (*load)(struct kek *k, char *why, size_t why_size);
	int (*wrap)(struct kek *k, const char *aad, const struct secbuf *data_key, uint8_t **ret, size_t *ret_size);
	int (*unwrap)(struct kek *k, const char *aad, const uint8_t *wrapped, size_t size, struct secbuf **ret);
	void (*done)(struct kek *k);
};

struct kek {
	const struct kek_ops *ops;
	char *name;
	char *path; /* the file adapter's */
	char id[KEK_ID_HEX + 1];
	struct secbuf *key;
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

static int file_unwrap(struct kek *k, const char *aad, const uint8_t *wrapped, size_t size, struct secbuf **ret)
{
	_cleanup_secbuf_ struct secbuf *key = NULL;
	int r = envelope_open(k->key, aad, wrapped, size, &key);

	if (r < 0)
		return r;
	if (key->size != DATA_KEY_SIZE)
		return -EBADMSG;
	*ret = TAKE_PTR(key);
	return 0;
}

static void file_done(struct kek *k)
{
	secbuf_free(k->key);
	k->key = NULL;
}

static const struct kek_ops file_ops = { file_load, file_wrap, file_unwrap, file_done };

/* "scheme:" at the start of name (a URI), as opposed to a path, which may hold ':' further on. */
static size_t scheme_len(const char *name)
{
	size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");

	return n > 0 && name[n] == ':' && !strchr("0123456789+.-", name[0]) ? n : 0;
}

const char *kek_name_file(const char *name)
{
	size_t n = scheme_len(name);

	if (n == 0)
		return name;
	return strncmp(name, "file:", 5) == 0 ? name + 5 : NULL;
}

int kek_load(const char *name, struct kek **ret, char *why, size_t why_size)
{
	_cleanup_kek_ struct kek *k = NULL;
	const char *path = kek_name_file(name);
	int r;

	if (!path) {
		snprintf(why, why_size, "KEK '%s': only a file (PATH or file:PATH) can hold the KEK so far", name);
		return -EPROTONOSUPPORT;
	}
	if (!path[0]) {
		snprintf(why, why_size, "KEK '%s' names no file", name);
		return -EINVAL;
	}
	k = calloc(1, sizeof(*k));
	if (!k || !(k->name = strdup(name)) || !(k->path = strdup(path))) {
		snprintf(why, why_size, "out of memory");
		return -ENOMEM;
	}
	k->ops = &file_ops;
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
