/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <tss2/tss2_tpm2_types.h>

#include "attest-msg.h"
#include "encode.h"
#include "json-cleanup.h"
#include "macro.h"
#include "token.h"

static json_object *get(json_object *o, const char *key, json_type type)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

#define FAIL(why)                      \
	do {                           \
		*ret_reason = (why);   \
		return -EINVAL;        \
	} while (0)

static int parse_int_string(const char *s, int max, int *ret)
{
	int v = 0;

	if (!*s || strlen(s) > 3)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (*s - '0');
	}
	if (v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

static int parse_pcr_array(json_object *v, uint32_t *ret_mask)
{
	uint32_t mask = 0;

	if (!v)
		return -ENOENT;
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		json_object *e = json_object_array_get_idx(v, i);
		int64_t p;

		if (!json_object_is_type(e, json_type_int))
			return -EINVAL;
		p = json_object_get_int64(e);
		if (p < 0 || p >= PCR_COUNT)
			return -ERANGE;
		mask |= 1u << p;
	}
	*ret_mask = mask;
	return 0;
}

static int parse_values(json_object *o, struct tpm2_token *t, const char **ret_reason)
{
	json_object_object_foreach(o, key, val)
	{
		int idx;

		if (parse_int_string(key, PCR_COUNT - 1, &idx) < 0)
			FAIL("keystrap-pcr-values has a key that is not a PCR index");
		if (!(t->pcr_mask & (1u << idx)))
			FAIL("keystrap-pcr-values names a PCR the token does not bind");
		if (!json_object_is_type(val, json_type_string) ||
		    hex_decode(json_object_get_string(val), t->values[idx], t->bank->size) < 0)
			FAIL("keystrap-pcr-values has a value that is not a digest of the bank's size");
		t->values_mask |= 1u << idx;
	}
	return 0;
}

json_object *json_parse_object(const char *json, size_t len, size_t max)
{
	json_object *root;
	json_tokener *tok;
	bool whole;

	if (len > max)
		return NULL;
	tok = json_tokener_new_ex(16);
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, json, (int)len);
	whole = json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) == len;
	json_tokener_free(tok);
	if (root && (!whole || !json_object_is_type(root, json_type_object))) {
		json_object_put(root);
		return NULL;
	}
	return root;
}

/* The token's JSON object, of type type: NULL with *ret_reason set otherwise. */
static json_object *token_root(const char *json, size_t len, const char *type, const char **ret_reason)
{
	json_object *root, *v;

	*ret_reason = NULL;
	if (len > TOKEN_JSON_MAX) {
		*ret_reason = "token JSON is larger than 16 KiB";
		return NULL;
	}
	root = json_parse_object(json, len, TOKEN_JSON_MAX);
	if (!root) {
		*ret_reason = "token is not a well-formed JSON object";
		return NULL;
	}
	v = get(root, "type", json_type_string);
	if (!v || !streq(json_object_get_string(v), type)) {
		*ret_reason = streq(type, TOKEN_TYPE_TPM2) ? "token type is not systemd-tpm2" :
							     "token type is not keystrap-attested";
		json_object_put(root);
		return NULL;
	}
	return root;
}

/*
 * What a systemd-tpm2 token and a keystrap-attested one share: the keyslot, and the sealed
 * object with its PCR policy, as systemd 252 keeps them.
 */
static int parse_tpm2_fields(json_object *root, struct tpm2_token *t, const char **ret_reason)
{
	json_object *v;
	const char *s;
	long n;
	int r;

	memset(t, 0, sizeof(*t));
	t->keyslot = -1;
	v = get(root, "keyslots", json_type_array);
	/* libcryptsetup drops a killed keyslot from its tokens: say so rather than "malformed". */
	if (v && json_object_array_length(v) == 0)
		FAIL("token is bound to no keyslot (its keyslot was removed)");
	if (!v || json_object_array_length(v) != 1)
		FAIL("token must name exactly one keyslot");
	v = json_object_array_get_idx(v, 0);
	if (!json_object_is_type(v, json_type_string) ||
	    parse_int_string(json_object_get_string(v), 31, &t->keyslot) < 0)
		FAIL("token keyslot is not a number from 0 to 31");

	r = parse_pcr_array(get(root, "tpm2-pcrs", json_type_array), &t->pcr_mask);
	if (r == -ENOENT)
		FAIL("token lacks tpm2-pcrs");
	if (r == -EINVAL)
		FAIL("tpm2-pcrs holds something other than a number");
	if (r < 0)
		FAIL("tpm2-pcrs holds a PCR index outside 0..23");

	/* systemd 252 defaults the bank to sha256 and the primary to ecc when absent. */
	v = get(root, "tpm2-pcr-bank", json_type_string);
	t->bank = pcr_bank_by_name(v ? json_object_get_string(v) : "sha256");
	if (!t->bank)
		FAIL("tpm2-pcr-bank names an unknown bank");
	v = get(root, "tpm2-primary-alg", json_type_string);
	s = v ? json_object_get_string(v) : "ecc";
	if (streq(s, "ecc"))
		t->primary_alg = TPM2_ALG_ECC;
	else if (streq(s, "rsa"))
		t->primary_alg = TPM2_ALG_RSA;
	else
		FAIL("tpm2-primary-alg is neither ecc nor rsa");

	v = get(root, "tpm2-blob", json_type_string);
	if (!v)
		FAIL("token lacks tpm2-blob");
	n = base64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v), t->blob,
			  sizeof(t->blob));
	if (n == -ENOBUFS)
		FAIL("tpm2-blob is larger than 4 KiB");
	if (n <= 0)
		FAIL("tpm2-blob is not valid base64");
	t->blob_size = (size_t)n;

	v = get(root, "tpm2-policy-hash", json_type_string);
	if (!v || hex_decode(json_object_get_string(v), t->policy_hash, sizeof(t->policy_hash)) < 0)
		FAIL("tpm2-policy-hash is missing or not a sha256 digest in hex");

	v = get(root, "keystrap-pcr-values", json_type_object);
	if (v && parse_values(v, t, ret_reason) < 0)
		return -EINVAL;

	v = get(root, "tpm2_srk", json_type_string);
	if (v) {
		n = base64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v),
				  t->srk, sizeof(t->srk));
		if (n <= 0)
			FAIL("tpm2_srk is not valid base64 of a serialized handle");
		t->srk_size = (size_t)n;
	}
	return 0;
}

int token_parse(const char *json, size_t len, struct tpm2_token *ret, const char **ret_reason)
{
	_cleanup_json_ json_object *root = token_root(json, len, TOKEN_TYPE_TPM2, ret_reason);
	struct tpm2_token *t = ret;
	json_object *v;
	long n;

	if (!root)
		return -EINVAL;
	if (parse_tpm2_fields(root, t, ret_reason) < 0)
		return -EINVAL;

	v = get(root, "tpm2-pin", json_type_boolean);
	t->pin = v && json_object_get_boolean(v);
	/* systemd 252's signed PCR policy: the PEM public key, base64 again, and what it signs for. */
	v = get(root, "tpm2_pubkey", json_type_string);
	if (v) {
		n = base64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v),
				  t->pubkey, sizeof(t->pubkey) - 1);
		if (n <= 0)
			FAIL("tpm2_pubkey is not base64 of at most 4 KiB");
		t->pubkey_size = (size_t)n;
		if (parse_pcr_array(get(root, "tpm2_pubkey_pcrs", json_type_array), &t->pubkey_pcr_mask) < 0 ||
		    t->pubkey_pcr_mask == 0)
			FAIL("tpm2_pubkey_pcrs is missing, empty or holds something other than PCR indexes 0..23");
	} else if (json_object_object_get_ex(root, "tpm2_pubkey", NULL))
		FAIL("tpm2_pubkey is not a string");
	return 0;
}

_Static_assert(sizeof(((struct attested_token *)0)->volume) == ATTEST_VOLUME_LEN + 1, "a UUID and its NUL");

int token_attested_parse(const char *json, size_t len, struct attested_token *ret, const char **ret_reason)
{
	static const char *const known[] = { "type", "keyslots", "tpm2-blob", "tpm2-pcrs", "tpm2-pcr-bank",
					     "tpm2-primary-alg", "tpm2-policy-hash", "keystrap-pcr-values",
					     "tpm2_srk", "keystrap-server", "volume" };
	_cleanup_json_ json_object *root = token_root(json, len, TOKEN_TYPE_ATTESTED, ret_reason);
	struct attested_token *a = ret;
	json_object *v;
	const char *s;

	if (!root)
		return -EINVAL;
	/* keystrap's own type: every field is keystrap's, so one it does not know is a fault. */
	json_object_object_foreach(root, key, val)
	{
		size_t i = 0;

		(void)val;
		while (i < ELEMENTSOF(known) && !streq(key, known[i]))
			i++;
		if (i == ELEMENTSOF(known))
			FAIL("keystrap-attested token has a field keystrap does not know");
	}
	memset(a, 0, sizeof(*a));
	if (parse_tpm2_fields(root, &a->tpm, ret_reason) < 0)
		return -EINVAL;
	if (a->tpm.pcr_mask == 0)
		FAIL("keystrap-attested token binds no PCR");
	if (a->tpm.values_mask != a->tpm.pcr_mask)
		FAIL("keystrap-pcr-values does not name every bound PCR");

	v = get(root, "keystrap-server", json_type_string);
	s = v ? json_object_get_string(v) : NULL;
	if (!s || strncmp(s, "https://", 8) != 0 || strlen(s) > TOKEN_SERVER_MAX ||
	    strlen(s) != (size_t)json_object_get_string_len(v) || strpbrk(s, " \t\r\n"))
		FAIL("keystrap-server is missing or not an https:// URL of at most 255 bytes");
	memcpy(a->server, s, strlen(s) + 1);

	v = get(root, "volume", json_type_string);
	s = v ? json_object_get_string(v) : NULL;
	if (!s || !attest_volume_valid(s))
		FAIL("volume is missing or not a LUKS2 UUID (lowercase 8-4-4-4-12)");
	memcpy(a->volume, s, ATTEST_VOLUME_LEN + 1);
	return 0;
}

/* The fields parse_tpm2_fields reads, in systemd 252's order; tpm2-pin only for systemd-tpm2. */
static int add_tpm2_fields(json_object *root, const char *type, const struct tpm2_token *t)
{
	_cleanup_free_ char *blob = NULL;
	char hash[65], slot[8];
	json_object *a, *vals;

	blob = malloc(base64_encoded_len(t->blob_size) + 1);
	if (!blob)
		return -ENOMEM;
	base64_encode(t->blob, t->blob_size, blob);
	hex_encode(t->policy_hash, sizeof(t->policy_hash), hash);
	snprintf(slot, sizeof(slot), "%d", t->keyslot);

	json_object_object_add(root, "type", json_object_new_string(type));
	a = json_object_new_array();
	json_object_array_add(a, json_object_new_string(slot));
	json_object_object_add(root, "keyslots", a);
	json_object_object_add(root, "tpm2-blob", json_object_new_string(blob));
	a = json_object_new_array();
	for (int i = 0; i < PCR_COUNT; i++)
		if (t->pcr_mask & (1u << i))
			json_object_array_add(a, json_object_new_int(i));
	json_object_object_add(root, "tpm2-pcrs", a);
	json_object_object_add(root, "tpm2-pcr-bank", json_object_new_string(t->bank->name));
	json_object_object_add(root, "tpm2-primary-alg",
			       json_object_new_string(t->primary_alg == TPM2_ALG_RSA ? "rsa" : "ecc"));
	json_object_object_add(root, "tpm2-policy-hash", json_object_new_string(hash));
	if (streq(type, TOKEN_TYPE_TPM2))
		json_object_object_add(root, "tpm2-pin", json_object_new_boolean(t->pin));
	vals = json_object_new_object();
	for (int i = 0; i < PCR_COUNT; i++)
		if (t->values_mask & (1u << i)) {
			char key[4], hex[2 * PCR_DIGEST_MAX + 1];

			snprintf(key, sizeof(key), "%d", i);
			hex_encode(t->values[i], t->bank->size, hex);
			json_object_object_add(vals, key, json_object_new_string(hex));
		}
	json_object_object_add(root, "keystrap-pcr-values", vals);
	if (t->srk_size > 0) {
		_cleanup_free_ char *srk = malloc(base64_encoded_len(t->srk_size) + 1);

		if (!srk)
			return -ENOMEM;
		base64_encode(t->srk, t->srk_size, srk);
		json_object_object_add(root, "tpm2_srk", json_object_new_string(srk));
	}
	if (t->replaces_set) {
		char hex[2 * sizeof(t->replaces) + 1];

		hex_encode(t->replaces, sizeof(t->replaces), hex);
		json_object_object_add(root, "keystrap-replaces", json_object_new_string(hex));
	}
	return 0;
}

static int to_string(json_object *root, char **ret)
{
	*ret = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	return *ret ? 0 : -ENOMEM;
}

int token_format(const struct tpm2_token *t, char **ret)
{
	_cleanup_json_ json_object *root = json_object_new_object();
	int r;

	if (!root)
		return -ENOMEM;
	if ((r = add_tpm2_fields(root, TOKEN_TYPE_TPM2, t)) < 0)
		return r;
	return to_string(root, ret);
}

int token_attested_format(const struct attested_token *a, char **ret)
{
	_cleanup_json_ json_object *root = json_object_new_object();
	int r;

	if (!root)
		return -ENOMEM;
	if ((r = add_tpm2_fields(root, TOKEN_TYPE_ATTESTED, &a->tpm)) < 0)
		return r;
	json_object_object_add(root, "keystrap-server", json_object_new_string(a->server));
	json_object_object_add(root, "volume", json_object_new_string(a->volume));
	return to_string(root, ret);
}

int token_pending_format(int keyslot, char **ret)
{
	_cleanup_json_ json_object *root = json_object_new_object();
	char slot[8];

	if (!root)
		return -ENOMEM;
	snprintf(slot, sizeof(slot), "%d", keyslot);
	json_object_object_add(root, "type", json_object_new_string(TOKEN_TYPE_PENDING));
	/* Bound to nothing: libcryptsetup admits a token only for keyslots that exist, and this one
	 * is written before its keyslot. */
	json_object_object_add(root, "keyslots", json_object_new_array());
	json_object_object_add(root, "keystrap-keyslot", json_object_new_string(slot));
	return to_string(root, ret);
}

int token_recovery_format(int keyslot, char **ret)
{
	_cleanup_json_ json_object *root = json_object_new_object();
	json_object *a;
	char slot[8];

	if (!root)
		return -ENOMEM;
	snprintf(slot, sizeof(slot), "%d", keyslot);
	json_object_object_add(root, "type", json_object_new_string(TOKEN_TYPE_RECOVERY));
	a = json_object_new_array();
	json_object_array_add(a, json_object_new_string(slot));
	json_object_object_add(root, "keyslots", a);
	return to_string(root, ret);
}

bool token_type_is_tpm(const char *type)
{
	return streq(type, TOKEN_TYPE_TPM2) || strncmp(type, "keystrap-", strlen("keystrap-")) == 0;
}

enum token_kind token_classify(const char *json, size_t len, int *ret_keyslot)
{
	_cleanup_json_ json_object *root = json_parse_object(json, len, TOKEN_JSON_MAX);
	json_object *type, *slots, *v;
	int slot = -1;

	if (!root || !(type = get(root, "type", json_type_string)) ||
	    !(slots = get(root, "keyslots", json_type_array)))
		return TOKEN_OTHER;
	if (streq(json_object_get_string(type), TOKEN_TYPE_PENDING)) {
		v = get(root, "keystrap-keyslot", json_type_string);
		/* A record whose keyslot cannot be read names no keyslot to remove; it goes alone. */
		if (!v || parse_int_string(json_object_get_string(v), 31, &slot) < 0)
			slot = -1;
		*ret_keyslot = slot;
		return TOKEN_PENDING;
	}
	/* keystrap-pcr-values is what keystrap writes and systemd-cryptenroll never does; an
	 * attested token is keystrap's by its type. */
	if ((streq(json_object_get_string(type), TOKEN_TYPE_TPM2) &&
	     json_object_object_get_ex(root, "keystrap-pcr-values", NULL)) ||
	    streq(json_object_get_string(type), TOKEN_TYPE_ATTESTED)) {
		if (json_object_array_length(slots) == 0)
			return TOKEN_KEYSTRAP_UNBOUND;
		v = json_object_array_get_idx(slots, 0);
		if (json_object_array_length(slots) == 1 && json_object_is_type(v, json_type_string) &&
		    parse_int_string(json_object_get_string(v), 31, &slot) == 0) {
			*ret_keyslot = slot;
			return TOKEN_KEYSTRAP;
		}
	}
	return TOKEN_OTHER;
}

int token_blob_digest(const char *json, size_t len, uint8_t ret[32])
{
	_cleanup_json_ json_object *root = json_parse_object(json, len, TOKEN_JSON_MAX);
	_cleanup_free_ uint8_t *blob = malloc(TOKEN_BLOB_MAX);
	json_object *type, *v;
	long n;

	if (!blob)
		return -ENOMEM;
	if (!root || !(type = get(root, "type", json_type_string)) ||
	    !streq(json_object_get_string(type), TOKEN_TYPE_TPM2) || !(v = get(root, "tpm2-blob", json_type_string)))
		return -EINVAL;
	n = base64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v), blob, TOKEN_BLOB_MAX);
	if (n <= 0)
		return -EINVAL;
	return pcr_bank_digest(pcr_bank_by_name("sha256"), blob, (size_t)n, ret) < 0 ? -EINVAL : 0;
}

int token_replaces(const char *json, size_t len, uint8_t ret[32])
{
	_cleanup_json_ json_object *root = json_parse_object(json, len, TOKEN_JSON_MAX);
	json_object *v;

	if (!root)
		return -EINVAL;
	if (!json_object_object_get_ex(root, "keystrap-replaces", NULL))
		return -ENOENT;
	v = get(root, "keystrap-replaces", json_type_string);
	if (!v || hex_decode(json_object_get_string(v), ret, 32) < 0)
		return -EINVAL;
	return 0;
}

int token_passphrase(const struct secbuf *key, struct secbuf **ret)
{
	struct secbuf *p;

	p = secbuf_new(base64_encoded_len(key->size) + 1);
	if (!p)
		return -ENOMEM;
	base64_encode(key->data, key->size, (char *)p->data);
	p->size = base64_encoded_len(key->size);
	*ret = p;
	return 0;
}

int token_attested_passphrase(const struct secbuf *share_tpm, const struct secbuf *share_srv, const char *volume,
			      struct secbuf **ret)
{
	_cleanup_secbuf_ struct secbuf *ikm = NULL, *okm = NULL;
	char info[sizeof(TOKEN_ATTESTED_INFO) + ATTEST_VOLUME_LEN];
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[4];
	int r = -ENOMEM;

	if (share_tpm->size != TOKEN_SHARE_SIZE || share_srv->size != TOKEN_SHARE_SIZE || !attest_volume_valid(volume))
		return -EINVAL;
	snprintf(info, sizeof(info), TOKEN_ATTESTED_INFO "%s", volume);
	ikm = secbuf_new(2 * TOKEN_SHARE_SIZE);
	okm = secbuf_new(TOKEN_SHARE_SIZE);
	if (!ikm || !okm)
		return -ENOMEM;
	memcpy(ikm->data, share_tpm->data, TOKEN_SHARE_SIZE);
	memcpy(ikm->data + TOKEN_SHARE_SIZE, share_srv->data, TOKEN_SHARE_SIZE);
	/* RFC 5869 without a salt (HashLen zero bytes); the volume in info binds the key to it. */
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ikm->data, ikm->size);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, strlen(info));
	params[3] = OSSL_PARAM_construct_end();
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	if (ctx && EVP_KDF_derive(ctx, okm->data, okm->size, params) == 1)
		r = token_passphrase(okm, ret);
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return r;
}

int token_recovery_key(const struct secbuf *random, struct secbuf **ret)
{
	static const char modhex[16] = "cbdefghijklnrtuv";
	struct secbuf *k;
	size_t o = 0;

	if (random->size != RECOVERY_KEY_BYTES)
		return -EINVAL;
	k = secbuf_new(RECOVERY_KEY_LENGTH + 1);
	if (!k)
		return -ENOMEM;
	for (size_t i = 0; i < RECOVERY_KEY_BYTES; i++) {
		k->data[o++] = (uint8_t)modhex[random->data[i] >> 4];
		k->data[o++] = (uint8_t)modhex[random->data[i] & 0xf];
		if (i % 4 == 3 && i + 1 < RECOVERY_KEY_BYTES)
			k->data[o++] = '-';
	}
	k->data[o] = 0;
	k->size = o;
	*ret = k;
	return 0;
}
