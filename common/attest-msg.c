/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "attest-msg.h"
#include "encode.h"
#include "json-cleanup.h"
#include "json-dup.h"
#include "macro.h"
#include "ossl.h"
#include "secbuf.h"
#include "utf8.h"

#define JSON_MAX ATTEST_MESSAGE_MAX

int attest_fail(char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, ATTEST_REASON_MAX, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* How many of the n bytes at p are JSON whitespace (RFC 8259), from the start. */
static size_t json_space(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
		i++;
	return i;
}

/*
 * Long string values json-c does not read (json_long_values): a finish's two logs, 40 KB of
 * base64 that json-c took a byte at a time, most of the time its parse took. A handful per
 * message; the rest are parsed as they come.
 */
#define LONG_VALUE_MIN 1024
#define LONG_VALUES_MAX 4

/* The value json-c parsed as "" for v's key set to v's bytes, which json-c would have read as they are. */
static int long_value_set(json_object *o, const char *json, const struct json_long_value *v)
{
	_cleanup_free_ char *key = strndup(json + v->key, v->key_size);
	json_object *cur, *s;

	if (!key)
		return -ENOMEM;
	/* Anything but the empty string json-c made of it means the scan and json-c disagree. */
	if (!json_object_object_get_ex(o, key, &cur) || !json_object_is_type(cur, json_type_string) ||
	    json_object_get_string_len(cur) != 0)
		return -EIO;
	s = json_object_new_string_len(json + v->start, (int)(v->end - v->start));
	if (!s)
		return -ENOMEM;
	/* The key is there: json-c puts s in place of its value (freed), the key where it was. */
	if (json_object_object_add(o, key, s) < 0) {
		json_object_put(s);
		return -ENOMEM;
	}
	return 0;
}

int attest_json_object_ex(const char *json, size_t size, const char *const *allowed, size_t long_min,
			  json_object **ret, char *reason)
{
	_cleanup_json_ json_object *o = NULL;
	struct json_long_value lv[LONG_VALUES_MAX];
	json_tokener *tok;
	enum json_tokener_error e;
	char dup[65];
	size_t used = 0, n_long;
	int r;

	if (size > JSON_MAX)
		return attest_fail(reason, "message is larger than %u bytes", JSON_MAX);
	if (json_space(json, size) == size)
		return attest_fail(reason, "empty body: a JSON object is expected");
	if (memchr(json, 0, size))
		return attest_fail(reason, "message contains a NUL byte");
	/*
	 * The whole text as UTF-8 here, 32 ASCII bytes at a time, rather than json-c's
	 * JSON_TOKENER_VALIDATE_UTF8, a function call per byte that was 40 % of parsing a finish
	 * (41 KB of base64). Stricter than json-c's check, which counts continuation bytes only:
	 * overlong forms, surrogates and cut sequences are refused too.
	 */
	if (!utf8_valid(json, size))
		return attest_fail(reason, "malformed JSON: %s",
				   json_tokener_error_desc(json_tokener_error_parse_utf8_string));
	n_long = json_long_values(json, size, long_min, lv, ELEMENTSOF(lv));
	tok = json_tokener_new_ex(16);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	/*
	 * The text in pieces, each long value's bytes left out: json-c reads "key":"" and stops at
	 * the first error or at the end of the object as it would have in the whole text.
	 */
	for (size_t k = 0, from = 0;; k++) {
		size_t to = k < n_long ? lv[k].start : size;

		o = json_tokener_parse_ex(tok, json + from, (int)(to - from));
		e = json_tokener_get_error(tok);
		used = from + json_tokener_get_parse_end(tok);
		if (o || e != json_tokener_continue || k == n_long) {
			n_long = k; /* the values left out before the object ended */
			break;
		}
		from = lv[k].end;
	}
	json_tokener_free(tok);
	/* json-c reports a document cut short as "continue": it would wait for more. */
	if (!o || e != json_tokener_success)
		return attest_fail(reason, "malformed JSON: %s", json_tokener_error_desc(e == json_tokener_success ||
									     e == json_tokener_continue ?
									     json_tokener_error_parse_eof : e));
	if (used + json_space(json + used, size - used) < size)
		return attest_fail(reason, "malformed JSON: data after the object");
	if (!json_object_is_type(o, json_type_object))
		return attest_fail(reason, "message is not a JSON object");
	/* json-c keeps the last of two equal keys silently: refuse the ambiguity instead. */
	r = json_duplicate_key(json, size, dup, sizeof(dup));
	if (r < 0)
		return r == -ENOMEM ? r : attest_fail(reason, "malformed JSON");
	if (r > 0)
		return attest_fail(reason, "duplicate field '%s'", dup);
	for (size_t k = 0; k < n_long; k++)
		if ((r = long_value_set(o, json, &lv[k])) < 0)
			return r;
	json_object_object_foreach(o, key, val)
	{
		bool known = false;

		(void)val;
		for (size_t i = 0; allowed[i]; i++)
			known = known || streq(allowed[i], key);
		if (!known)
			return attest_fail(reason, "unknown field '%.64s'", key);
	}
	*ret = TAKE_PTR(o);
	return 0;
}

int attest_json_object(const char *json, size_t size, const char *const *allowed, json_object **ret,
			char *reason)
{
	return attest_json_object_ex(json, size, allowed, LONG_VALUE_MIN, ret, reason);
}

static int get_string(json_object *o, const char *key, size_t max, const char **ret, size_t *ret_len, char *reason)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return attest_fail(reason, "missing field '%s'", key);
	if (!json_object_is_type(v, json_type_string))
		return attest_fail(reason, "field '%s' is not a string", key);
	if ((size_t)json_object_get_string_len(v) > max)
		return attest_fail(reason, "field '%s' is longer than %zu bytes", key, max);
	*ret = json_object_get_string(v);
	if (ret_len)
		*ret_len = (size_t)json_object_get_string_len(v);
	return 0;
}

static int get_text(json_object *o, const char *key, char *buf, size_t max, char *reason)
{
	const char *s;
	size_t n;
	int r = get_string(o, key, max, &s, &n, reason);

	if (r < 0)
		return r;
	if (n == 0)
		return attest_fail(reason, "field '%s' is empty", key);
	if (strlen(s) != n)
		return attest_fail(reason, "field '%s' is not text: it contains a NUL character (\\u0000) at "
				   "byte %zu", key, strlen(s));
	memcpy(buf, s, n + 1);
	return 0;
}

static int get_base64(json_object *o, const char *key, uint8_t *buf, size_t max, size_t *ret_size, char *reason)
{
	const char *s;
	size_t n;
	long k;
	int r = get_string(o, key, base64_encoded_len(max), &s, &n, reason);

	if (r < 0)
		return r;
	k = base64_decode(s, n, buf, max);
	if (k <= 0)
		return attest_fail(reason, "field '%s' is not base64 of at most %zu bytes", key, max);
	*ret_size = (size_t)k;
	return 0;
}

static int get_base64_exact(json_object *o, const char *key, uint8_t *buf, size_t size, char *reason)
{
	size_t n;
	int r = get_base64(o, key, buf, size, &n, reason);

	if (r < 0)
		return r;
	if (n != size)
		return attest_fail(reason, "field '%s' is not %zu bytes", key, size);
	return 0;
}

/* Base64 of at most max bytes into a malloc'ed buffer; "" is no data (NULL, 0). */
static int get_base64_alloc(json_object *o, const char *key, size_t max, uint8_t **ret, size_t *ret_size,
			    char *reason)
{
	_cleanup_free_ uint8_t *buf = NULL;
	const char *s;
	size_t n;
	long k;
	int r = get_string(o, key, base64_encoded_len(max), &s, &n, reason);

	if (r < 0)
		return r;
	if (n == 0) {
		*ret = NULL;
		*ret_size = 0;
		return 0;
	}
	buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	k = base64_decode(s, n, buf, n);
	if (k <= 0 || (size_t)k > max)
		return attest_fail(reason, "field '%s' is not base64 of at most %zu bytes", key, max);
	*ret = TAKE_PTR(buf);
	*ret_size = (size_t)k;
	return 0;
}

/* Text of at most max bytes without NUL, malloc'ed; "" is none (NULL, 0). */
static int get_text_alloc(json_object *o, const char *key, size_t max, char **ret, size_t *ret_size, char *reason)
{
	const char *s;
	size_t n;
	int r = get_string(o, key, max, &s, &n, reason);

	if (r < 0)
		return r;
	if (strlen(s) != n)
		return attest_fail(reason, "field '%s' contains a NUL character", key);
	*ret = n ? strndup(s, n) : NULL;
	*ret_size = n;
	return n && !*ret ? -ENOMEM : 0;
}

static int get_int(json_object *o, const char *key, int64_t min, int64_t max, int64_t *ret, char *reason)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return attest_fail(reason, "missing field '%s'", key);
	if (!json_object_is_type(v, json_type_int))
		return attest_fail(reason, "field '%s' is not an integer", key);
	errno = 0;
	*ret = json_object_get_int64(v);
	if (errno || *ret < min || *ret > max)
		return attest_fail(reason, "field '%s' is out of range", key);
	return 0;
}

static int get_session(json_object *o, char *buf, char *reason)
{
	uint8_t raw[ATTEST_SESSION_SIZE];
	int r = get_text(o, "session", buf, ATTEST_SESSION_HEX, reason);

	if (r < 0)
		return r;
	if (strlen(buf) != ATTEST_SESSION_HEX || hex_decode(buf, raw, sizeof(raw)) < 0)
		return attest_fail(reason, "field 'session' is not %d hex digits", ATTEST_SESSION_HEX);
	for (const char *p = buf; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			return attest_fail(reason, "field 'session' is not lower-case hex");
	return 0;
}

static int get_bank(json_object *o, const struct pcr_bank **ret, char *reason)
{
	const char *s;
	int r = get_string(o, "pcr_bank", 16, &s, NULL, reason);

	if (r < 0)
		return r;
	*ret = pcr_bank_by_name(s);
	if (!*ret)
		return attest_fail(reason, "field 'pcr_bank' names no known PCR bank");
	return 0;
}

/* "0".."23", one spelling each. */
static int pcr_index(const char *s)
{
	if (!s[0] || strlen(s) > 2 || (s[0] == '0' && s[1]) || !strchr("0123456789", s[0]) ||
	    (s[1] && !strchr("0123456789", s[1])))
		return -1;
	int v = atoi(s);
	return v < PCR_COUNT ? v : -1;
}

/* An EK certificate as PEM or as base64 of the DER: DER either way. */
static int get_cert(json_object *o, struct attest_start *m, char *reason)
{
	const char *s;
	size_t n;
	int r = get_string(o, "ek_cert", 2 * ATTEST_CERT_MAX, &s, &n, reason);

	if (r < 0)
		return r;
	if (n > 11 && memcmp(s, "-----BEGIN ", 11) == 0) {
		_cleanup_(X509_freep) X509 *x = NULL;
		BIO *bio = BIO_new_mem_buf(s, (int)n);
		uint8_t *p = m->ek_cert;
		int len;

		if (!bio)
			return -ENOMEM;
		x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		BIO_free(bio);
		if (!x)
			return attest_fail(reason, "field 'ek_cert' is not a PEM certificate");
		len = i2d_X509(x, NULL);
		if (len <= 0 || len > ATTEST_CERT_MAX)
			return attest_fail(reason, "field 'ek_cert' is larger than %d bytes", ATTEST_CERT_MAX);
		m->ek_cert_size = (size_t)i2d_X509(x, &p);
		return 0;
	}
	return get_base64(o, "ek_cert", m->ek_cert, sizeof(m->ek_cert), &m->ek_cert_size, reason);
}

int attest_start_parse(const char *json, size_t size, struct attest_start *ret, char *reason)
{
	static const char *const fields[] = { "version", "ek_cert", "ek_pub", "ak_pub", NULL };
	_cleanup_json_ json_object *o = NULL;
	int r;

	memset(ret, 0, sizeof(*ret));
	if ((r = attest_json_object(json, size, fields, &o, reason)) < 0 ||
	    (r = get_text(o, "version", ret->version, ATTEST_VERSION_MAX, reason)) < 0 ||
	    (r = get_cert(o, ret, reason)) < 0 ||
	    (r = get_base64(o, "ek_pub", ret->ek_pub, sizeof(ret->ek_pub), &ret->ek_pub_size, reason)) < 0 ||
	    (r = get_base64(o, "ak_pub", ret->ak_pub, sizeof(ret->ak_pub), &ret->ak_pub_size, reason)) < 0)
		return r;
	return 0;
}

int attest_challenge_parse(const char *json, size_t size, struct attest_challenge *ret, char *reason)
{
	static const char *const fields[] = { "session", "nonce", "credential_blob", "credential_seed",
					      "pcr_bank", "pcrs", NULL };
	_cleanup_json_ json_object *o = NULL;
	json_object *pcrs;
	int r;

	memset(ret, 0, sizeof(*ret));
	if ((r = attest_json_object(json, size, fields, &o, reason)) < 0 || (r = get_session(o, ret->session, reason)) < 0 ||
	    (r = get_base64_exact(o, "nonce", ret->nonce, sizeof(ret->nonce), reason)) < 0 ||
	    (r = get_base64(o, "credential_blob", ret->credential_blob, sizeof(ret->credential_blob),
			    &ret->credential_blob_size, reason)) < 0 ||
	    (r = get_base64(o, "credential_seed", ret->credential_seed, sizeof(ret->credential_seed),
			    &ret->credential_seed_size, reason)) < 0 ||
	    (r = get_bank(o, &ret->bank, reason)) < 0)
		return r;
	if (!json_object_object_get_ex(o, "pcrs", &pcrs) || !json_object_is_type(pcrs, json_type_array))
		return attest_fail(reason, "field 'pcrs' is not an array");
	for (size_t i = 0; i < json_object_array_length(pcrs); i++) {
		json_object *v = json_object_array_get_idx(pcrs, i);
		int64_t n;

		if (!json_object_is_type(v, json_type_int) || (n = json_object_get_int64(v)) < 0 || n >= PCR_COUNT ||
		    ret->mask & (1u << n))
			return attest_fail(reason, "field 'pcrs' holds something other than distinct PCR indexes");
		ret->mask |= 1u << n;
	}
	if (!ret->mask)
		return attest_fail(reason, "field 'pcrs' is empty");
	return 0;
}

static int finish_parse(const char *json, size_t size, struct attest_finish *ret, char *reason);

int attest_finish_parse(const char *json, size_t size, struct attest_finish *ret, char *reason)
{
	int r;

	memset(ret, 0, sizeof(*ret));
	r = finish_parse(json, size, ret, reason);
	if (r < 0)
		attest_finish_done(ret);
	return r;
}

static int disk_share_put_parse(json_object *parent, struct attest_finish *ret, char *reason)
{
	static const char *const fields[] = { "volume", "share", NULL };
	json_object *o;
	int r;

	if (!json_object_object_get_ex(parent, "disk_share_put", &o))
		return 0;
	if (!json_object_is_type(o, json_type_object))
		return attest_fail(reason, "field 'disk_share_put' is not an object");
	json_object_object_foreach(o, key, val)
	{
		bool known = false;

		(void)val;
		for (size_t i = 0; fields[i]; i++)
			known = known || streq(key, fields[i]);
		if (!known)
			return attest_fail(reason, "field 'disk_share_put' has an unknown field '%.64s'", key);
	}
	if ((r = get_text(o, "volume", ret->share_volume, ATTEST_VOLUME_LEN, reason)) < 0)
		return attest_fail(reason, "field 'disk_share_put.volume' is not a LUKS2 UUID");
	if (!attest_volume_valid(ret->share_volume))
		return attest_fail(reason, "field 'disk_share_put.volume' is not a LUKS2 UUID (lowercase 8-4-4-4-12)");
	if ((r = get_base64_exact(o, "share", ret->share, sizeof(ret->share), reason)) < 0)
		return attest_fail(reason, "field 'disk_share_put.share' is not base64 of %d bytes", ATTEST_DISK_SHARE_SIZE);
	ret->has_share_put = true;
	return 0;
}

static int disk_shares_get_parse(json_object *parent, struct attest_finish *ret, char *reason)
{
	json_object *a;
	size_t n;

	if (!json_object_object_get_ex(parent, "disk_shares_get", &a))
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return attest_fail(reason, "field 'disk_shares_get' is not an array");
	n = json_object_array_length(a);
	if (n == 0 || n > ATTEST_DISK_SHARES_MAX)
		return attest_fail(reason, "field 'disk_shares_get' holds %zu volumes, not 1 to %d", n,
				   ATTEST_DISK_SHARES_MAX);
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(a, i);
		const char *s = json_object_get_string(v);

		if (!json_object_is_type(v, json_type_string) ||
		    (size_t)json_object_get_string_len(v) != ATTEST_VOLUME_LEN || !attest_volume_valid(s))
			return attest_fail(reason, "field 'disk_shares_get' holds something other than LUKS2 UUIDs");
		for (size_t j = 0; j < i; j++)
			if (streq(ret->shares_get[j], s))
				return attest_fail(reason, "field 'disk_shares_get' names volume %s twice", s);
		memcpy(ret->shares_get[i], s, ATTEST_VOLUME_LEN + 1);
	}
	ret->n_shares_get = n;
	return 0;
}

static int finish_parse(const char *json, size_t size, struct attest_finish *ret, char *reason)
{
	static const char *const fields[] = { "session", "proof",  "attest",    "signature", "pcr_bank", "pcrs",
					      "csr",     "ek_pub", "event_log", "cel_log",   "log_size",
					      "disk_share_put", "disk_shares_get", NULL };
	_cleanup_json_ json_object *o = NULL;
	json_object *pcrs;
	int64_t log_size;
	int r;

	if ((r = attest_json_object(json, size, fields, &o, reason)) < 0 || (r = get_session(o, ret->session, reason)) < 0 ||
	    (r = get_base64_exact(o, "proof", ret->proof, sizeof(ret->proof), reason)) < 0 ||
	    (r = get_base64(o, "attest", ret->attest, sizeof(ret->attest), &ret->attest_size, reason)) < 0 ||
	    (r = get_base64(o, "signature", ret->signature, sizeof(ret->signature), &ret->signature_size,
			    reason)) < 0 ||
	    (r = get_bank(o, &ret->bank, reason)) < 0 || (r = get_text(o, "csr", ret->csr, ATTEST_CSR_MAX, reason)) < 0 ||
	    (r = get_base64(o, "ek_pub", ret->ek_pub, sizeof(ret->ek_pub), &ret->ek_pub_size, reason)) < 0 ||
	    (r = get_base64_alloc(o, "event_log", ATTEST_EVENTLOG_MAX, &ret->event_log, &ret->event_log_size,
				  reason)) < 0 ||
	    (r = get_text_alloc(o, "cel_log", ATTEST_CEL_MAX, &ret->cel_log, &ret->cel_log_size, reason)) < 0)
		return r;
	if (json_object_object_get_ex(o, "log_size", NULL)) {
		if ((r = get_int(o, "log_size", 0, INT64_MAX, &log_size, reason)) < 0)
			return r;
		ret->witness = true;
		ret->log_size = (uint64_t)log_size;
	}
	if ((r = disk_share_put_parse(o, ret, reason)) < 0 || (r = disk_shares_get_parse(o, ret, reason)) < 0)
		return r;
	if (!json_object_object_get_ex(o, "pcrs", &pcrs) || !json_object_is_type(pcrs, json_type_object))
		return attest_fail(reason, "field 'pcrs' is not an object");
	json_object_object_foreach(pcrs, key, val)
	{
		int i = pcr_index(key);

		if (i < 0)
			return attest_fail(reason, "field 'pcrs' has a key that is not a PCR index");
		if (!json_object_is_type(val, json_type_string) ||
		    (size_t)json_object_get_string_len(val) != 2u * ret->bank->size ||
		    hex_decode(json_object_get_string(val), ret->pcr_values[i], ret->bank->size) < 0)
			return attest_fail(reason, "PCR %d is not a %s digest in hex", i, ret->bank->name);
		ret->mask |= 1u << i;
	}
	if (!ret->mask)
		return attest_fail(reason, "field 'pcrs' is empty");
	return 0;
}

/* An array of at most ATTEST_LOG_PROOF_MAX hashes, each base64 of ATTEST_LOG_HASH_SIZE bytes. */
static int get_proof(json_object *o, const char *key, uint8_t (*ret)[ATTEST_LOG_HASH_SIZE], size_t *ret_n,
		     char *reason)
{
	json_object *a;
	size_t n;

	if (!json_object_object_get_ex(o, key, &a))
		return attest_fail(reason, "missing field 'log.%s'", key);
	if (!json_object_is_type(a, json_type_array))
		return attest_fail(reason, "field 'log.%s' is not an array", key);
	n = json_object_array_length(a);
	if (n > ATTEST_LOG_PROOF_MAX)
		return attest_fail(reason, "field 'log.%s' holds more than %d hashes", key, ATTEST_LOG_PROOF_MAX);
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(a, i);
		const char *s = json_object_get_string(v);
		size_t len = (size_t)json_object_get_string_len(v);

		if (!json_object_is_type(v, json_type_string) || len != base64_encoded_len(ATTEST_LOG_HASH_SIZE) ||
		    base64_decode(s, len, ret[i], ATTEST_LOG_HASH_SIZE) != ATTEST_LOG_HASH_SIZE)
			return attest_fail(reason, "field 'log.%s' holds something other than base64 of %d-byte hashes",
					   key, ATTEST_LOG_HASH_SIZE);
	}
	*ret_n = n;
	return 0;
}

static int log_parse(json_object *parent, struct attest_log *ret, char *reason)
{
	static const char *const fields[] = { "checkpoint", "index", "record", "inclusion", "consistency", NULL };
	json_object *o;
	int64_t index;
	int r;

	if (!json_object_object_get_ex(parent, "log", &o) || !json_object_is_type(o, json_type_object))
		return attest_fail(reason, "field 'log' is not an object");
	json_object_object_foreach(o, key, val)
	{
		bool known = false;

		(void)val;
		for (size_t i = 0; fields[i]; i++)
			known = known || streq(fields[i], key);
		if (!known)
			return attest_fail(reason, "unknown field 'log.%.64s'", key);
	}
	if ((r = get_text(o, "checkpoint", ret->checkpoint, ATTEST_CHECKPOINT_MAX, reason)) < 0 ||
	    (r = get_int(o, "index", 0, INT64_MAX, &index, reason)) < 0 ||
	    (r = get_base64(o, "record", ret->record, sizeof(ret->record), &ret->record_size, reason)) < 0 ||
	    (r = get_proof(o, "inclusion", ret->inclusion, &ret->n_inclusion, reason)) < 0)
		return r;
	ret->index = (uint64_t)index;
	ret->has_consistency = json_object_object_get_ex(o, "consistency", NULL);
	if (ret->has_consistency && (r = get_proof(o, "consistency", ret->consistency, &ret->n_consistency, reason)) < 0)
		return r;
	return 0;
}

static int result_parse(const char *json, size_t size, struct attest_result *ret, char *reason)
{
	static const char *const fields[] = { "node_id",	"certificate",	   "chain",	 "not_after",
					      "policy_version", "payload_blob",	   "payload_seed", "payload_iv",
					      "payload",	"log",		   NULL };
	struct attest_payload *p = &ret->payload;
	_cleanup_json_ json_object *o = NULL;
	size_t n;
	int r;

	if ((r = attest_json_object(json, size, fields, &o, reason)) < 0 ||
	    (r = get_text(o, "node_id", ret->node_id, ATTEST_NODE_ID_MAX, reason)) < 0 ||
	    (r = get_text_alloc(o, "certificate", 16384, &ret->certificate, &n, reason)) < 0 ||
	    (r = get_text_alloc(o, "chain", ATTEST_CHAIN_MAX, &ret->chain, &n, reason)) < 0 ||
	    (r = get_int(o, "not_after", 1, INT64_MAX, &ret->not_after, reason)) < 0 ||
	    (r = get_int(o, "policy_version", 0, INT64_MAX, &ret->policy_version, reason)) < 0 ||
	    (r = get_base64(o, "payload_blob", p->credential_blob, sizeof(p->credential_blob),
			    &p->credential_blob_size, reason)) < 0 ||
	    (r = get_base64(o, "payload_seed", p->credential_seed, sizeof(p->credential_seed),
			    &p->credential_seed_size, reason)) < 0 ||
	    (r = get_base64_exact(o, "payload_iv", p->iv, sizeof(p->iv), reason)) < 0 ||
	    (r = get_base64_alloc(o, "payload", ATTEST_PAYLOAD_MAX, &p->ciphertext, &p->ciphertext_size, reason)) < 0)
		return r;
	if (!attest_node_id_valid(ret->node_id))
		return attest_fail(reason, "field 'node_id' is not a valid node id");
	if (!ret->certificate)
		return attest_fail(reason, "field 'certificate' is empty");
	if (!ret->chain)
		return attest_fail(reason, "field 'chain' is empty");
	if (p->ciphertext_size < ATTEST_TAG_SIZE)
		return attest_fail(reason, "field 'payload' is shorter than its tag");
	ret->has_log = json_object_object_get_ex(o, "log", NULL);
	if (ret->has_log)
		return log_parse(o, &ret->log, reason);
	return 0;
}

int attest_result_parse(const char *json, size_t size, struct attest_result *ret, char *reason)
{
	int r;

	memset(ret, 0, sizeof(*ret));
	r = result_parse(json, size, ret, reason);
	if (r < 0)
		attest_result_done(ret);
	return r;
}

void attest_finish_done(struct attest_finish *m)
{
	free(m->event_log);
	free(m->cel_log);
	m->event_log = NULL;
	m->cel_log = NULL;
	m->event_log_size = m->cel_log_size = 0;
	secmem_wipe(m->share, sizeof(m->share));
}

void attest_result_done(struct attest_result *m)
{
	free(m->certificate);
	free(m->chain);
	free(m->payload.ciphertext);
	m->certificate = m->chain = NULL;
	m->payload.ciphertext = NULL;
	m->payload.ciphertext_size = 0;
}

int attest_error_parse(const char *json, size_t size, char *reason)
{
	static const char *const fields[] = { "error", NULL };
	_cleanup_json_ json_object *o = NULL;
	char buf[ATTEST_REASON_MAX];
	int r;

	if ((r = attest_json_object(json, size, fields, &o, buf)) < 0 ||
	    (r = get_text(o, "error", buf, ATTEST_REASON_MAX - 1, buf)) < 0)
		return r;
	/* The server's words reach a terminal: printable ASCII only. */
	for (char *p = buf; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	memcpy(reason, buf, strlen(buf) + 1);
	return 0;
}

static int add(json_object *o, const char *key, json_object *v)
{
	if (!v || json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int add_string(json_object *o, const char *key, const char *s)
{
	return add(o, key, json_object_new_string(s));
}

/*
 * Base64 needs no JSON escaping, so its string goes out as it is, in place of json-c's escaper
 * looking at each of a firmware log's 40,000 characters.
 */
static int base64_to_json(json_object *v, struct printbuf *pb, int level, int flags)
{
	(void)level;
	(void)flags;
	if (printbuf_memappend(pb, "\"", 1) < 0 ||
	    printbuf_memappend(pb, json_object_get_string(v), json_object_get_string_len(v)) < 0 ||
	    printbuf_memappend(pb, "\"", 1) < 0)
		return -1;
	return 0;
}

static int add_base64(json_object *o, const char *key, const uint8_t *p, size_t n)
{
	_cleanup_free_ char *s = malloc(base64_encoded_len(n) + 1);
	json_object *v;

	if (!s)
		return -ENOMEM;
	base64_encode(p, n, s);
	v = json_object_new_string(s);
	if (v)
		json_object_set_serializer(v, base64_to_json, NULL, NULL);
	return add(o, key, v);
}

static int add_text(json_object *o, const char *key, const char *s, size_t n)
{
	return add(o, key, json_object_new_string_len(s ? s : "", (int)(s ? n : 0)));
}

static int add_int(json_object *o, const char *key, int64_t n)
{
	return add(o, key, json_object_new_int64(n));
}

static int finish_format(json_object *o, char **ret)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

	*ret = s ? strdup(s) : NULL;
	return *ret ? 0 : -ENOMEM;
}

int attest_start_format(const struct attest_start *m, char **ret)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	int r;

	if (!o)
		return -ENOMEM;
	if ((r = add_string(o, "version", m->version)) < 0 ||
	    (r = add_base64(o, "ek_cert", m->ek_cert, m->ek_cert_size)) < 0 ||
	    (r = add_base64(o, "ek_pub", m->ek_pub, m->ek_pub_size)) < 0 ||
	    (r = add_base64(o, "ak_pub", m->ak_pub, m->ak_pub_size)) < 0)
		return r;
	return finish_format(o, ret);
}

int attest_challenge_format(const struct attest_challenge *m, char **ret)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object *pcrs;
	int r;

	if (!o)
		return -ENOMEM;
	if ((r = add_string(o, "session", m->session)) < 0 || (r = add_base64(o, "nonce", m->nonce, sizeof(m->nonce))) < 0 ||
	    (r = add_base64(o, "credential_blob", m->credential_blob, m->credential_blob_size)) < 0 ||
	    (r = add_base64(o, "credential_seed", m->credential_seed, m->credential_seed_size)) < 0 ||
	    (r = add_string(o, "pcr_bank", m->bank->name)) < 0)
		return r;
	pcrs = json_object_new_array();
	if (!pcrs || json_object_object_add(o, "pcrs", pcrs) < 0) {
		json_object_put(pcrs);
		return -ENOMEM;
	}
	for (int i = 0; i < PCR_COUNT; i++)
		if (m->mask & (1u << i) && json_object_array_add(pcrs, json_object_new_int(i)) < 0)
			return -ENOMEM;
	return finish_format(o, ret);
}

static int add_disk_shares(json_object *o, const struct attest_finish *m)
{
	json_object *put, *get;
	char b64[64];
	int r;

	if (m->has_share_put) {
		if ((r = add(o, "disk_share_put", put = json_object_new_object())) < 0 ||
		    (r = add_string(put, "volume", m->share_volume)) < 0)
			return r;
		base64_encode(m->share, sizeof(m->share), b64);
		r = add_string(put, "share", b64);
		secmem_wipe(b64, sizeof(b64));
		if (r < 0)
			return r;
	}
	if (m->n_shares_get == 0)
		return 0;
	if ((r = add(o, "disk_shares_get", get = json_object_new_array())) < 0)
		return r;
	for (size_t i = 0; i < m->n_shares_get; i++) {
		json_object *v = json_object_new_string(m->shares_get[i]);

		if (!v || json_object_array_add(get, v) < 0) {
			json_object_put(v);
			return -ENOMEM;
		}
	}
	return 0;
}

int attest_finish_format(const struct attest_finish *m, char **ret)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object *pcrs;
	int r;

	if (!o)
		return -ENOMEM;
	if ((r = add_string(o, "session", m->session)) < 0 || (r = add_base64(o, "proof", m->proof, sizeof(m->proof))) < 0 ||
	    (r = add_base64(o, "attest", m->attest, m->attest_size)) < 0 ||
	    (r = add_base64(o, "signature", m->signature, m->signature_size)) < 0 ||
	    (r = add_string(o, "pcr_bank", m->bank->name)) < 0 || (r = add_string(o, "csr", m->csr)) < 0 ||
	    (r = add_base64(o, "ek_pub", m->ek_pub, m->ek_pub_size)) < 0 ||
	    (r = add_base64(o, "event_log", m->event_log, m->event_log_size)) < 0 ||
	    (r = add_text(o, "cel_log", m->cel_log, m->cel_log_size)) < 0 ||
	    (m->witness && (r = add_int(o, "log_size", (int64_t)m->log_size)) < 0) ||
	    (r = add_disk_shares(o, m)) < 0)
		return r;
	pcrs = json_object_new_object();
	if (!pcrs || json_object_object_add(o, "pcrs", pcrs) < 0) {
		json_object_put(pcrs);
		return -ENOMEM;
	}
	for (int i = 0; i < PCR_COUNT; i++)
		if (m->mask & (1u << i)) {
			char key[4], hex[2 * PCR_DIGEST_MAX + 1];

			snprintf(key, sizeof(key), "%d", i);
			hex_encode(m->pcr_values[i], m->bank->size, hex);
			if ((r = add_string(pcrs, key, hex)) < 0)
				return r;
		}
	return finish_format(o, ret);
}

static int add_proof(json_object *o, const char *key, const uint8_t (*proof)[ATTEST_LOG_HASH_SIZE], size_t n)
{
	json_object *a = json_object_new_array();
	int r;

	if ((r = add(o, key, a)) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		char s[64]; /* base64 of a hash: 44 characters */
		json_object *v;

		base64_encode(proof[i], ATTEST_LOG_HASH_SIZE, s);
		v = json_object_new_string(s);
		if (!v || json_object_array_add(a, v) < 0) {
			json_object_put(v);
			return -ENOMEM;
		}
	}
	return 0;
}

static int add_log(json_object *parent, const struct attest_log *m)
{
	json_object *o = json_object_new_object();
	int r;

	if ((r = add(parent, "log", o)) < 0)
		return r;
	if ((r = add_string(o, "checkpoint", m->checkpoint)) < 0 || (r = add_int(o, "index", (int64_t)m->index)) < 0 ||
	    (r = add_base64(o, "record", m->record, m->record_size)) < 0 ||
	    (r = add_proof(o, "inclusion", (const uint8_t(*)[ATTEST_LOG_HASH_SIZE])m->inclusion, m->n_inclusion)) < 0 ||
	    (m->has_consistency &&
	     (r = add_proof(o, "consistency", (const uint8_t(*)[ATTEST_LOG_HASH_SIZE])m->consistency,
			    m->n_consistency)) < 0))
		return r;
	return 0;
}

int attest_result_add_log(char **body, const struct attest_log *log)
{
	_cleanup_json_ json_object *o = json_tokener_parse(*body);
	char *out;
	int r;

	if (!o || !json_object_is_type(o, json_type_object))
		return -EINVAL;
	if ((r = add_log(o, log)) < 0 || (r = finish_format(o, &out)) < 0)
		return r;
	free(*body);
	*body = out;
	return 0;
}

int attest_result_format(const struct attest_result *m, char **ret)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	int r;

	if (!o)
		return -ENOMEM;
	if ((r = add_string(o, "node_id", m->node_id)) < 0 || (r = add_string(o, "certificate", m->certificate)) < 0 ||
	    (r = add_string(o, "chain", m->chain)) < 0 || (r = add_int(o, "not_after", m->not_after)) < 0 ||
	    (r = add_int(o, "policy_version", m->policy_version)) < 0 ||
	    (r = add_base64(o, "payload_blob", m->payload.credential_blob, m->payload.credential_blob_size)) < 0 ||
	    (r = add_base64(o, "payload_seed", m->payload.credential_seed, m->payload.credential_seed_size)) < 0 ||
	    (r = add_base64(o, "payload_iv", m->payload.iv, sizeof(m->payload.iv))) < 0 ||
	    (r = add_base64(o, "payload", m->payload.ciphertext, m->payload.ciphertext_size)) < 0 ||
	    (m->has_log && (r = add_log(o, &m->log)) < 0))
		return r;
	return finish_format(o, ret);
}

int attest_error_format(const char *reason, char **ret)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	int r;

	if (!o)
		return -ENOMEM;
	if ((r = add_string(o, "error", reason)) < 0)
		return r;
	return finish_format(o, ret);
}

int attest_node_id_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > ATTEST_NODE_ID_MAX || s[0] == '-' || s[0] == '.')
		return 0;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789-.", *s))
			return 0;
	return 1;
}

int attest_proof(const uint8_t *secret, size_t secret_size, const uint8_t nonce[ATTEST_NONCE_SIZE],
		 uint8_t ret[ATTEST_PROOF_SIZE])
{
	static const char label[] = "keystrap-proof";
	uint8_t msg[sizeof(label) - 1 + ATTEST_NONCE_SIZE];
	unsigned len = 0;

	memcpy(msg, label, sizeof(label) - 1);
	memcpy(msg + sizeof(label) - 1, nonce, ATTEST_NONCE_SIZE);
	if (!HMAC(EVP_sha256(), secret, (int)secret_size, msg, sizeof(msg), ret, &len) || len != ATTEST_PROOF_SIZE)
		return -EIO;
	return 0;
}

int attest_proof_verifier(const uint8_t proof[ATTEST_PROOF_SIZE], uint8_t ret[32])
{
	return EVP_Digest(proof, ATTEST_PROOF_SIZE, ret, NULL, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

int attest_extra_data(const uint8_t nonce[ATTEST_NONCE_SIZE], const uint8_t proof[ATTEST_PROOF_SIZE],
		      const uint8_t *spki, size_t spki_size, uint8_t ret[32])
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *c = EVP_MD_CTX_new();

	if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) || !EVP_DigestUpdate(c, nonce, ATTEST_NONCE_SIZE) ||
	    !EVP_DigestUpdate(c, proof, ATTEST_PROOF_SIZE) || !EVP_DigestUpdate(c, spki, spki_size) ||
	    !EVP_DigestFinal_ex(c, ret, NULL))
		return -EIO;
	return 0;
}

bool attest_volume_valid(const char *s)
{
	if (strlen(s) != ATTEST_VOLUME_LEN)
		return false;
	for (size_t i = 0; i < ATTEST_VOLUME_LEN; i++)
		if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' : !strchr("0123456789abcdef", s[i]) || !s[i])
			return false;
	return true;
}
