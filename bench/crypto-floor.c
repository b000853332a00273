/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "crypto-floor.h"
#include "macro.h"

#define BATCHES 15

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what) __attribute__((noreturn));
static void fail(const char *what)
{
	fprintf(stderr, "server-load: crypto floor: %s failed\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

struct op {
	void (*run)(void *ctx);
	int n;	  /* calls per batch */
	double t; /* seconds per call, the fastest batch's */
};

/*
 * Each operation's thread CPU time per call in its fastest of BATCHES batches, after one
 * untimed batch, the operations' batches taken in turn: the floor is what this machine can do,
 * and a moment of interference from the rest of it (another guest, frequency changes) then
 * costs one batch of each, not all of one.
 */
static void time_ops(struct op *ops, size_t n, void *ctx)
{
	for (size_t j = 0; j < n; j++) {
		for (int i = 0; i < ops[j].n; i++)
			ops[j].run(ctx);
		ops[j].t = 1e9;
	}
	for (int b = 0; b < BATCHES; b++)
		for (size_t j = 0; j < n; j++) {
			double t0 = cpu_now(), t;

			for (int i = 0; i < ops[j].n; i++)
				ops[j].run(ctx);
			t = (cpu_now() - t0) / ops[j].n;
			if (t < ops[j].t)
				ops[j].t = t;
		}
}

struct keys {
	EVP_PKEY *p256, *peer; /* the signer (CA, AK, node key, TLS) and the EK */
	EVP_PKEY_CTX *gen, *xgen;
	uint8_t msg[512], sig[80];
	size_t sig_size;
	uint8_t block[16384];
	EVP_CIPHER_CTX *gcm, *cfb;
	/* Fetched once, as a server would keep them. */
	EVP_MD *sha256;
	EVP_MD_CTX *md;
	EVP_MAC_CTX *hmac;
	uint8_t pcr[32];
};

static void sign(void *p)
{
	struct keys *k = p;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t n = sizeof(k->sig);

	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->p256) != 1 ||
	    EVP_DigestSign(md, k->sig, &n, k->msg, sizeof(k->msg)) != 1)
		fail("ECDSA signing");
	k->sig_size = n;
	EVP_MD_CTX_free(md);
}

static void verify(void *p)
{
	struct keys *k = p;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->p256) != 1 ||
	    EVP_DigestVerify(md, k->sig, k->sig_size, k->msg, sizeof(k->msg)) != 1)
		fail("ECDSA verification");
	EVP_MD_CTX_free(md);
}

/* An ephemeral key from gen and its shared secret with peer. */
static void agree(EVP_PKEY_CTX *gen, EVP_PKEY *peer)
{
	EVP_PKEY *eph = NULL;
	EVP_PKEY_CTX *d;
	uint8_t z[66];
	size_t zs = sizeof(z);

	if (EVP_PKEY_keygen(gen, &eph) != 1)
		fail("ephemeral key generation");
	d = EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL);
	if (!d || EVP_PKEY_derive_init(d) != 1 || EVP_PKEY_derive_set_peer_ex(d, peer, 0) != 1 ||
	    EVP_PKEY_derive(d, z, &zs) != 1)
		fail("key agreement");
	EVP_PKEY_CTX_free(d);
	EVP_PKEY_free(eph);
}

static void ecdh(void *p)
{
	struct keys *k = p;

	agree(k->gen, k->peer);
}

static void x25519(void *p)
{
	static EVP_PKEY *client;
	struct keys *k = p;

	if (!client && !(client = EVP_PKEY_Q_keygen(NULL, NULL, "X25519")))
		fail("X25519 key generation");
	agree(k->xgen, client);
}

/* PCR = SHA-256(PCR || digest) */
static void extend(void *p)
{
	struct keys *k = p;

	if (EVP_DigestInit_ex2(k->md, k->sha256, NULL) != 1 || EVP_DigestUpdate(k->md, k->pcr, 32) != 1 ||
	    EVP_DigestUpdate(k->md, k->msg, 32) != 1 || EVP_DigestFinal_ex(k->md, k->pcr, NULL) != 1)
		fail("SHA-256");
}

static void hmac(struct keys *k, const uint8_t *key, const uint8_t *a, size_t na, const uint8_t *b, size_t nb,
		 uint8_t out[32])
{
	size_t n = 0;

	if (EVP_MAC_init(k->hmac, key, 32, NULL) != 1 || EVP_MAC_update(k->hmac, a, na) != 1 ||
	    EVP_MAC_update(k->hmac, b, nb) != 1 || EVP_MAC_final(k->hmac, out, &n, 32) != 1)
		fail("HMAC-SHA256");
}

/*
 * What an ECC MakeCredential does after the ECDH (TPM 2.0 Part 1, 24.4 and 11.4.10): the seed
 * by KDFe from Z (SHA-256 of the counter, Z, "IDENTITY" and both x coordinates), the symmetric
 * and the HMAC key by one KDFa block each, the credential (a TPM2B of 32 bytes) encrypted with
 * AES-128-CFB and the outer HMAC over it and the AK's name.
 */
static void cred_sym(void *p)
{
	static const uint8_t iv[16];
	struct keys *k = p;
	uint8_t seed[32], sym[32], mac[32], enc[34];
	int n = 0;

	if (EVP_DigestInit_ex2(k->md, k->sha256, NULL) != 1 || EVP_DigestUpdate(k->md, k->msg, 4 + 32 + 9 + 64) != 1 ||
	    EVP_DigestFinal_ex(k->md, seed, NULL) != 1)
		fail("KDFe");
	hmac(k, seed, k->msg, 4 + 8 + 34, k->msg + 64, 4, sym);
	hmac(k, seed, k->msg, 4 + 10, k->msg + 64, 4, mac);
	if (EVP_EncryptInit_ex2(k->cfb, NULL, sym, iv, NULL) != 1 ||
	    EVP_EncryptUpdate(k->cfb, enc, &n, k->msg + 128, sizeof(enc)) != 1 || EVP_EncryptFinal_ex(k->cfb, enc + n, &n) != 1)
		fail("AES-128-CFB");
	hmac(k, mac, enc, sizeof(enc), k->msg + 200, 34, mac);
}

static void gcm(void *p)
{
	static const uint8_t key[32], iv[12];
	struct keys *k = p;
	uint8_t tag[16];
	int n = 0;

	if (EVP_EncryptInit_ex(k->gcm, NULL, NULL, key, iv) != 1 ||
	    EVP_EncryptUpdate(k->gcm, k->block, &n, k->block, sizeof(k->block)) != 1 ||
	    EVP_EncryptFinal_ex(k->gcm, tag, &n) != 1 || EVP_CIPHER_CTX_ctrl(k->gcm, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1)
		fail("AES-256-GCM");
}

void crypto_floor_measure(struct crypto_floor *f)
{
	struct keys k = {};
	EVP_MAC *mac;

	k.p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	k.peer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	k.gen = k.p256 ? EVP_PKEY_CTX_new_from_pkey(NULL, k.p256, NULL) : NULL;
	k.xgen = EVP_PKEY_CTX_new_from_name(NULL, "X25519", NULL);
	k.gcm = EVP_CIPHER_CTX_new();
	k.cfb = EVP_CIPHER_CTX_new();
	k.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	k.md = EVP_MD_CTX_new();
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	k.hmac = mac ? EVP_MAC_CTX_new(mac) : NULL;
	if (!k.p256 || !k.peer || !k.gen || EVP_PKEY_keygen_init(k.gen) != 1 || !k.xgen ||
	    EVP_PKEY_keygen_init(k.xgen) != 1 || !k.gcm || EVP_EncryptInit_ex(k.gcm, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    !k.cfb || EVP_EncryptInit_ex(k.cfb, EVP_aes_128_cfb128(), NULL, NULL, NULL) != 1 || !k.sha256 || !k.md ||
	    !k.hmac || EVP_MAC_CTX_set_params(k.hmac, (OSSL_PARAM[]){ OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
									OSSL_PARAM_construct_end() }) != 1)
		fail("setting up");
	memset(k.msg, 0x5a, sizeof(k.msg));
	sign(&k);
	struct op ops[] = { { sign, 100, 0 },	  { verify, 100, 0 }, { ecdh, 100, 0 },	   { cred_sym, 1000, 0 },
			    { x25519, 100, 0 }, { extend, 10000, 0 }, { gcm, 100, 0 } };
	time_ops(ops, ELEMENTSOF(ops), &k);
	f->sign = ops[0].t;
	f->verify = ops[1].t;
	f->ecdh = ops[2].t;
	f->cred_sym = ops[3].t;
	f->tls = ops[4].t + f->sign;
	f->extend = ops[5].t;
	f->gcm_byte = ops[6].t / (double)sizeof(k.block);
	EVP_CIPHER_CTX_free(k.gcm);
	EVP_CIPHER_CTX_free(k.cfb);
	EVP_MD_CTX_free(k.md);
	EVP_MD_free(k.sha256);
	EVP_MAC_CTX_free(k.hmac);
	EVP_MAC_free(mac);
	EVP_PKEY_CTX_free(k.xgen);
	EVP_PKEY_CTX_free(k.gen);
	EVP_PKEY_free(k.peer);
	EVP_PKEY_free(k.p256);
}

int crypto_floor_save(const struct crypto_floor *f, const char *path)
{
	FILE *o = fopen(path, "we");

	if (!o)
		return -errno;
	fprintf(o, "%a %a %a %a %a %a %a\n", f->verify, f->sign, f->ecdh, f->cred_sym, f->tls, f->extend, f->gcm_byte);
	return fclose(o) == 0 ? 0 : -EIO;
}

int crypto_floor_load(struct crypto_floor *f, const char *path)
{
	struct crypto_floor g;
	FILE *i = fopen(path, "re");
	int n;

	if (!i)
		return -errno;
	n = fscanf(i, "%la %la %la %la %la %la %la", &g.verify, &g.sign, &g.ecdh, &g.cred_sym, &g.tls, &g.extend,
		   &g.gcm_byte);
	fclose(i);
	if (n != 7 || !(g.verify > 0 && g.sign > 0 && g.ecdh > 0 && g.cred_sym > 0 && g.tls > 0 && g.extend > 0 &&
			g.gcm_byte > 0))
		return -EINVAL;
	*f = g;
	return 0;
}

double crypto_floor_handshake(const struct crypto_floor *f, double ek_verifies, double extends, double bytes,
			      double tls_per_handshake)
{
	return (2 + ek_verifies) * f->verify + 2 * (f->ecdh + f->cred_sym) + f->sign + extends * f->extend +
	       bytes * f->gcm_byte + tls_per_handshake * f->tls;
}
