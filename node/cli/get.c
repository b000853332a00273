/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap get NAME: prints one credential from the "keystrap" kernel keyring to stdout, for
 * the consumer service the handoff gave it to. The bytes pass through a secure buffer only.
 *
 * A renewal replaces the whole keyring, so two calls may read two generations (a certificate
 * and a key that do not match). --bundle reads the key, certificate and chain from one keyring
 * in one call; --generation G reads anything only from the keyring whose status names G.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "encode.h"
#include "fileio.h"
#include "handoff-status.h"
#include "keyring.h"
#include "keystrap.h"
#include "log.h"
#include "ossl.h"

static const char usage[] = "keystrap get [--generation G] key|certificate|chain|status|secret:NAME\n"
			    "       keystrap get [--generation G] --bundle";

#define ATTEMPTS 3
#define PEM_KEY_BEGIN "-----BEGIN PRIVATE KEY-----\n"
#define PEM_KEY_END "-----END PRIVATE KEY-----\n"

/* The keyring's generation is G, or -ESTALE (a renewal replaced it). */
static int generation_check(int32_t ring, const char *g)
{
	_cleanup_secbuf_ struct secbuf *b = NULL;
	struct handoff_status s;
	int r;

	if (!g)
		return 0;
	if ((r = keyring_read(ring, "status", &b)) < 0)
		return r;
	if (handoff_status_parse((const char *)b->data, b->size, &s) < 0)
		return -EBADMSG;
	return streq(s.generation, g) ? 0 : -ESTALE;
}

/* The keyring keystrap verify emptied because the server revoked this node: says so, 1; else 0. */
static int revoked_say(int32_t ring)
{
	_cleanup_secbuf_ struct secbuf *b = NULL;
	static struct handoff_status s;
	char when[UTC_TIME_MAX];

	if (keyring_read(ring, "status", &b) < 0 || handoff_status_parse((const char *)b->data, b->size, &s) < 0 ||
	    !s.revoked_at)
		return 0;
	log_error("node %s was revoked by %s (seen %s): its certificate, key and secrets are no longer served", s.node_id,
		  s.server, utc_time_format(s.revoked_at, when));
	return 1;
}

/* Whether the PKCS#8 DER key is the certificate's: a bundle read across generations is not. */
static bool pair_matches(const struct secbuf *key, const struct secbuf *cert)
{
	const unsigned char *p = key->data;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = d2i_AutoPrivateKey(NULL, &p, (long)key->size);
	BIO *bio = BIO_new_mem_buf(cert->data, (int)cert->size);
	_cleanup_(X509_freep) X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	return k && x && EVP_PKEY_eq(X509_get0_pubkey(x), k) == 1;
}

static void append(struct secbuf *b, const void *p, size_t n)
{
	memcpy(b->data + b->size, p, n);
	b->size += n;
}

/* The key as PEM (64-column base64), then the certificate, then the chain, in one secure buffer. */
static int bundle_format(const struct secbuf *key, const struct secbuf *cert, const struct secbuf *chain,
			 struct secbuf **ret)
{
	size_t n = base64_encoded_len(key->size);
	_cleanup_secbuf_ struct secbuf *b64 = secbuf_new(n + 1);
	struct secbuf *out = secbuf_new(strlen(PEM_KEY_BEGIN) + n + (n + 63) / 64 + strlen(PEM_KEY_END) + cert->size +
					(chain ? chain->size : 0));

	if (!b64 || !out) {
		secbuf_free(out);
		return -ENOMEM;
	}
	base64_encode(key->data, key->size, (char *)b64->data);
	out->size = 0;
	append(out, PEM_KEY_BEGIN, strlen(PEM_KEY_BEGIN));
	for (size_t i = 0; i < n; i += 64) {
		append(out, b64->data + i, n - i < 64 ? n - i : 64);
		append(out, "\n", 1);
	}
	append(out, PEM_KEY_END, strlen(PEM_KEY_END));
	append(out, cert->data, cert->size);
	if (chain)
		append(out, chain->data, chain->size);
	*ret = out;
	return 0;
}

/* One attempt: name (or the bundle, name NULL) from ring, of generation g when g is given. */
static int read_from(int32_t ring, const char *g, const char *name, struct secbuf **ret)
{
	_cleanup_secbuf_ struct secbuf *key = NULL, *cert = NULL, *chain = NULL, *b = NULL;
	int r;

	if ((r = generation_check(ring, g)) < 0)
		return r;
	if (name) {
		if ((r = keyring_read(ring, name, &b)) < 0)
			return r;
	} else {
		if ((r = keyring_read(ring, "key", &key)) < 0 || (r = keyring_read(ring, "certificate", &cert)) < 0)
			return r;
		r = keyring_read(ring, "chain", &chain);
		if (r < 0 && r != -ENOKEY)
			return r;
		if (!pair_matches(key, cert))
			return -EAGAIN;
		if ((r = bundle_format(key, cert, chain, &b)) < 0)
			return r;
	}
	/* A keyring's keys never change (a renewal makes a new one): all of it is generation g. */
	*ret = TAKE_PTR(b);
	return 0;
}

int cmd_get(int argc, char **argv)
{
	static const struct option opts[] = { { "bundle", no_argument, NULL, 'b' },
					      { "generation", required_argument, NULL, 'g' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	_cleanup_secbuf_ struct secbuf *b = NULL;
	const char *name = NULL, *generation = NULL;
	bool bundle = false;
	int32_t ring = 0;
	int o, r = -ENOKEY;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (o) {
		case 'b':
			bundle = true;
			break;
		case 'g':
			generation = optarg;
			if (strlen(generation) != 2 * HANDOFF_GENERATION_SIZE ||
			    strspn(generation, "0123456789abcdef") != strlen(generation))
				return usage_error(usage, "--generation '%s' is not %d lowercase hex digits", generation,
						   2 * HANDOFF_GENERATION_SIZE);
			break;
		case 'h':
			printf("Usage: %s\n\n"
			       "Print one credential that keystrap handoff left in the kernel keyring:\n"
			       "  key            the node's private key (PKCS#8 DER)\n"
			       "  certificate    its certificate (PEM)\n"
			       "  chain          the issuing CA chain (PEM)\n"
			       "  secret:NAME    a secret payload, byte for byte\n"
			       "  status         what keystrap status shows, as name=value lines\n"
			       "  --bundle       the key (PEM), certificate and chain from one keyring in one\n"
			       "                 call: a matching pair even while a renewal replaces it\n"
			       "  --generation G only from the keyring whose status says generation=G; fails\n"
			       "                 once a renewal has replaced it (read the set again)\n"
			       "Only the uid and group given in [Handoff] of keystrap.conf may read them.\n",
			       usage);
			return 0;
		default:
			return usage_error(usage, "unknown option");
		}
	if (bundle && optind != argc)
		return usage_error(usage, "--bundle takes no credential name ('%s')", argv[optind]);
	if (!bundle && optind + 1 != argc)
		return usage_error(usage, optind == argc ? "which credential?" : "one credential at a time");
	if (!bundle) {
		name = argv[optind];
		if (!keyring_desc_valid(name))
			return usage_error(usage, "'%s' is not a credential name", name);
	}
	/* The bundle's key is parsed to check it: into OpenSSL's mlocked heap, wiped on free. */
	if (bundle && !CRYPTO_secure_malloc_initialized())
		(void)CRYPTO_secure_malloc_init(65536, 16);

	/*
	 * A handoff may replace the keyring between finding it and reading it, and invalidates the
	 * old one's keys: a read that fails in a keyring that is no longer the current one is
	 * tried again in the new one.
	 */
	for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
		int32_t again;

		r = keyring_find_for_caller(&ring);
		if (r == -ENOKEY || r == -EACCES) {
			ring = 0;
			break;
		}
		if (r < 0) {
			log_error("cannot search the kernel keyrings: %s", strerror(-r));
			return 1;
		}
		r = read_from(ring, generation, name, &b);
		if (r >= 0 || r == -ESTALE || r == -EACCES || r == -EBADMSG)
			break;
		/* A failed read in the keyring that is still the current one is the answer. */
		if (r != -EAGAIN && keyring_find_for_caller(&again) >= 0 && again == ring)
			break;
		r = -EAGAIN;
	}
	if (r == -ESTALE) {
		log_error("generation %s is gone: a renewal replaced the keyring (read the generation and the set again)",
			  generation);
		return 1;
	}
	if (r == -EAGAIN) {
		log_error("the keystrap keyring kept changing while it was read (renewals); try again");
		return 1;
	}
	if (r == -ENOKEY && ring) {
		if (revoked_say(ring))
			return 1;
		if (name)
			log_error("no credential '%s' in the keystrap keyring (keystrap status lists them)", name);
		else
			log_error("the keystrap keyring holds no %s", generation ? "status, key or certificate" : "key or certificate");
		return 1;
	}
	if (r == -ENOKEY || r == -EACCES) {
		log_error("permission denied: no keystrap credentials are readable by uid %u gid %u "
			  "(not the [Handoff] Owner=/Group=, or nothing handed off)", (unsigned)geteuid(),
			  (unsigned)getegid());
		return 1;
	}
	if (r == -EBADMSG) {
		log_error("the keystrap keyring's status key is malformed");
		return 1;
	}
	if (r < 0) {
		log_error("cannot read '%s' from the keystrap keyring: %s", name ? name : "the bundle", strerror(-r));
		return 1;
	}
	r = write_full(STDOUT_FILENO, b->data, b->size);
	if (r < 0) {
		log_error("cannot write to stdout: %s", strerror(-r));
		return 1;
	}
	return 0;
}
