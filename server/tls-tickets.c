/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "deadline.h"
#include "secbuf.h"
#include "tls-tickets.h"

#define NAME_SIZE 16
#define KEY_SIZE (NAME_SIZE + 32 + 32) /* name, AES-256 key, HMAC-SHA256 key */

struct tls_tickets {
	struct secbuf *keys; /* two of KEY_SIZE: [cur] and [!cur] */
	int64_t created[2];  /* 0: that slot holds no key */
	unsigned cur;
	int64_t period;
};

static int ex_index = -1;

static uint8_t *slot(struct tls_tickets *t, unsigned i)
{
	return t->keys->data + (size_t)i * KEY_SIZE;
}

static int fill(struct tls_tickets *t, unsigned i, int64_t now)
{
	if (RAND_priv_bytes(slot(t, i), KEY_SIZE) != 1)
		return -EIO;
	t->created[i] = now;
	return 0;
}

int tls_tickets_new(int64_t period, int64_t now, struct tls_tickets **ret)
{
	struct tls_tickets *t;

	if (period < 1)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t || !(t->keys = secbuf_new(2 * KEY_SIZE))) {
		free(t);
		return -ENOMEM;
	}
	t->period = period;
	if (fill(t, 0, now) < 0) {
		tls_tickets_free(t);
		return -EIO;
	}
	*ret = t;
	return 0;
}

void tls_tickets_free(struct tls_tickets *t)
{
	if (!t)
		return;
	secbuf_free(t->keys);
	free(t);
}

/*
 * The current key replaced once its period has passed, the one it replaces kept as the previous
 * for one more period; after two periods without a ticket neither is kept. A key that cannot
 * be made (the random generator failing) leaves none: tickets are refused, and handshakes that
 * would issue one fail, until one can.
 */
static void rotate(struct tls_tickets *t, int64_t now)
{
	unsigned prev = !t->cur;

	if (t->created[prev] && now - t->created[prev] >= 2 * t->period) {
		secmem_wipe(slot(t, prev), KEY_SIZE);
		t->created[prev] = 0;
	}
	if (t->created[t->cur] && now - t->created[t->cur] < t->period)
		return;
	if (t->created[t->cur] && now - t->created[t->cur] < 2 * t->period) {
		t->cur = prev;
	} else {
		secmem_wipe(slot(t, prev), KEY_SIZE);
		t->created[prev] = 0;
	}
	/* slot cur is now the oldest: the new key goes there. */
	secmem_wipe(slot(t, t->cur), KEY_SIZE);
	t->created[t->cur] = 0;
	(void)fill(t, t->cur, now);
}

void tls_tickets_current(struct tls_tickets *t, int64_t now, const uint8_t **ret_name, const uint8_t **ret_aes,
			 const uint8_t **ret_hmac)
{
	rotate(t, now);
	*ret_name = t->created[t->cur] ? slot(t, t->cur) : NULL;
	*ret_aes = *ret_name ? slot(t, t->cur) + NAME_SIZE : NULL;
	*ret_hmac = *ret_name ? slot(t, t->cur) + NAME_SIZE + 32 : NULL;
}

int tls_tickets_find(struct tls_tickets *t, int64_t now, const uint8_t name[16], const uint8_t **ret_aes,
		     const uint8_t **ret_hmac)
{
	rotate(t, now);
	for (unsigned k = 0; k < 2; k++) {
		unsigned i = k ? !t->cur : t->cur;

		if (t->created[i] && secmem_equal(slot(t, i), name, NAME_SIZE)) {
			*ret_aes = slot(t, i) + NAME_SIZE;
			*ret_hmac = slot(t, i) + NAME_SIZE + 32;
			return k ? 2 : 1;
		}
	}
	return 0;
}

/* OpenSSL's ticket key callback: 1 a key set up (2: and renew the ticket), 0 a full handshake, -1 an error. */
static int on_ticket(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *c, EVP_MAC_CTX *h, int enc)
{
	struct tls_tickets *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), ex_index);
	const uint8_t *n, *aes, *hmac;
	OSSL_PARAM p[3];
	int r = 1;

	if (!t)
		return -1;
	if (enc) {
		tls_tickets_current(t, mono_ms() / 1000, &n, &aes, &hmac);
		if (!n)
			return -1; /* TLS 1.3 has no empty ticket: this handshake fails */
		if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
			return -1;
		memcpy(name, n, NAME_SIZE);
		if (EVP_EncryptInit_ex(c, EVP_aes_256_cbc(), NULL, aes, iv) != 1)
			return -1;
	} else {
		r = tls_tickets_find(t, mono_ms() / 1000, name, &aes, &hmac);
		if (r == 0)
			return 0;
		if (EVP_DecryptInit_ex(c, EVP_aes_256_cbc(), NULL, aes, iv) != 1)
			return -1;
	}
	p[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)hmac, 32);
	p[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	p[2] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(h, p) == 1 ? r : -1;
}

int tls_tickets_attach(struct tls_tickets *t, SSL_CTX *ctx)
{
	if (ex_index < 0 && (ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL)) < 0)
		return -ENOMEM;
	if (SSL_CTX_set_ex_data(ctx, ex_index, t) != 1 || SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket) != 1 ||
	    SSL_CTX_set_num_tickets(ctx, 1) != 1)
		return -ENOMEM;
	SSL_CTX_set_timeout(ctx, (long)t->period);
	return 0;
}
