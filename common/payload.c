/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ossl.h"
#include "payload.h"

#define TAG_SIZE 16

bool keystrap_name_valid(const char *s, size_t n, size_t max)
{
	if (n == 0 || n > max || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-", s[i]))
			return false;
	return true;
}

bool secret_name_valid(const char *s)
{
	return keystrap_name_valid(s, strlen(s), NODE_SECRET_NAME_MAX);
}

int payload_encode(const struct payload_item *items, size_t n, struct secbuf **ret, size_t *ret_bad)
{
	_cleanup_secbuf_ struct secbuf *b = NULL;
	size_t size = 0, off = 0;

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(items[i].name);

		if (!secret_name_valid(items[i].name) || items[i].value->size > UINT16_MAX) {
			*ret_bad = i;
			return -EINVAL;
		}
		size += 1 + l + 2 + items[i].value->size;
	}
	b = secbuf_new(size);
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(items[i].name), v = items[i].value->size;

		b->data[off++] = (uint8_t)l;
		memcpy(b->data + off, items[i].name, l);
		off += l;
		b->data[off++] = (uint8_t)(v >> 8);
		b->data[off++] = (uint8_t)v;
		if (v)
			memcpy(b->data + off, items[i].value->data, v);
		off += v;
	}
	*ret = TAKE_PTR(b);
	return 0;
}

void node_secrets_free(struct node_secret *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		secbuf_free(s[i].value);
	free(s);
}

int payload_decode(const uint8_t *p, size_t size, struct node_secret **ret, size_t *ret_n)
{
	struct node_secret *s = NULL;
	size_t n = 0, off = 0;
	int r = -EBADMSG;

	while (off < size) {
		size_t l = p[off++], v;
		struct node_secret *q;

		if (l > size - off || !keystrap_name_valid((const char *)p + off, l, NODE_SECRET_NAME_MAX))
			goto fail;
		for (size_t i = 0; i < n; i++)
			if (strlen(s[i].name) == l && memcmp(s[i].name, p + off, l) == 0)
				goto fail;
		q = realloc(s, (n + 1) * sizeof(*s));
		if (!q) {
			r = -ENOMEM;
			goto fail;
		}
		s = q;
		memset(&s[n], 0, sizeof(s[n]));
		memcpy(s[n].name, p + off, l);
		n++;
		off += l;
		if (size - off < 2)
			goto fail;
		v = (size_t)p[off] << 8 | p[off + 1];
		off += 2;
		if (v > size - off)
			goto fail;
		s[n - 1].value = secbuf_dup(p + off, v);
		if (!s[n - 1].value) {
			r = -ENOMEM;
			goto fail;
		}
		off += v;
	}
	*ret = s;
	*ret_n = n;
	return 0;
fail:
	node_secrets_free(s, n);
	return r;
}

int payload_encrypt(const uint8_t key[PAYLOAD_KEY_SIZE], const char *aad, const struct secbuf *plain,
		    uint8_t iv[12], uint8_t **ret, size_t *ret_size)
{
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	_cleanup_free_ uint8_t *out = malloc(plain->size + TAG_SIZE);
	int n = 0, f = 0;

	if (!c || !out)
		return -ENOMEM;
	if (RAND_bytes(iv, 12) != 1 || !EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv) ||
	    !EVP_EncryptUpdate(c, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)) ||
	    !EVP_EncryptUpdate(c, out, &n, plain->data, (int)plain->size) || !EVP_EncryptFinal_ex(c, out + n, &f) ||
	    (size_t)(n + f) != plain->size ||
	    !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_SIZE, out + plain->size))
		return -EIO;
	*ret = TAKE_PTR(out);
	*ret_size = plain->size + TAG_SIZE;
	return 0;
}

int payload_decrypt(const uint8_t key[PAYLOAD_KEY_SIZE], const char *aad, const uint8_t iv[12],
		    const uint8_t *ciphertext, size_t size, struct secbuf **ret)
{
	_cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	_cleanup_secbuf_ struct secbuf *plain = NULL;
	uint8_t tag[TAG_SIZE];
	int n = 0, f = 0;

	if (size < TAG_SIZE)
		return -EBADMSG;
	plain = secbuf_new(size - TAG_SIZE);
	if (!c || !plain)
		return -ENOMEM;
	memcpy(tag, ciphertext + size - TAG_SIZE, TAG_SIZE);
	if (!EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv) ||
	    !EVP_DecryptUpdate(c, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)) ||
	    !EVP_DecryptUpdate(c, plain->data, &n, ciphertext, (int)(size - TAG_SIZE)) ||
	    !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_SIZE, tag))
		return -EIO;
	/* Only an authentic payload is released; what was decrypted of a forged one is wiped. */
	if (EVP_DecryptFinal_ex(c, plain->data + n, &f) != 1)
		return -EBADMSG;
	*ret = TAKE_PTR(plain);
	return 0;
}
