/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The adapter between a key's name and OpenSSL (keyref.h). Three ways in:
 *
 * - a file: the PEM private key, read after the owner-only check; a TSS2 PEM goes to the TPM;
 * - the TPM: OSSL_STORE through the tpm2-openssl provider, loaded once into a library context
 *   of its own with the default provider beside it (property "?provider=tpm2" there);
 * - PKCS#11: libp11's engine (Debian 12 has no pkcs11-provider). ENGINE is deprecated in
 *   OpenSSL 3, which is why it is used here only: a provider (OSSL_STORE "pkcs11:") takes its
 *   place in p11_load and the rest of the server does not change.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/store.h>

#include "fileio.h"
#include "keyref.h"
#include "macro.h"
#include "ossl.h"

#define TPM_PROPQ "?provider=tpm2"

static OSSL_LIB_CTX *tpm_ctx;
static OSSL_PROVIDER *tpm_prov;
static ENGINE *p11;
static char *p11_module;

/*
 * The TPM's persistent keys, one EVP_PKEY a handle for the life of the process: the provider
 * gives every load of a handle the same ESAPI object and closes it when any of them is freed,
 * which would leave the key of a reload (loaded before the old one is freed) dangling.
 */
#define TPM_KEYS_MAX 8
static struct {
	char *uri;
	EVP_PKEY *key;
} tpm_keys[TPM_KEYS_MAX];

/* "scheme:" at the start of name (a URI), as opposed to a path, which may hold ':' further on. */
static size_t scheme_len(const char *name)
{
	size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");

	return n > 0 && name[n] == ':' && !strchr("0123456789+.-", name[0]) ? n : 0;
}

static bool has_scheme(const char *uri, const char *scheme)
{
	size_t n = scheme_len(uri);

	return n == strlen(scheme) && strncasecmp(uri, scheme, n) == 0;
}

const char *keyref_file(const char *uri)
{
	if (scheme_len(uri) == 0)
		return uri;
	return has_scheme(uri, "file") ? uri + 5 : NULL;
}

static bool is_tpm(const char *uri)
{
	return has_scheme(uri, "handle");
}

bool keyref_is_hardware(const char *uri)
{
	return is_tpm(uri) || has_scheme(uri, "pkcs11");
}

void keyref_display(const char *uri, char *buf, size_t size)
{
	const char *pin = strstr(uri, "pin-value=");

	if (!pin) {
		snprintf(buf, size, "%s", uri);
		return;
	}
	pin += strlen("pin-value=");
	snprintf(buf, size, "%.*s***%s", (int)(pin - uri), uri, pin + strcspn(pin, "&;"));
}

/* The first error OpenSSL queued (the cause; later ones are the callers' "failed"), then none. */
static void ossl_reason(char *buf, size_t size, const char *fallback)
{
	const char *data = NULL, *reason;
	int flags = 0;
	unsigned long e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);

	reason = e ? ERR_reason_error_string(e) : NULL;
	if (!reason)
		snprintf(buf, size, "%s", fallback);
	else if (data && (flags & ERR_TXT_STRING) && data[0])
		snprintf(buf, size, "%s (%s)", reason, data);
	else
		snprintf(buf, size, "%s", reason);
	ERR_clear_error();
}

static int fail(const char *uri, char *why, size_t why_size, int r, const char *reason)
{
	char shown[KEYREF_WHY_MAX / 2];

	keyref_display(uri, shown, sizeof(shown));
	snprintf(why, why_size, "'%s': %s", shown, reason);
	return r;
}

static int fail_ossl(const char *uri, char *why, size_t why_size, int r, const char *fallback)
{
	char reason[KEYREF_WHY_MAX / 2];

	ossl_reason(reason, sizeof(reason), fallback);
	return fail(uri, why, why_size, r, reason);
}

static int tpm_init(const char *uri, char *why, size_t why_size)
{
	if (tpm_prov)
		return 0;
	if (!tpm_ctx && !(tpm_ctx = OSSL_LIB_CTX_new()))
		return fail(uri, why, why_size, -ENOMEM, "out of memory");
	/* The TSS logs its errors to stderr as well; the provider's reason is in OpenSSL's queue: one line. */
	(void)setenv("TSS2_LOG", "all+none", 0);
	if (!OSSL_PROVIDER_available(tpm_ctx, "default") && !OSSL_PROVIDER_load(tpm_ctx, "default"))
		return fail_ossl(uri, why, why_size, -ENOPKG, "OpenSSL's default provider does not load");
	tpm_prov = OSSL_PROVIDER_load(tpm_ctx, "tpm2");
	if (!tpm_prov)
		return fail_ossl(uri, why, why_size, -ENOPKG,
				 "the tpm2 provider does not load (is tpm2-openssl installed?)");
	return 0;
}

/* A key through the TPM's provider: OSSL_STORE "handle:" or a TSS2 PEM file. */
static int tpm_load(const char *name, const char *uri, bool public_only, EVP_PKEY **ret, char *why,
		    size_t why_size)
{
	OSSL_STORE_CTX *s;
	EVP_PKEY *k = NULL;
	int r;

	if ((r = tpm_init(name, why, why_size)) < 0)
		return r;
	ERR_clear_error();
	s = OSSL_STORE_open_ex(uri, tpm_ctx, TPM_PROPQ, NULL, NULL, NULL, NULL, NULL);
	if (!s)
		return fail_ossl(name, why, why_size, -ENOENT, "the TPM's provider cannot open it");
	(void)OSSL_STORE_expect(s, public_only ? OSSL_STORE_INFO_PUBKEY : OSSL_STORE_INFO_PKEY);
	while (!k && !OSSL_STORE_eof(s)) {
		OSSL_STORE_INFO *info = OSSL_STORE_load(s);

		if (!info) {
			if (OSSL_STORE_error(s))
				break;
			continue;
		}
		if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
			k = OSSL_STORE_INFO_get1_PKEY(info);
		else if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PUBKEY)
			k = OSSL_STORE_INFO_get1_PUBKEY(info);
		OSSL_STORE_INFO_free(info);
	}
	OSSL_STORE_close(s);
	if (!k)
		return fail_ossl(name, why, why_size, -ENOENT, "the TPM holds no such key");
	ERR_clear_error();
	*ret = k;
	return 0;
}

static int tpm_handle_load(const char *uri, EVP_PKEY **ret, char *why, size_t why_size)
{
	size_t i;
	int r;

	for (i = 0; i < TPM_KEYS_MAX && tpm_keys[i].uri; i++)
		if (streq(tpm_keys[i].uri, uri)) {
			if (EVP_PKEY_up_ref(tpm_keys[i].key) != 1)
				return fail(uri, why, why_size, -ENOMEM, "out of memory");
			*ret = tpm_keys[i].key;
			return 0;
		}
	if (i == TPM_KEYS_MAX)
		return fail(uri, why, why_size, -E2BIG, "too many TPM keys in one server");
	if (!(tpm_keys[i].uri = strdup(uri)))
		return fail(uri, why, why_size, -ENOMEM, "out of memory");
	if ((r = tpm_load(uri, uri, false, &tpm_keys[i].key, why, why_size)) < 0 ||
	    EVP_PKEY_up_ref(tpm_keys[i].key) != 1) {
		free(tpm_keys[i].uri);
		tpm_keys[i].uri = NULL;
		return r < 0 ? r : fail(uri, why, why_size, -ENOMEM, "out of memory");
	}
	*ret = tpm_keys[i].key;
	return 0;
}

/*
 * RFC 7512's module-path= in the query, which libp11 does not take (it refuses the URI): the
 * module, and in *ret_uri the URI without it.
 */
static int p11_module_split(const char *uri, char **ret_module, char **ret_uri)
{
	_cleanup_free_ char *u = strdup(uri), *m = NULL;
	char *q, *a, *end;

	if (!u)
		return -ENOMEM;
	q = strchr(u, '?');
	for (a = q ? q + 1 : NULL; a && *a; a = *end ? end + 1 : end) {
		end = a + strcspn(a, "&");
		if (strncmp(a, "module-path=", 12) != 0)
			continue;
		if (!(m = strndup(a + 12, (size_t)(end - a - 12))))
			return -ENOMEM;
		/* The attribute goes, with the '&' (or the '?') that led to it. */
		memmove(a - 1, end, strlen(end) + 1);
		if (a - 1 == q && *q == '&')
			*q = '?';
		break;
	}
	*ret_module = TAKE_PTR(m);
	*ret_uri = TAKE_PTR(u);
	return 0;
}

static int p11_init(const char *uri, const char *module, char *why, size_t why_size)
{
	ENGINE *e;

	if (p11) {
		if (module && (!p11_module || !streq(module, p11_module)))
			return fail(uri, why, why_size, -EINVAL,
				    "another PKCS#11 module is in use already (one module-path= for every key)");
		return 0;
	}
	ERR_clear_error();
	e = ENGINE_by_id("pkcs11");
	if (!e)
		return fail_ossl(uri, why, why_size, -ENOPKG,
				 "the pkcs11 engine does not load (is libengine-pkcs11-openssl installed?)");
	/* libp11 prints its complaints, the URI and its PIN with them, to stderr unless told not to. */
	(void)ENGINE_ctrl_cmd_string(e, "QUIET", NULL, 0);
	if (module && ENGINE_ctrl_cmd_string(e, "MODULE_PATH", module, 0) != 1) {
		ENGINE_free(e);
		return fail_ossl(uri, why, why_size, -EINVAL, "the pkcs11 engine refuses module-path=");
	}
	if (ENGINE_init(e) != 1) {
		ENGINE_free(e);
		return fail_ossl(uri, why, why_size, -ENOPKG, "the PKCS#11 module does not load");
	}
	ENGINE_free(e); /* the functional reference ENGINE_init took keeps it */
	p11 = e;
	if (module && !(p11_module = strdup(module)))
		return fail(uri, why, why_size, -ENOMEM, "out of memory");
	return 0;
}

static int p11_load(const char *uri, bool public_only, EVP_PKEY **ret, char *why, size_t why_size)
{
	_cleanup_free_ char *module = NULL, *bare = NULL;
	EVP_PKEY *k;
	int r;

	if (p11_module_split(uri, &module, &bare) < 0)
		return fail(uri, why, why_size, -ENOMEM, "out of memory");
	if ((r = p11_init(uri, module, why, why_size)) < 0)
		return r;
	ERR_clear_error();
	k = public_only ? ENGINE_load_public_key(p11, bare, NULL, NULL) : ENGINE_load_private_key(p11, bare, NULL, NULL);
	if (!k)
		return fail_ossl(uri, why, why_size, -ENOENT, "no such key on any token");
	ERR_clear_error();
	*ret = k;
	return 0;
}

static bool is_tss2_pem(FILE *f)
{
	char line[64];
	bool tss2 = fgets(line, sizeof(line), f) && strncmp(line, "-----BEGIN TSS2 PRIVATE KEY-----", 32) == 0;

	rewind(f);
	return tss2;
}

static int file_load(const char *uri, const char *path, bool public_only, EVP_PKEY **ret, char *why,
		     size_t why_size)
{
	EVP_PKEY *k = NULL;
	FILE *f;
	int r;

	if (!path[0])
		return fail(uri, why, why_size, -EINVAL, "names no file");
	/* Whoever can read it can use the key: refused unless it is the owner's alone. */
	r = file_check_private(path, why, why_size);
	if (r == -EACCES)
		return r;
	if (r == -ENOENT)
		return fail(uri, why, why_size, r, "no such file");
	if (r < 0)
		return fail(uri, why, why_size, r, strerror(-r));
	f = fopen(path, "re");
	if (!f)
		return fail(uri, why, why_size, -errno, strerror(errno));
	if (is_tss2_pem(f)) {
		fclose(f);
		/* Wrapped by this TPM: the provider loads it into the TPM, and only it can use it. */
		return tpm_load(uri, path, public_only, ret, why, why_size);
	}
	k = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
	fclose(f);
	ERR_clear_error();
	if (!k)
		return fail(uri, why, why_size, -EINVAL, "not a PEM private key (or one encrypted with a passphrase)");
	*ret = k;
	return 0;
}

static int load(const char *uri, bool public_only, EVP_PKEY **ret, char *why, size_t why_size)
{
	const char *path = keyref_file(uri);

	if (path)
		return file_load(uri, path, public_only, ret, why, why_size);
	if (is_tpm(uri))
		return tpm_handle_load(uri, ret, why, why_size);
	if (has_scheme(uri, "pkcs11"))
		return p11_load(uri, public_only, ret, why, why_size);
	return fail(uri, why, why_size, -EPROTONOSUPPORT,
		    "not a key this server can reach (PATH, file:, handle: or pkcs11:)");
}

int keyref_load_private(const char *uri, EVP_PKEY **ret, char *why, size_t why_size)
{
	return load(uri, false, ret, why, why_size);
}

int keyref_load_public(const char *uri, EVP_PKEY **ret, char *why, size_t why_size)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
	uint8_t *der = NULL;
	const uint8_t *p;
	int n, r;

	if ((r = load(uri, keyref_file(uri) == NULL && !is_tpm(uri), &k, why, why_size)) < 0)
		return r;
	/* A copy of the public half in the default context: it encrypts and compares without the token. */
	n = i2d_PUBKEY(k, &der);
	p = der;
	*ret = n > 0 ? d2i_PUBKEY(NULL, &p, n) : NULL;
	OPENSSL_free(der);
	ERR_clear_error();
	return *ret ? 0 : fail(uri, why, why_size, -EIO, "its public key cannot be read");
}

static bool in_tpm_ctx(EVP_PKEY *key)
{
	return tpm_prov && EVP_PKEY_get0_provider(key) == tpm_prov;
}

int keyref_sign_init(EVP_MD_CTX *ctx, EVP_PKEY *key)
{
	bool tpm = in_tpm_ctx(key);

	return EVP_DigestSignInit_ex(ctx, NULL, "SHA256", tpm ? tpm_ctx : NULL, tpm ? TPM_PROPQ : NULL, key, NULL) == 1
		       ? 0
		       : -EIO;
}

EVP_PKEY_CTX *keyref_pkey_ctx(EVP_PKEY *key)
{
	/* An engine's key: its own methods (EVP_PKEY_CTX_new), not a provider's. */
	if (EVP_PKEY_get0_engine(key))
		return EVP_PKEY_CTX_new(key, EVP_PKEY_get0_engine(key));
	if (in_tpm_ctx(key))
		return EVP_PKEY_CTX_new_from_pkey(tpm_ctx, key, TPM_PROPQ);
	return EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
}
