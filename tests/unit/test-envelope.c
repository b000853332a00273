/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * server/store/envelope.c: AES-256-GCM sealing bound to associated data, and the file KEK
 * (loading, its checks, its id, wrapping, reloading, creation). Every positive case has its
 * negative twin: another key, another record's associated data, one byte changed anywhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/hmac.h>

#include "encode.h"
#include "envelope.h"
#include "macro.h"
#include "secbuf.h"
#include "tap.h"

static char dir[] = "/tmp/test-envelope-XXXXXX";

static void path_of(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", dir, name);
}

static void write_key(const char *name, const uint8_t *key, size_t n, mode_t mode)
{
	char p[256];
	int fd;

	path_of(p, sizeof(p), name);
	unlink(p);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0 || write(fd, key, n) != (ssize_t)n)
		abort();
	fchmod(fd, mode);
	close(fd);
}

static struct secbuf *text(const char *s)
{
	return secbuf_dup(s, strlen(s));
}

static void test_seal(void)
{
	_cleanup_secbuf_ struct secbuf *key = NULL, *other = NULL, *plain = text("hunter2"), *out = NULL;
	_cleanup_free_ uint8_t *a = NULL, *b = NULL;
	size_t na, nb;
	int bad = 0;

	CHECK(data_key_new(&key) == 0 && key->size == DATA_KEY_SIZE, "a data key is 32 bytes");
	CHECK(data_key_new(&other) == 0 && memcmp(key->data, other->data, DATA_KEY_SIZE) != 0, "drawn afresh");
	CHECK(envelope_seal(key, "keystrap-secret|db|1", plain, &a, &na) == 0 && na == plain->size + ENVELOPE_OVERHEAD,
	      "sealed: IV, ciphertext and tag");
	CHECK(memmem(a, na, "hunter2", 7) == NULL, "the value is not in the sealed bytes");
	CHECK(envelope_seal(key, "keystrap-secret|db|1", plain, &b, &nb) == 0 && nb == na && memcmp(a, b, na) != 0,
	      "sealed twice: two random IVs");
	CHECK(envelope_open(key, "keystrap-secret|db|1", a, na, &out) == 0 && out->size == 7 &&
		      memcmp(out->data, "hunter2", 7) == 0,
	      "opens under its key and associated data");
	secbuf_free(TAKE_PTR(out));
	CHECK(envelope_open(key, "keystrap-secret|db|2", a, na, &out) == -EBADMSG && !out,
	      "another version's associated data: refused");
	CHECK(envelope_open(key, "keystrap-secret|dc|1", a, na, &out) == -EBADMSG, "another name's: refused");
	CHECK(envelope_open(other, "keystrap-secret|db|1", a, na, &out) == -EBADMSG, "another key: refused");
	for (size_t i = 0; i < na; i++) {
		a[i] ^= 0x01;
		if (envelope_open(key, "keystrap-secret|db|1", a, na, &out) != -EBADMSG)
			bad++;
		a[i] ^= 0x01;
	}
	CHECK(bad == 0, "one bit flipped anywhere (IV, ciphertext, tag): refused every time");
	CHECK(envelope_open(key, "keystrap-secret|db|1", a, na - 1, &out) == -EBADMSG, "truncated: refused");
	CHECK(envelope_open(key, "keystrap-secret|db|1", a, ENVELOPE_OVERHEAD - 1, &out) == -EBADMSG,
	      "shorter than IV and tag: refused");
	CHECK(envelope_open(key, "keystrap-secret|db|1", a, na, &out) == 0, "the untouched twin still opens");
	key->size = 16;
	CHECK(envelope_seal(key, "x", plain, &b, &nb) == -EINVAL, "a key of another size is not used");
	key->size = DATA_KEY_SIZE;
}

/* HMAC-SHA256(key, "keystrap kek id"), first 16 bytes, hex: computed here independently of envelope.c. */
static void expected_id(const uint8_t key[32], char ret[KEK_ID_HEX + 1])
{
	uint8_t mac[32];
	unsigned n = sizeof(mac);

	HMAC(EVP_sha256(), key, 32, (const uint8_t *)"keystrap kek id", 15, mac, &n);
	hex_encode(mac, KEK_ID_HEX / 2, ret);
}

static void test_kek_file(void)
{
	uint8_t k1[32], k2[32];
	char p[256], fp[300], why[512], id1[KEK_ID_HEX + 1], id2[KEK_ID_HEX + 1];
	struct kek *k = NULL, *j = NULL;

	for (int i = 0; i < 32; i++)
		k1[i] = (uint8_t)i, k2[i] = (uint8_t)(0xa0 + i);
	expected_id(k1, id1);
	expected_id(k2, id2);
	write_key("k1", k1, 32, 0600);
	path_of(p, sizeof(p), "k1");
	CHECK(kek_load(p, &k, why, sizeof(why)) == 0 && streq(kek_id(k), id1) && streq(kek_path(k), p),
	      "a 32-byte owner-only file loads; its id is the HMAC of the label");
	kek_free(TAKE_PTR(k));
	snprintf(fp, sizeof(fp), "file:%s", p);
	CHECK(kek_load(fp, &k, why, sizeof(why)) == 0 && streq(kek_id(k), id1) && streq(kek_name(k), fp),
	      "file:PATH is the same KEK");
	kek_free(TAKE_PTR(k));

	chmod(p, 0640);
	CHECK(kek_load(p, &k, why, sizeof(why)) == -EACCES && !k && strstr(why, "has mode 0640") &&
		      strncmp(why, "KEK '", 5) == 0,
	      "group-readable: refused, naming the file and its mode");
	chmod(p, 0604);
	CHECK(kek_load(p, &k, why, sizeof(why)) == -EACCES, "other-readable: refused");
	chmod(p, 0600);
	write_key("short", k1, 31, 0600);
	path_of(p, sizeof(p), "short");
	CHECK(kek_load(p, &k, why, sizeof(why)) == -EBADMSG && strstr(why, "is not 32 bytes"), "31 bytes: refused");
	write_key("long", k1, 32, 0600);
	path_of(p, sizeof(p), "long");
	{
		int fd = open(p, O_WRONLY | O_APPEND);

		CHECK(fd >= 0 && write(fd, "\n", 1) == 1, "(a newline appended)");
		close(fd);
	}
	CHECK(kek_load(p, &k, why, sizeof(why)) == -EBADMSG, "33 bytes (a trailing newline): refused");
	path_of(p, sizeof(p), "none");
	CHECK(kek_load(p, &k, why, sizeof(why)) == -ENOENT && strstr(why, "does not exist"), "missing: refused");
	CHECK(kek_load("vault:kek", &k, why, sizeof(why)) == -EPROTONOSUPPORT && strstr(why, "'vault:kek'"),
	      "a URI of a scheme no key is reached by: refused, named");
	CHECK(kek_load("file:", &k, why, sizeof(why)) == -EINVAL, "file: with no path: refused");
	CHECK(kek_name_file("/etc/k:e") && streq(kek_name_file("/etc/k:e"), "/etc/k:e") &&
		      streq(kek_name_file("file:/x"), "/x") && !kek_name_file("handle:0x81000001"),
	      "a ':' inside a path is no scheme");
	write_key("k2", k2, 32, 0600);
	path_of(p, sizeof(p), "k2");
	CHECK(kek_load(p, &j, why, sizeof(why)) == 0 && streq(kek_id(j), id2), "another key, another id");
	kek_free(j);
}

static void test_wrap(void)
{
	_cleanup_secbuf_ struct secbuf *dk = NULL, *out = NULL;
	_cleanup_free_ uint8_t *w = NULL;
	_cleanup_kek_ struct kek *k = NULL, *j = NULL;
	char p1[256], p2[256], why[512], id[KEK_ID_HEX + 1];
	uint8_t k3[32];
	size_t n;

	path_of(p1, sizeof(p1), "k1");
	path_of(p2, sizeof(p2), "k2");
	if (kek_load(p1, &k, why, sizeof(why)) < 0 || kek_load(p2, &j, why, sizeof(why)) < 0 || data_key_new(&dk) < 0)
		abort();
	CHECK(kek_wrap(k, "keystrap-data-key|db|1", dk, &w, &n) == 0 && n == DATA_KEY_SIZE + ENVELOPE_OVERHEAD &&
		      !memmem(w, n, dk->data, DATA_KEY_SIZE),
	      "a data key wrapped: 60 bytes, the key not among them");
	CHECK(kek_unwrap(k, "keystrap-data-key|db|1", w, n, &out) == 0 && out->size == DATA_KEY_SIZE &&
		      secmem_equal(out->data, dk->data, DATA_KEY_SIZE),
	      "unwrapped by its KEK for its record");
	secbuf_free(TAKE_PTR(out));
	CHECK(kek_unwrap(j, "keystrap-data-key|db|1", w, n, &out) == -EBADMSG, "another KEK: refused");
	CHECK(kek_unwrap(k, "keystrap-data-key|db|2", w, n, &out) == -EBADMSG, "another record: refused");

	/* Reload: the file replaced (a rotation elsewhere) gives the new key; a failed reload keeps the old. */
	snprintf(id, sizeof(id), "%s", kek_id(k));
	for (int i = 0; i < 32; i++)
		k3[i] = (uint8_t)(0x55 ^ i);
	write_key("k1", k3, 32, 0600);
	CHECK(kek_reload(k, why, sizeof(why)) == 0 && !streq(kek_id(k), id), "reloaded from its file: the new key");
	CHECK(kek_unwrap(k, "keystrap-data-key|db|1", w, n, &out) == -EBADMSG, "which does not open the old wrap");
	unlink(p1);
	snprintf(id, sizeof(id), "%s", kek_id(k));
	CHECK(kek_reload(k, why, sizeof(why)) == -ENOENT && streq(kek_id(k), id), "the file gone: the key in use stays");
}

static void test_create(void)
{
	_cleanup_kek_ struct kek *k = NULL;
	char p[256], why[512];
	struct stat st;
	uint8_t before[32], after[32];
	int fd;

	umask(022);
	path_of(p, sizeof(p), "new");
	CHECK(kek_file_create(p) == 0 && stat(p, &st) == 0 && (st.st_mode & 07777) == 0600 && st.st_size == 32,
	      "created under umask 022: 0600, 32 bytes");
	CHECK(kek_load(p, &k, why, sizeof(why)) == 0, "and it loads");
	fd = open(p, O_RDONLY);
	CHECK(fd >= 0 && read(fd, before, 32) == 32, "(read)");
	close(fd);
	CHECK(kek_file_create(p) == -EEXIST, "an existing file is not overwritten");
	fd = open(p, O_RDONLY);
	CHECK(fd >= 0 && read(fd, after, 32) == 32 && memcmp(before, after, 32) == 0, "and is unchanged");
	close(fd);
	umask(077);
}

int main(void)
{
	char cmd[64];

	if (!mkdtemp(dir))
		return 1;
	test_seal();
	test_kek_file();
	test_wrap();
	test_create();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return TAP_DONE();
}
