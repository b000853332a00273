/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * server-load: many simulated nodes against one keystrap-server, for `make bench-server`.
 *
 * Each node is a software TPM as far as the server can tell: an ECC P-256 EK (TPM EK template,
 * certificate signed by the bench's own EK CA), a restricted ECDSA AK with the TPM's attributes,
 * ActivateCredential done as the TPM does it (ECDH + KDFe seed, KDFa keys, outer HMAC checked,
 * AES-CFB), and TPM2_Quote's TPMS_ATTEST marshalled and signed by the AK. The messages are the
 * protocol's own (common/attest-msg.c), carried by libcurl over kept-alive TLS 1.3 connections.
 *
 *   server-load --url URL --ca FILE --ek-ca-cert FILE --ek-ca-key FILE --nodes N
 *               --approve "CMD" [--concurrency C] [--duration S] [--rate R]... [--max]
 *               [--server-pid PID] [--kill PID --kill-after S --serials FILE]
 *
 * Phases: every node asks to enrol (403), CMD is run once per node with the EK hash and a node
 * id appended (the operator's approval), then load at each fixed offered rate (--rate, open loop:
 * latency counts from each handshake's scheduled start, so queueing shows) and/or at maximum
 * throughput (--max, closed loop: C handshakes always in flight). With --kill the server gets
 * SIGKILL after --kill-after seconds of the --max run, and every certificate received is
 * written to --serials (serial in hex, as the audit record names it).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include "attest-msg.h"
#include "credential.h"
#include "encode.h"
#include "macro.h"
#include "ossl.h"
#include "pcr.h"
#include "tpmpub.h"

#define MAX_SLOTS 512

struct node {
	EVP_PKEY *ek, *ak;
	struct tpm_pub ek_pub, ak_pub;
	uint8_t ek_pub_raw[sizeof(TPM2B_PUBLIC)]; /* marshalled, as the finish repeats it */
	size_t ek_pub_raw_size;
	char *start_json;
	char csr[ATTEST_CSR_MAX + 1];
	uint8_t *spki;
	size_t spki_size;
	char ek_hash[65];
};

enum slot_state { IDLE, STARTING, FINISHING };

struct slot {
	CURL *easy;
	enum slot_state state;
	struct node *node;
	char *body; /* what is being sent */
	char *resp;
	size_t resp_size;
	double sched, sent;
};

struct stats {
	bool measure;    /* false: enrollment, nothing timed */
	double *hs, *rq; /* handshake and request latencies, seconds */
	size_t n_hs, n_rq, hs_cap, rq_cap;
	size_t errors, transport;
	size_t dropped; /* open loop: scheduled handshakes never started, the backlog being full */
	int last_status;
	char last_error[256];
};

static struct {
	const char *url, *ca;
	struct node *nodes;
	size_t n_nodes, next_node;
	const struct pcr_bank *bank;
	FILE *serials;
	CURLM *multi;
	struct slot slots[MAX_SLOTS];
	int n_slots;
} G;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) __attribute__((noreturn));
static void die(const char *what)
{
	fprintf(stderr, "server-load: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/*
 * The simulated PCR values: zeros, what a TPM reports before anything extended them, so that
 * the (absent) event logs replay to them. The bench configures them as the reference values.
 */
static void pcr_value(int i, uint8_t *out, size_t size)
{
	(void)i;
	memset(out, 0, size);
}

static void ecc_xy(EVP_PKEY *key, TPMS_ECC_POINT *p)
{
	uint8_t pub[65];
	size_t n = 0;

	if (!EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub), &n) ||
	    n != 65 || pub[0] != 4)
		die("P-256 public key");
	p->x.size = p->y.size = 32;
	memcpy(p->x.buffer, pub + 1, 32);
	memcpy(p->y.buffer, pub + 33, 32);
}

/* The public area a TPM would report for this key, marshalled, and parsed back as the server does. */
static void tpm_public(EVP_PKEY *key, bool ek, uint8_t *buf, size_t max, size_t *size, struct tpm_pub *ret)
{
	/* TCG EK Credential Profile: PolicySecret(TPM_RH_ENDORSEMENT). */
	static const uint8_t ek_policy[32] = { 0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
					       0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
					       0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa };
	TPM2B_PUBLIC p = { 0 };
	TPMT_PUBLIC *a = &p.publicArea;

	a->type = TPM2_ALG_ECC;
	a->nameAlg = TPM2_ALG_SHA256;
	a->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	a->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	if (ek) {
		a->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
				      TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
		a->authPolicy.size = 32;
		memcpy(a->authPolicy.buffer, ek_policy, 32);
		a->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
		a->parameters.eccDetail.symmetric.keyBits.aes = 128;
		a->parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
		a->parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
	} else {
		a->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
				      TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
		a->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
		a->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
		a->parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
	}
	ecc_xy(key, &a->unique.ecc);
	*size = 0;
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(&p, buf, max, size) != 0 || tpm_pub_parse(buf, *size, ret) < 0)
		die("marshalling a public area");
}

static void ek_cert(EVP_PKEY *ek, X509 *ca, EVP_PKEY *ca_key, uint8_t *der, size_t max, size_t *size)
{
	X509 *x = X509_new();
	uint8_t serial[16];
	BIGNUM *bn;
	uint8_t *p = der;
	int n;

	RAND_bytes(serial, sizeof(serial));
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!x || !bn || X509_set_version(x, X509_VERSION_3) != 1 ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) || !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 86400) ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1 || X509_set_pubkey(x, ek) != 1 ||
	    X509_sign(x, ca_key, EVP_sha256()) <= 0)
		die("signing an EK certificate");
	n = i2d_X509(x, NULL);
	if (n <= 0 || (size_t)n > max || i2d_X509(x, &p) != n)
		die("encoding an EK certificate");
	*size = (size_t)n;
	BN_free(bn);
	X509_free(x);
}

static void csr_make(EVP_PKEY *key, char *pem, size_t max)
{
	X509_REQ *req = X509_REQ_new();
	BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *mem;

	if (!req || !bio || X509_REQ_set_version(req, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
				       (const unsigned char *)"keystrap-node", -1, -1, 0) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0 ||
	    PEM_write_bio_X509_REQ(bio, req) != 1)
		die("making a CSR");
	BIO_get_mem_ptr(bio, &mem);
	if (mem->length >= max)
		die("CSR too large");
	memcpy(pem, mem->data, mem->length);
	pem[mem->length] = 0;
	X509_REQ_free(req);
	BIO_free(bio);
}

static void node_make(struct node *n, X509 *ca, EVP_PKEY *ca_key)
{
	static struct attest_start st;
	EVP_PKEY *key;
	uint8_t d[32];

	memset(&st, 0, sizeof(st));
	n->ek = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	n->ak = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	/* One node key per node for the whole run: the CSR is the node's, made once (it holds no nonce). */
	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!n->ek || !n->ak || !key)
		die("generating keys");
	snprintf(st.version, sizeof(st.version), "0.1.0");
	tpm_public(n->ek, true, st.ek_pub, sizeof(st.ek_pub), &st.ek_pub_size, &n->ek_pub);
	tpm_public(n->ak, false, st.ak_pub, sizeof(st.ak_pub), &st.ak_pub_size, &n->ak_pub);
	memcpy(n->ek_pub_raw, st.ek_pub, st.ek_pub_size);
	n->ek_pub_raw_size = st.ek_pub_size;
	ek_cert(n->ek, ca, ca_key, st.ek_cert, sizeof(st.ek_cert), &st.ek_cert_size);
	if (attest_start_format(&st, &n->start_json) < 0)
		die("formatting the start message");
	csr_make(key, n->csr, sizeof(n->csr));
	{
		int len = i2d_PUBKEY(key, &n->spki);

		if (len <= 0)
			die("SPKI");
		n->spki_size = (size_t)len;
	}
	EVP_PKEY_free(key);
	/* The registry's key: SHA-256 of the marshalled TPMT_PUBLIC. */
	if (pcr_bank_digest(pcr_bank_by_name("sha256"), st.ek_pub + 2, st.ek_pub_size - 2, d) < 0)
		die("EK hash");
	hex_encode(d, sizeof(d), n->ek_hash);
}

/* TPM2_ActivateCredential for an ECC EK, in software. */
static int activate(const struct node *n, const struct attest_challenge *ch, uint8_t *secret, size_t *secret_size)
{
	TPM2B_ID_OBJECT blob = { 0 };
	TPM2B_ENCRYPTED_SECRET enc = { 0 };
	TPMS_ECC_POINT point = { 0 };
	struct tpm_pub eph = { .area = n->ek_pub.area };
	EVP_PKEY *peer = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_CIPHER_CTX *c = NULL;
	uint8_t z[32], seed[32], sym[16], hkey[32], mac[32], plain[64];
	size_t zs = sizeof(z), off = 0, ms = 0, cs;
	const uint8_t *integrity, *cipher;
	int r = -EBADMSG, outl = 0;

	if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(ch->credential_blob, ch->credential_blob_size, &off, &blob) != 0)
		return r;
	off = 0;
	if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(ch->credential_seed, ch->credential_seed_size, &off, &enc) != 0)
		return r;
	off = 0;
	if (Tss2_MU_TPMS_ECC_POINT_Unmarshal(enc.secret, enc.size, &off, &point) != 0)
		return r;
	eph.area.unique.ecc = point;
	if (tpm_pub_to_evp(&eph, &peer) < 0)
		return r;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, n->ek, NULL);
	if (!ctx || EVP_PKEY_derive_init(ctx) <= 0 || EVP_PKEY_derive_set_peer_ex(ctx, peer, 0) <= 0 ||
	    EVP_PKEY_derive(ctx, z, &zs) <= 0 || zs != 32)
		goto out;
	if (tpm_kdfe(TPM2_ALG_SHA256, z, zs, "IDENTITY", point.x.buffer, point.x.size,
		     n->ek_pub.area.unique.ecc.x.buffer, 32, seed, 256) < 0 ||
	    tpm_kdfa(TPM2_ALG_SHA256, seed, 32, "STORAGE", n->ak_pub.name.name, n->ak_pub.name.size, NULL, 0, sym,
		     128) < 0 ||
	    tpm_kdfa(TPM2_ALG_SHA256, seed, 32, "INTEGRITY", NULL, 0, NULL, 0, hkey, 256) < 0)
		goto out;
	/* credentialBlob = TPM2B(outerHMAC) || encIdentity */
	if (blob.size < 2 + 32 + 3 || (blob.credential[0] << 8 | blob.credential[1]) != 32)
		goto out;
	integrity = blob.credential + 2;
	cipher = integrity + 32;
	cs = blob.size - 34;
	if (cs > sizeof(plain))
		goto out;
	{
		unsigned int ml = 0;
		uint8_t buf[sizeof(plain) + sizeof(n->ak_pub.name.name)];

		memcpy(buf, cipher, cs);
		memcpy(buf + cs, n->ak_pub.name.name, n->ak_pub.name.size);
		if (!HMAC(EVP_sha256(), hkey, 32, buf, cs + n->ak_pub.name.size, mac, &ml) || ml != 32)
			goto out;
		ms = ml;
	}
	if (CRYPTO_memcmp(mac, integrity, ms) != 0) {
		r = -EKEYREJECTED; /* as the TPM: TPM_RC_INTEGRITY */
		goto out;
	}
	c = EVP_CIPHER_CTX_new();
	if (!c || !EVP_DecryptInit_ex(c, EVP_aes_128_cfb128(), NULL, sym, (const uint8_t[16]){ 0 }) ||
	    !EVP_DecryptUpdate(c, plain, &outl, cipher, (int)cs) || (size_t)outl != cs)
		goto out;
	*secret_size = (size_t)(plain[0] << 8 | plain[1]);
	if (*secret_size + 2 != cs || *secret_size > ATTEST_SECRET_SIZE)
		goto out;
	memcpy(secret, plain + 2, *secret_size);
	r = 0;
out:
	OPENSSL_cleanse(seed, sizeof(seed));
	OPENSSL_cleanse(z, sizeof(z));
	OPENSSL_cleanse(plain, sizeof(plain));
	EVP_CIPHER_CTX_free(c);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	return r;
}

/* TPM2_Quote in software: TPMS_ATTEST over the requested PCRs, ECDSA-signed by the AK. */
static int quote(const struct node *n, const struct attest_challenge *ch, const uint8_t extra[32],
		 struct attest_finish *f)
{
	static uint64_t clock_ms = 1000000;
	TPMS_ATTEST a = { 0 };
	TPMT_SIGNATURE sig = { 0 };
	TPM2B_NAME parent;
	uint8_t values[PCR_COUNT * PCR_DIGEST_MAX], der[80];
	size_t nv = 0, off = 0, dl = sizeof(der);
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *es = NULL;
	const BIGNUM *r, *s;
	const unsigned char *cp;
	int ret = -EIO;

	a.magic = TPM2_GENERATED_VALUE;
	a.type = TPM2_ST_ATTEST_QUOTE;
	tpm_name_hierarchy(TPM2_RH_ENDORSEMENT, &parent);
	if (tpm_name_qualify(&parent, &n->ak_pub.name, &a.qualifiedSigner) < 0)
		return -EIO;
	a.extraData.size = 32;
	memcpy(a.extraData.buffer, extra, 32);
	a.clockInfo.clock = clock_ms++;
	a.clockInfo.resetCount = 1;
	a.clockInfo.restartCount = 0;
	a.clockInfo.safe = 1;
	a.firmwareVersion = 0x2020111000000000ULL;
	a.attested.quote.pcrSelect.count = 1;
	a.attested.quote.pcrSelect.pcrSelections[0].hash = ch->bank->alg;
	a.attested.quote.pcrSelect.pcrSelections[0].sizeofSelect = 3;
	for (int i = 0; i < PCR_COUNT; i++)
		if (ch->mask & (1u << i)) {
			a.attested.quote.pcrSelect.pcrSelections[0].pcrSelect[i / 8] |= (uint8_t)(1u << (i % 8));
			pcr_value(i, f->pcr_values[i], ch->bank->size);
			memcpy(values + nv, f->pcr_values[i], ch->bank->size);
			nv += ch->bank->size;
		}
	a.attested.quote.pcrDigest.size = 32;
	if (pcr_bank_digest(pcr_bank_by_name("sha256"), values, nv, a.attested.quote.pcrDigest.buffer) < 0 ||
	    Tss2_MU_TPMS_ATTEST_Marshal(&a, f->attest, sizeof(f->attest), &off) != 0)
		return -EIO;
	f->attest_size = off;
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, n->ak) != 1 ||
	    EVP_DigestSign(md, der, &dl, f->attest, f->attest_size) != 1)
		goto out;
	cp = der;
	es = d2i_ECDSA_SIG(NULL, &cp, (long)dl);
	if (!es)
		goto out;
	ECDSA_SIG_get0(es, &r, &s);
	sig.sigAlg = TPM2_ALG_ECDSA;
	sig.signature.ecdsa.hash = TPM2_ALG_SHA256;
	sig.signature.ecdsa.signatureR.size = sig.signature.ecdsa.signatureS.size = 32;
	if (BN_bn2binpad(r, sig.signature.ecdsa.signatureR.buffer, 32) != 32 ||
	    BN_bn2binpad(s, sig.signature.ecdsa.signatureS.buffer, 32) != 32)
		goto out;
	off = 0;
	if (Tss2_MU_TPMT_SIGNATURE_Marshal(&sig, f->signature, sizeof(f->signature), &off) != 0)
		goto out;
	f->signature_size = off;
	ret = 0;
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return ret;
}

static int answer(const struct node *n, const char *json, size_t size, char **ret)
{
	static struct attest_challenge ch;
	static struct attest_finish f;
	uint8_t secret[ATTEST_SECRET_SIZE], extra[32];
	size_t ss = 0;
	char why[ATTEST_REASON_MAX];
	int r;

	memset(&f, 0, sizeof(f));
	if (attest_challenge_parse(json, size, &ch, why) < 0)
		return -EBADMSG;
	if ((r = activate(n, &ch, secret, &ss)) < 0)
		return r;
	r = attest_proof(secret, ss, ch.nonce, f.proof);
	OPENSSL_cleanse(secret, sizeof(secret));
	if (r < 0 || (r = attest_extra_data(ch.nonce, f.proof, n->spki, n->spki_size, extra)) < 0)
		return r;
	if ((r = quote(n, &ch, extra, &f)) < 0)
		return r;
	memcpy(f.session, ch.session, sizeof(f.session));
	f.bank = ch.bank;
	f.mask = ch.mask;
	memcpy(f.csr, n->csr, sizeof(f.csr));
	memcpy(f.ek_pub, n->ek_pub_raw, n->ek_pub_raw_size);
	f.ek_pub_size = n->ek_pub_raw_size;
	return attest_finish_format(&f, ret);
}

/* The issued certificate's serial, hex, as the server's audit record names it. */
static int cert_serial(const char *json, size_t size, char serial[41])
{
	static struct attest_result res;
	char why[ATTEST_REASON_MAX];
	uint8_t b[20];
	BIO *bio;
	X509 *x;
	BIGNUM *bn;
	int r = -EBADMSG;

	if (attest_result_parse(json, size, &res, why) < 0)
		return r;
	bio = BIO_new_mem_buf(res.certificate, -1);
	x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	bn = x ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL) : NULL;
	if (bn && BN_bn2binpad(bn, b, sizeof(b)) == sizeof(b)) {
		hex_encode(b, sizeof(b), serial);
		r = 0;
	}
	BN_free(bn);
	X509_free(x);
	BIO_free(bio);
	attest_result_done(&res);
	return r;
}

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
	struct slot *s = userdata;
	char *b = realloc(s->resp, s->resp_size + size * n + 1);

	if (!b)
		return 0;
	memcpy(b + s->resp_size, p, size * n);
	s->resp = b;
	s->resp_size += size * n;
	b[s->resp_size] = 0;
	return size * n;
}

static void post(struct slot *s, const char *path, char *body)
{
	char url[512];

	snprintf(url, sizeof(url), "%s%s", G.url, path);
	free(s->body);
	s->body = body;
	s->resp_size = 0;
	curl_easy_setopt(s->easy, CURLOPT_URL, url);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	s->sent = now();
	curl_multi_add_handle(G.multi, s->easy);
}

static void slot_start(struct slot *s, double sched)
{
	s->node = &G.nodes[G.next_node++ % G.n_nodes];
	s->sched = sched;
	s->state = STARTING;
	post(s, "/v1/attest/start", strdup(s->node->start_json));
}

static void push(double **a, size_t *n, size_t *cap, double v)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 65536;
		*a = realloc(*a, *cap * sizeof(double));
		if (!*a)
			die("out of memory");
	}
	(*a)[(*n)++] = v;
}

static void fail(struct stats *st, struct slot *s, int status, const char *why)
{
	st->errors++;
	st->last_status = status;
	snprintf(st->last_error, sizeof(st->last_error), "%s", why);
	s->state = IDLE;
}

/* A transfer ended: the next step of its handshake, or the handshake's end. */
static void on_done(struct stats *st, struct slot *s, CURLcode rc)
{
	double t = now();
	long status = 0;
	char *fin = NULL, serial[41];

	curl_multi_remove_handle(G.multi, s->easy);
	if (rc != CURLE_OK) {
		st->transport++;
		fail(st, s, 0, curl_easy_strerror(rc));
		return;
	}
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	if (st->measure)
		push(&st->rq, &st->n_rq, &st->rq_cap, t - s->sent);
	if (s->state == STARTING) {
		if (status != 200) {
			fail(st, s, (int)status, s->resp ? s->resp : "");
			return;
		}
		if (answer(s->node, s->resp, s->resp_size, &fin) < 0) {
			fail(st, s, 0, "cannot answer the challenge");
			return;
		}
		s->state = FINISHING;
		post(s, "/v1/attest/finish", fin);
		return;
	}
	s->state = IDLE;
	if (status != 200) {
		fail(st, s, (int)status, s->resp ? s->resp : "");
		return;
	}
	if (st->measure)
		push(&st->hs, &st->n_hs, &st->hs_cap, t - s->sched);
	if (G.serials && cert_serial(s->resp, s->resp_size, serial) == 0)
		fprintf(G.serials, "%s\n", serial);
}

static void pump(struct stats *st, int timeout_ms)
{
	CURLMsg *m;
	int running, left;

	curl_multi_perform(G.multi, &running);
	while ((m = curl_multi_info_read(G.multi, &left)))
		if (m->msg == CURLMSG_DONE) {
			struct slot *s = NULL;

			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			on_done(st, s, m->data.result);
		}
	if (timeout_ms > 0)
		curl_multi_poll(G.multi, NULL, 0, timeout_ms, NULL);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

/* The server's CPU time so far (user + system), seconds; 0 when unknown. */
static pid_t server_pid;
static double server_cpu(void)
{
	char path[64];
	unsigned long long ut = 0, st = 0;
	FILE *f;
	int n;

	if (server_pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)server_pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	/* Fields 14 and 15; the command name (2) is in parentheses without spaces here. */
	n = fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
	fclose(f);
	return n == 2 ? (double)(ut + st) / (double)sysconf(_SC_CLK_TCK) : 0;
}

static void report(const char *label, struct stats *st, double elapsed, double cpu, double goal_rate,
		   double goal_p99_ms)
{
	double rate = (double)st->n_hs / elapsed;

	qsort(st->hs, st->n_hs, sizeof(double), cmp);
	qsort(st->rq, st->n_rq, sizeof(double), cmp);
	printf("%-14s %7zu handshakes in %5.1f s = %7.1f/s; handshake p50 %6.1f ms p99 %7.1f ms; request p50 %5.1f ms "
	       "p99 %6.1f ms; %zu failed",
	       label, st->n_hs, elapsed, rate, 1e3 * pct(st->hs, st->n_hs, 0.5), 1e3 * pct(st->hs, st->n_hs, 0.99),
	       1e3 * pct(st->rq, st->n_rq, 0.5), 1e3 * pct(st->rq, st->n_rq, 0.99), st->errors);
	if (st->errors)
		printf(" (last: HTTP %d %.120s)", st->last_status, st->last_error);
	if (st->dropped)
		printf("; %zu not started (the offered rate outran the server by a backlog of 4096)", st->dropped);
	putchar('\n');
	if (cpu > 0 && st->n_hs)
		printf("               server CPU %.2f ms per handshake (%.0f%% of one core), i.e. at most %.0f handshakes/s "
		       "per core\n",
		       1e3 * cpu / (double)st->n_hs, 100 * cpu / elapsed, (double)st->n_hs / cpu);
	if (goal_rate > 0)
		printf("               goal >= %.0f handshakes/s: %.2fx of goal\n", goal_rate, rate / goal_rate);
	if (goal_p99_ms > 0)
		printf("               goal handshake p99 < %.0f ms: %.2fx of the budget used\n", goal_p99_ms,
		       1e3 * pct(st->hs, st->n_hs, 0.99) / goal_p99_ms);
	fflush(stdout);
}

static void drain(struct stats *st)
{
	for (bool busy = true; busy;) {
		busy = false;
		for (int i = 0; i < G.n_slots; i++)
			busy |= G.slots[i].state != IDLE;
		if (busy)
			pump(st, 5);
	}
}

/* Open loop at rate/s (rate 0: closed loop, every slot always busy) for duration seconds. */
static void run(const char *label, double rate, double duration, pid_t kill_pid, double kill_after, double goal_rate,
		double goal_p99)
{
	struct stats st = { .measure = true };
	double t0 = now(), cpu0 = server_cpu(), next = t0, end = t0 + duration, backlog_t[4096];
	size_t backlog = 0, bhead = 0;

	while (now() < end) {
		double t = now();

		if (kill_pid > 0 && t - t0 >= kill_after) {
			kill(kill_pid, SIGKILL);
			printf("               server (pid %d) killed with SIGKILL after %.1f s, %zu handshakes in flight\n",
			       (int)kill_pid, t - t0, (size_t)G.n_slots);
			break; /* what was in flight ends in errors below; nothing new starts */
		}
		if (rate > 0)
			for (; next <= t; next += 1.0 / rate) {
				if (backlog < ELEMENTSOF(backlog_t))
					backlog_t[(bhead + backlog++) % ELEMENTSOF(backlog_t)] = next;
				else
					st.dropped++;
			}
		for (int i = 0; i < G.n_slots; i++) {
			struct slot *s = &G.slots[i];

			if (s->state != IDLE)
				continue;
			if (rate <= 0)
				slot_start(s, now());
			else if (backlog) {
				slot_start(s, backlog_t[bhead]);
				bhead = (bhead + 1) % ELEMENTSOF(backlog_t);
				backlog--;
			}
		}
		pump(&st, rate > 0 ? 1 : 2);
	}
	drain(&st);
	report(label, &st, now() - t0, kill_pid > 0 ? 0 : server_cpu() - cpu0, goal_rate, goal_p99);
	free(st.hs);
	free(st.rq);
}

static void enroll(const char *approve)
{
	struct stats st = { 0 };
	size_t refused = 0;

	for (size_t i = 0; i < G.n_nodes; i += (size_t)G.n_slots) {
		for (int k = 0; k < G.n_slots && i + (size_t)k < G.n_nodes; k++)
			slot_start(&G.slots[k], now());
		drain(&st);
	}
	refused = st.errors;
	if (refused != G.n_nodes || st.last_status != 403)
		die("the enrollment requests were not all answered 403");
	for (size_t i = 0; i < G.n_nodes; i++) {
		char cmd[1024];

		snprintf(cmd, sizeof(cmd), "%s %s --id node%zu-%d.bench >/dev/null", approve, G.nodes[i].ek_hash, i, (int)getpid());
		if (system(cmd) != 0)
			die("approving a node failed");
	}
	printf("enrolled       %zu simulated nodes (software EK/AK), each approved by the operator command\n", G.n_nodes);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },	 { "ca", required_argument, NULL, 'c' },
		{ "ek-ca-cert", required_argument, NULL, 'E' }, { "ek-ca-key", required_argument, NULL, 'K' },
		{ "nodes", required_argument, NULL, 'n' },	 { "approve", required_argument, NULL, 'a' },
		{ "concurrency", required_argument, NULL, 'C' }, { "duration", required_argument, NULL, 'd' },
		{ "rate", required_argument, NULL, 'r' },	 { "max", no_argument, NULL, 'm' },
		{ "kill", required_argument, NULL, 'k' },	 { "kill-after", required_argument, NULL, 'A' },
		{ "serials", required_argument, NULL, 's' },	 { "server-pid", required_argument, NULL, 'p' },
		{}
	};
	const char *ek_ca_cert = NULL, *ek_ca_key = NULL, *approve = NULL, *serials = NULL;
	double duration = 10, rates[4], kill_after = 0;
	size_t n_rates = 0;
	bool max = false;
	pid_t kill_pid = 0;
	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL;
	FILE *f;
	int o;

	G.n_slots = 32;
	G.n_nodes = 256;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) >= 0)
		switch (o) {
		case 'u': G.url = optarg; break;
		case 'c': G.ca = optarg; break;
		case 'E': ek_ca_cert = optarg; break;
		case 'K': ek_ca_key = optarg; break;
		case 'n': G.n_nodes = strtoul(optarg, NULL, 10); break;
		case 'a': approve = optarg; break;
		case 'C': G.n_slots = atoi(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'r':
			if (n_rates == ELEMENTSOF(rates))
				return 2;
			rates[n_rates++] = atof(optarg);
			break;
		case 'm': max = true; break;
		case 'k': kill_pid = atoi(optarg); break;
		case 'A': kill_after = atof(optarg); break;
		case 's': serials = optarg; break;
		case 'p': server_pid = atoi(optarg); break;
		default: return 2;
		}
	if (!G.url || !G.ca || !ek_ca_cert || !ek_ca_key || !approve || G.n_nodes == 0 || G.n_slots < 1 ||
	    G.n_slots > MAX_SLOTS) {
		fprintf(stderr, "usage: server-load --url URL --ca FILE --ek-ca-cert FILE --ek-ca-key FILE --approve CMD "
				"[--nodes N] [--concurrency C] [--duration S] [--rate R] [--max] [--kill PID --kill-after S "
				"--serials FILE]\n");
		return 2;
	}
	if (!(f = fopen(ek_ca_cert, "re")) || !(ca = PEM_read_X509(f, NULL, NULL, NULL)))
		die("reading the EK CA certificate");
	fclose(f);
	if (!(f = fopen(ek_ca_key, "re")) || !(ca_key = PEM_read_PrivateKey(f, NULL, NULL, NULL)))
		die("reading the EK CA key");
	fclose(f);
	if (serials && !(G.serials = fopen(serials, "we")))
		die("opening --serials");

	G.nodes = calloc(G.n_nodes, sizeof(*G.nodes));
	if (!G.nodes)
		die("out of memory");
	for (size_t i = 0; i < G.n_nodes; i++)
		node_make(&G.nodes[i], ca, ca_key);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	G.multi = curl_multi_init();
	curl_multi_setopt(G.multi, CURLMOPT_MAXCONNECTS, (long)G.n_slots);
	for (int i = 0; i < G.n_slots; i++) {
		static struct curl_slist *h;
		CURL *e = curl_easy_init();

		if (!h)
			h = curl_slist_append(curl_slist_append(NULL, "Content-Type: application/json"), "Expect:");
		if (!e)
			die("curl");
		G.slots[i].easy = e;
		curl_easy_setopt(e, CURLOPT_CAINFO, G.ca);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &G.slots[i]);
		curl_easy_setopt(e, CURLOPT_PRIVATE, &G.slots[i]);
		curl_easy_setopt(e, CURLOPT_TIMEOUT, 15L);
		curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
		G.slots[i].state = IDLE;
	}
	enroll(approve);
	for (size_t i = 0; i < n_rates; i++) {
		char label[32];

		snprintf(label, sizeof(label), "at %.0f/s", rates[i]);
		run(label, rates[i], duration, 0, 0, 0, rates[i] >= 500 ? 50 : 0);
	}
	if (max)
		run(kill_pid ? "max + SIGKILL" : "max", 0, duration, kill_pid, kill_after, kill_pid ? 0 : 2000, 0);
	if (G.serials && fclose(G.serials) != 0)
		die("writing --serials");
	return 0;
}
