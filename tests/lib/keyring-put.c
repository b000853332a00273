/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keyring-put: the keyring half of keystrap handoff without a server, for tests/bats/keyring.bats.
 * Makes what attest_run hands over — a fresh P-256 node key (OpenSSL secure heap), a
 * self-signed certificate for it, that certificate again as the chain, and secrets read from
 * files — and stores it exactly as keystrap handoff does (node/handoff.c). Test-only.
 *
 *   keyring-put [--owner ID] [--group ID] [--lifetime SECONDS] [--node-id ID] [--secret NAME=FILE]...
 *
 * Prints the certificate to stdout (so a test can compare) and the keyring id to stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "handoff.h"
#include "ossl.h"
#include "secbuf.h"

static char *self_signed(EVP_PKEY *key, const char *cn, long lifetime)
{
	_cleanup_(X509_freep) X509 *x = X509_new();
	X509_NAME *name;
	BIO *bio = BIO_new(BIO_s_mem());
	char *p = NULL, *pem = NULL;
	long n;

	if (!x || !bio)
		goto out;
	name = X509_get_subject_name(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), lifetime);
	X509_set_pubkey(x, key);
	if (X509_sign(x, key, EVP_sha256()) <= 0 || PEM_write_bio_X509(bio, x) != 1)
		goto out;
	n = BIO_get_mem_data(bio, &p);
	pem = strndup(p, (size_t)n);
out:
	BIO_free(bio);
	return pem;
}

static void drop(struct node_credentials *c)
{
	EVP_PKEY_free(c->key);
	free(c->certificate);
	free(c->chain);
	for (size_t i = 0; i < c->n_secrets; i++)
		secbuf_free(c->secrets[i].value);
	free(c->secrets);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "owner", required_argument, NULL, 'o' },  { "group", required_argument, NULL, 'g' },
		{ "lifetime", required_argument, NULL, 'l' }, { "node-id", required_argument, NULL, 'n' },
		{ "secret", required_argument, NULL, 's' },   {}
	};
	struct node_credentials c = { .policy_version = 7 };
	struct keyring_owner own;
	const char *owner = NULL, *group = NULL, *node = "node-test";
	long lifetime = 3600;
	int32_t id = 0;
	int o, r;

	(void)CRYPTO_secure_malloc_init(65536, 16);
	c.secrets = calloc((size_t)argc, sizeof(*c.secrets));
	while ((o = getopt_long(argc, argv, "", opts, NULL)) >= 0)
		switch (o) {
		case 'o':
			owner = optarg;
			break;
		case 'g':
			group = optarg;
			break;
		case 'l':
			lifetime = strtol(optarg, NULL, 10);
			break;
		case 'n':
			node = optarg;
			break;
		case 's': {
			char *eq = strchr(optarg, '=');
			struct node_secret *s = &c.secrets[c.n_secrets];

			if (!eq || (size_t)(eq - optarg) > NODE_SECRET_NAME_MAX)
				return fprintf(stderr, "keyring-put: --secret NAME=FILE\n"), 2;
			memcpy(s->name, optarg, (size_t)(eq - optarg));
			if ((r = secbuf_read_file(eq + 1, 65536, &s->value)) < 0)
				return fprintf(stderr, "keyring-put: %s: %s\n", eq + 1, strerror(-r)), 1;
			c.n_secrets++;
			break;
		}
		default:
			return 2;
		}
	snprintf(c.node_id, sizeof(c.node_id), "%s", node);
	snprintf(c.server, sizeof(c.server), "https://attest.test:8443");
	c.key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	c.certificate = c.key ? self_signed(c.key, node, lifetime > 0 ? lifetime : 60) : NULL;
	c.chain = c.certificate ? strdup(c.certificate) : NULL;
	c.not_after = (int64_t)time(NULL) + lifetime;
	if (!c.chain)
		return fprintf(stderr, "keyring-put: cannot make a key and certificate\n"), 1;
	r = handoff_owner(owner, group, &own);
	if (r >= 0)
		r = handoff_store(&c, &own, "sha256:0=00", (int64_t)time(NULL), &id);
	if (r < 0) {
		fprintf(stderr, "keyring-put: %s\n", handoff_reason(r));
		drop(&c);
		return 1;
	}
	fputs(c.certificate, stdout);
	fprintf(stderr, "keyring %d\n", id);
	drop(&c);
	return 0;
}
