/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "attest-msg.h"
#include "encode.h"
#include "json-cleanup.h"
#include "fileio.h"
#include "log.h"
#include "operator.h"
#include "ossl.h"
#include "pcr.h"

#define SIGNATURES_JSON_MAX 65536
#define KEY_FILE_MAX 16384

void operator_keys_free(struct operator_keys *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->n; i++) {
		free(k->key[i].path);
		EVP_PKEY_free(k->key[i].pkey);
	}
	free(k);
}

static bool key_type_ok(EVP_PKEY *p)
{
	switch (EVP_PKEY_get_base_id(p)) {
	case EVP_PKEY_EC:
		return EVP_PKEY_get_bits(p) >= 256;
	case EVP_PKEY_RSA:
		return EVP_PKEY_get_bits(p) >= 2048;
	case EVP_PKEY_ED25519:
		return true;
	default:
		return false;
	}
}

static int key_load(const char *path, struct operator_key *ret)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *p = NULL;
	_cleanup_free_ uint8_t *der = NULL, *pem = NULL;
	uint8_t d[32];
	size_t size;
	BIO *b;
	int n = read_file(path, KEY_FILE_MAX, &pem, &size);

	if (n < 0)
		return log_error_errno(n, "cannot read operator key '%s': %s", path, strerror(-n));
	/* OpenSSL would take the public half of a private key too: a private key has no business here. */
	if (!strstr((const char *)pem, "-----BEGIN PUBLIC KEY-----") || strstr((const char *)pem, "PRIVATE KEY"))
		return log_error_errno(-EINVAL, "operator key '%s' is not a PEM public key", path);
	b = BIO_new_mem_buf(pem, (int)size);
	p = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	ERR_clear_error();
	if (!p)
		return log_error_errno(-EINVAL, "operator key '%s' is not a PEM public key", path);
	if (!key_type_ok(p))
		return log_error_errno(-EINVAL,
				       "operator key '%s' is not ECDSA (P-256 or larger), RSA (2048 bits or more) or Ed25519",
				       path);
	n = i2d_PUBKEY(p, &der);
	if (n <= 0 || pcr_bank_digest(pcr_bank_by_name("sha256"), der, (size_t)n, d) < 0)
		return log_error_errno(-EIO, "cannot encode operator key '%s'", path);
	hex_encode(d, sizeof(d), ret->fingerprint);
	ret->path = strdup(path);
	if (!ret->path)
		return -ENOMEM;
	ret->pkey = TAKE_PTR(p);
	return 0;
}

int operator_keys_load(char *const *paths, size_t n, struct operator_keys **ret)
{
	struct operator_keys *k;
	int r;

	if (n > OPERATOR_KEYS_MAX)
		return log_error_errno(-E2BIG, "more than %d operator keys", OPERATOR_KEYS_MAX);
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		r = key_load(paths[i], &k->key[i]);
		if (r < 0)
			goto fail;
		k->n++;
		/* k of n means n different people: the same key twice would let one sign for two. */
		for (size_t j = 0; j < i; j++)
			if (streq(k->key[j].fingerprint, k->key[i].fingerprint)) {
				r = log_error_errno(-EINVAL, "operator key '%s' is the same key as '%s'", paths[i],
						    paths[j]);
				goto fail;
			}
	}
	*ret = k;
	return 0;
fail:
	operator_keys_free(k);
	return r;
}

static bool verifies(EVP_PKEY *p, const void *data, size_t size, const uint8_t *sig, size_t sig_size)
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *c = EVP_MD_CTX_new();
	/* Ed25519 signs the message itself; ECDSA and RSA (PKCS#1 v1.5) its SHA-256. */
	const EVP_MD *md = EVP_PKEY_get_base_id(p) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
	bool ok = c && EVP_DigestVerifyInit(c, NULL, md, NULL, p) == 1 &&
		  EVP_DigestVerify(c, sig, sig_size, data, size) == 1;

	ERR_clear_error();
	return ok;
}

int operator_key_find(const struct operator_keys *k, const void *data, size_t size, const uint8_t *sig,
		      size_t sig_size)
{
	for (size_t i = 0; i < k->n; i++)
		if (verifies(k->key[i].pkey, data, size, sig, sig_size))
			return (int)i;
	return -ENOKEY;
}

int policy_signatures_format(const struct operator_keys *k, const struct policy_signature *sigs, size_t n,
			     char **ret)
{
	_cleanup_json_ json_object *a = json_object_new_array();

	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char b64[2 * SIGNATURE_MAX];
		json_object *o = json_object_new_object();

		base64_encode(sigs[i].sig, sigs[i].size, b64);
		if (!o || json_object_array_add(a, o) < 0) {
			json_object_put(o);
			return -ENOMEM;
		}
		if (json_object_object_add(o, "key", json_object_new_string(k->key[sigs[i].key].fingerprint)) < 0 ||
		    json_object_object_add(o, "sig", json_object_new_string(b64)) < 0)
			return -ENOMEM;
	}
	*ret = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	return *ret ? 0 : -ENOMEM;
}

/* One stored entry: the key it claims and the signature, strictly; {"key": ..., "sig": ...}. */
static int entry(json_object *e, const char **ret_fp, uint8_t *sig, size_t *ret_size)
{
	json_object *fp, *s;
	long n;

	if (!json_object_is_type(e, json_type_object) || json_object_object_length(e) != 2 ||
	    !json_object_object_get_ex(e, "key", &fp) || !json_object_object_get_ex(e, "sig", &s) ||
	    !json_object_is_type(fp, json_type_string) || !json_object_is_type(s, json_type_string))
		return -EBADMSG;
	n = base64_decode(json_object_get_string(s), (size_t)json_object_get_string_len(s), sig, SIGNATURE_MAX);
	if (n <= 0)
		return -EBADMSG;
	*ret_fp = json_object_get_string(fp);
	*ret_size = (size_t)n;
	return 0;
}

int policy_signers(const struct operator_keys *k, const char *text, size_t size, const char *signatures,
		   uint32_t *ret_signers)
{
	_cleanup_json_ json_object *a = NULL;
	uint32_t signers = 0;
	size_t len = strlen(signatures);
	json_tokener *t;

	if (len > SIGNATURES_JSON_MAX || !(t = json_tokener_new()))
		return -EBADMSG;
	a = json_tokener_parse_ex(t, signatures, (int)len);
	if (json_tokener_get_error(t) != json_tokener_success || json_tokener_get_parse_end(t) != len)
		json_object_put(TAKE_PTR(a));
	json_tokener_free(t);
	if (!a || !json_object_is_type(a, json_type_array))
		return -EBADMSG;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		uint8_t sig[SIGNATURE_MAX];
		const char *fp;
		size_t n;

		if (entry(json_object_array_get_idx(a, i), &fp, sig, &n) < 0)
			return -EBADMSG;
		/* Only the key the entry names is tried: a signature counts once, for one key. */
		for (size_t j = 0; j < k->n; j++)
			if (streq(k->key[j].fingerprint, fp) && verifies(k->key[j].pkey, text, size, sig, n))
				signers |= 1u << j;
	}
	*ret_signers = signers;
	return 0;
}
