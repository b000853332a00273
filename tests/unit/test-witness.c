/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* node/witness.c: a witnessing node's checks of the server's log object, each refusal with
 * its twin, against a log built here (six records, the sixth the attestation's own). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "audit-leaf.h"
#include "macro.h"
#include "merkle.h"
#include "note.h"
#include "secbuf.h"
#include "tap.h"
#include "witness.h"

#define EK "6e9e144efc8cb5d101e56328b03c32482c085fb91cd35866397147a5b6733b30"
#define SERIAL "0102030405060708090a0b0c0d0e0f1011121314"

static merkle_hash tree[4][16];
static struct note_signer *signer;
static char vkey[NOTE_KEY_MAX];

static int get(void *ud, unsigned level, uint64_t index, merkle_hash ret)
{
	(void)ud;
	memcpy(ret, tree[level][index], MERKLE_HASH_SIZE);
	return 0;
}

/* A certificate whose serial is SERIAL: all the check reads of it. */
static char *certificate(void)
{
	static const uint8_t serial[20] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 };
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BIO *b = BIO_new(BIO_s_mem());
	char *pem = NULL, *p;
	long n;

	if (k && x && bn && b && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) && X509_set_pubkey(x, k) &&
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) && X509_gmtime_adj(X509_getm_notAfter(x), 60) &&
	    X509_sign(x, k, EVP_sha256()) && PEM_write_bio_X509(b, x) && (n = BIO_get_mem_data(b, &p)) > 0)
		pem = strndup(p, (size_t)n);
	BIO_free(b);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(k);
	return pem;
}

/* The log of n records (the sixth ours) and its signed checkpoint. */
static char *build(size_t n, struct attest_log *g)
{
	struct merkle_range r = { 0 };
	struct merkle_ref done[MERKLE_PROOF_MAX];
	merkle_hash done_hash[MERKLE_PROOF_MAX], leaf;
	struct checkpoint c = { .time = 1764740000 };
	_cleanup_free_ char *text = NULL;
	char *note = NULL;
	size_t k;

	for (size_t i = 0; i < n; i++) {
		uint8_t b[AUDIT_LEAF_MAX];
		size_t size;

		if (i == 5)
			audit_leaf_encode(6, 1, "127.0.0.1:1", EK, "node1", "attest-finish", "allow",
					  "certificate " SERIAL " issued under policy 1", b, &size);
		else
			audit_leaf_encode((int64_t)i + 1, 1, "p", "", "", "attest-start", "deny", "other", b, &size);
		if (i == 5) {
			memcpy(g->record, b, size);
			g->record_size = size;
			g->index = 5;
		}
		merkle_leaf_hash(b, size, leaf);
		merkle_range_append(&r, leaf, done, done_hash, &k);
		for (size_t j = 0; j < k; j++)
			memcpy(tree[done[j].level][done[j].index], done_hash[j], MERKLE_HASH_SIZE);
	}
	snprintf(c.origin, sizeof(c.origin), "keystrap.test/log");
	c.size = n;
	merkle_range_root(&r, c.root);
	if (checkpoint_format(&c, &text) < 0 || note_sign(signer, text, &note) < 0)
		return NULL;
	return note;
}

/* witness_check, the note it hands back (if any) freed: the check's result. */
static int check(const char *key, const char *held, const char *ek, const struct attest_result *res, char **keep)
{
	char *note = NULL;
	int r = witness_check(key, held, ek, res, &note);

	if (keep && r == 0)
		*keep = note;
	else
		free(note);
	return r;
}

static void test_checks(void)
{
	static struct attest_result res;
	_cleanup_free_ char *held_note = NULL, *cert = certificate(), *out = NULL, *bigger = NULL;
	struct attest_log *g = &res.log, keep;
	char other_key[NOTE_KEY_MAX], why[160];
	_cleanup_secbuf_ struct secbuf *sk = NULL;
	_cleanup_free_ char *note8 = NULL;

	snprintf(res.node_id, sizeof(res.node_id), "node1");
	res.certificate = cert;
	res.has_log = true;
	/* The node held the checkpoint of the log's first 3 records. */
	held_note = build(3, &keep);
	_cleanup_free_ char *cp = build(6, g);
	snprintf(g->checkpoint, sizeof(g->checkpoint), "%s", cp ? cp : "");
	merkle_prove_inclusion(get, NULL, 5, 6, (merkle_hash *)g->inclusion, &g->n_inclusion);
	merkle_prove_consistency(get, NULL, 3, 6, (merkle_hash *)g->consistency, &g->n_consistency);
	g->has_consistency = true;
	keep = *g;

	CHECK(check(vkey, held_note, EK, &res, &out) == 0 && out && streq(out, cp),
	      "the server's log object verifies, and its checkpoint is the one to hold");
	CHECK(check(vkey, NULL, EK, &res, NULL) == 0, "... with no checkpoint held: inclusion only");
	note_key_generate("keystrap.test/log", &sk, other_key, why, sizeof(why));
	CHECK(check(other_key, held_note, EK, &res, NULL) == -EPROTO, "another log key pinned: refused");
	CHECK(check(vkey, held_note, "ff9e144efc8cb5d101e56328b03c32482c085fb91cd35866397147a5b6733b30", &res, NULL) == -EPROTO, "another EK's record: refused");
	snprintf(res.node_id, sizeof(res.node_id), "node2");
	CHECK(check(vkey, held_note, EK, &res, NULL) == -EPROTO, "a reply for another node id: refused");
	snprintf(res.node_id, sizeof(res.node_id), "node1");
	g->inclusion[0][7] ^= 1;
	CHECK(check(vkey, held_note, EK, &res, NULL) == -EPROTO, "an inclusion proof with a bit flipped: refused");
	*g = keep;
	g->index = 4;
	CHECK(check(vkey, held_note, EK, &res, NULL) == -EPROTO, "the record at another index: refused");
	*g = keep;
	g->consistency[g->n_consistency - 1][0] ^= 1;
	CHECK(check(vkey, held_note, EK, &res, NULL) == -EPROTO, "a consistency proof with a bit flipped: refused");
	*g = keep;
	g->has_consistency = false;
	CHECK(check(vkey, held_note, EK, &res, NULL) == -EPROTO,
	      "no consistency proof from the checkpoint held: refused");
	*g = keep;
	/* A held checkpoint larger than the log the server shows (it lost records). */
	note8 = build(8, &keep);
	bigger = note8 ? strdup(note8) : NULL;
	free(build(6, &keep));
	*g = keep;
	g->has_consistency = false;
	CHECK(bigger && check(vkey, bigger, EK, &res, NULL) == -EPROTO,
	      "holding a checkpoint of 8 records against a log of 6: refused");
	*g = keep;
	res.has_log = false;
	CHECK(check(vkey, held_note, EK, &res, NULL) == -EPROTO, "no log object at all: refused");
	res.has_log = true;
	CHECK(check(vkey, held_note, EK, &res, NULL) == 0, "and back as it was, it verifies again");
	res.certificate = NULL;
}

int main(void)
{
	_cleanup_secbuf_ struct secbuf *sk = NULL;
	char why[160];

	if (note_key_generate("keystrap.test/log", &sk, vkey, why, sizeof(why)) < 0 ||
	    note_signer_parse((const char *)sk->data, sk->size, &signer, why, sizeof(why)) < 0)
		return 1;
	test_checks();
	note_signer_free(signer);
	return TAP_DONE();
}
