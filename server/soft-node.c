/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <tss2/tss2_mu.h>

#include "credential.h"
#include "encode.h"
#include "evidence.h"
#include "ossl.h"
#include "payload.h"
#include "pcr.h"
#include "secbuf.h"
#include "soft-node.h"

OSSL_DEFINE_FREEP(X509_REQ, X509_REQ_free)
OSSL_DEFINE_FREEP(BIO, BIO_free)
OSSL_DEFINE_FREEP(ECDSA_SIG, ECDSA_SIG_free)

static int ecc_xy(EVP_PKEY *key, TPMS_ECC_POINT *p)
{
	uint8_t pub[65];
	size_t n = 0;

	if (!EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub), &n) ||
	    n != 65 || pub[0] != 4)
		return -EINVAL;
	p->x.size = p->y.size = 32;
	memcpy(p->x.buffer, pub + 1, 32);
	memcpy(p->y.buffer, pub + 33, 32);
	return 0;
}

/* The public area a TPM would report for this key, marshalled, and parsed back as the server does. */
static int tpm_public(EVP_PKEY *key, bool ek, uint8_t *buf, size_t max, size_t *size, struct tpm_pub *ret)
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
	if (ecc_xy(key, &a->unique.ecc) < 0)
		return -EINVAL;
	*size = 0;
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(&p, buf, max, size) != 0 || tpm_pub_parse(buf, *size, ret) < 0)
		return -EIO;
	return 0;
}

int soft_node_ek_cert(EVP_PKEY *ek, X509 *ca, EVP_PKEY *ca_key, int days, uint8_t *der, size_t max, size_t *ret_size)
{
	_cleanup_(X509_freep) X509 *x = X509_new();
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	uint8_t serial[16];
	uint8_t *p = der;
	int n;

	if (RAND_bytes(serial, sizeof(serial)) != 1)
		return -EIO;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!x || !bn || X509_set_version(x, X509_VERSION_3) != 1 ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) || !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 86400L * days) ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1 || X509_set_pubkey(x, ek) != 1 ||
	    X509_sign(x, ca_key, EVP_sha256()) <= 0)
		return -EIO;
	n = i2d_X509(x, NULL);
	if (n <= 0 || (size_t)n > max)
		return -EMSGSIZE;
	if (i2d_X509(x, &p) != n)
		return -EIO;
	*ret_size = (size_t)n;
	return 0;
}

static int csr_make(EVP_PKEY *key, char *pem, size_t max)
{
	_cleanup_(X509_REQ_freep) X509_REQ *req = X509_REQ_new();
	_cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *mem;

	if (!req || !bio || X509_REQ_set_version(req, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
				       (const unsigned char *)"keystrap-node", -1, -1, 0) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0 ||
	    PEM_write_bio_X509_REQ(bio, req) != 1)
		return -EIO;
	BIO_get_mem_ptr(bio, &mem);
	if (mem->length >= max)
		return -EMSGSIZE;
	memcpy(pem, mem->data, mem->length);
	pem[mem->length] = 0;
	return 0;
}

void soft_node_free(struct soft_node *n)
{
	if (!n)
		return;
	EVP_PKEY_free(n->ek);
	EVP_PKEY_free(n->ak);
	EVP_PKEY_free(n->key);
	free(n->start_json);
	OPENSSL_free(n->spki);
	free(n->event_log);
	free(n->cel_log);
	free(n);
}

int soft_node_new(EVP_PKEY *ek, const uint8_t *ek_cert, size_t ek_cert_size, struct soft_node **ret)
{
	_cleanup_(soft_node_freep) struct soft_node *n = calloc(1, sizeof(*n));
	_cleanup_free_ struct attest_start *st = calloc(1, sizeof(*st));
	uint8_t d[32];
	int len, r;

	if (!n || !st)
		return -ENOMEM;
	pcr_replay_init(&n->replay, PCR_BANKS_ALL, 0); /* no logs: what a TPM started at locality 0 holds */
	if (ek_cert_size > sizeof(st->ek_cert))
		return -EMSGSIZE;
	if (!EVP_PKEY_up_ref(ek))
		return -EIO;
	n->ek = ek;
	n->ak = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	/* The CSR is the node's, made once (it holds no nonce). */
	n->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!n->ak || !n->key)
		return -EIO;
	snprintf(st->version, sizeof(st->version), "%s", KEYSTRAP_VERSION);
	if ((r = tpm_public(n->ek, true, st->ek_pub, sizeof(st->ek_pub), &st->ek_pub_size, &n->ek_pub)) < 0 ||
	    (r = tpm_public(n->ak, false, st->ak_pub, sizeof(st->ak_pub), &st->ak_pub_size, &n->ak_pub)) < 0)
		return r;
	memcpy(n->ek_pub_raw, st->ek_pub, st->ek_pub_size);
	n->ek_pub_raw_size = st->ek_pub_size;
	memcpy(st->ek_cert, ek_cert, ek_cert_size);
	st->ek_cert_size = ek_cert_size;
	if ((r = attest_start_format(st, &n->start_json)) < 0 || (r = csr_make(n->key, n->csr, sizeof(n->csr))) < 0)
		return r;
	len = i2d_PUBKEY(n->key, &n->spki);
	if (len <= 0)
		return -EIO;
	n->spki_size = (size_t)len;
	if ((r = pcr_bank_digest(pcr_bank_by_name("sha256"), st->ek_pub + 2, st->ek_pub_size - 2, d)) < 0)
		return r;
	hex_encode(d, sizeof(d), n->ek_hash);
	*ret = TAKE_PTR(n);
	return 0;
}

/* TPM2_ActivateCredential for an ECC EK, in software. */
static int activate(const struct soft_node *n, const uint8_t *credential_blob, size_t credential_blob_size,
		    const uint8_t *credential_seed, size_t credential_seed_size, uint8_t *secret, size_t *secret_size)
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

	if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(credential_blob, credential_blob_size, &off, &blob) != 0)
		return r;
	off = 0;
	if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(credential_seed, credential_seed_size, &off, &enc) != 0)
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

/* TPM2_Quote in software: TPMS_ATTEST over the requested PCRs (their values: what the logs replay to), ECDSA-signed by the AK. */
static int quote(const struct soft_node *n, const struct attest_challenge *ch, const uint8_t extra[32],
		 const struct pcr_replay *pcrs, struct attest_finish *f)
{
	size_t b = pcr_bank_index(ch->bank);

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
			memcpy(f->pcr_values[i], pcrs->values[b][i], ch->bank->size);
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

int soft_node_answer(const struct soft_node *n, const char *json, size_t size, bool witness, uint64_t log_size,
		     char **ret)
{
	_cleanup_free_ struct attest_challenge *ch = calloc(1, sizeof(*ch));
	_cleanup_free_ struct attest_finish *f = calloc(1, sizeof(*f));
	uint8_t secret[ATTEST_SECRET_SIZE], extra[32];
	size_t ss = 0;
	char why[ATTEST_REASON_MAX];
	int r;

	if (!ch || !f)
		return -ENOMEM;
	if (attest_challenge_parse(json, size, ch, why) < 0)
		return -EBADMSG;
	if ((r = activate(n, ch->credential_blob, ch->credential_blob_size, ch->credential_seed,
			     ch->credential_seed_size, secret, &ss)) < 0)
		return r;
	r = attest_proof(secret, ss, ch->nonce, f->proof);
	OPENSSL_cleanse(secret, sizeof(secret));
	if (r < 0 || (r = attest_extra_data(ch->nonce, f->proof, n->spki, n->spki_size, extra)) < 0)
		return r;
	/* The logs are sent as they are; the PCRs quoted are what they replay to in the bank asked for. */
	f->bank = ch->bank;
	f->mask = ch->mask;
	f->event_log = n->event_log;
	f->event_log_size = n->event_log_size;
	f->cel_log = n->cel_log;
	f->cel_log_size = n->cel_log_size;
	if ((r = quote(n, ch, extra, &n->replay, f)) < 0)
		return r;
	memcpy(f->session, ch->session, sizeof(f->session));
	memcpy(f->csr, n->csr, sizeof(f->csr));
	memcpy(f->ek_pub, n->ek_pub_raw, n->ek_pub_raw_size);
	f->ek_pub_size = n->ek_pub_raw_size;
	f->witness = witness;
	f->log_size = log_size;
	return attest_finish_format(f, ret);
}

int soft_node_open(const struct soft_node *n, const char *session, const struct attest_payload *p,
		   struct node_secret **ret, size_t *ret_n)
{
	_cleanup_secbuf_ struct secbuf *key = secbuf_new(ATTEST_SECRET_SIZE), *plain = NULL;
	size_t ks = 0;
	int r;

	if (!key)
		return -ENOMEM;
	if ((r = activate(n, p->credential_blob, p->credential_blob_size, p->credential_seed, p->credential_seed_size,
			  key->data, &ks)) < 0)
		return r;
	if (ks != PAYLOAD_KEY_SIZE)
		return -EBADMSG;
	if ((r = payload_decrypt(key->data, session, p->iv, p->ciphertext, p->ciphertext_size, &plain)) < 0)
		return r;
	return payload_decode(plain->data, plain->size, ret, ret_n);
}

int soft_node_set_logs(struct soft_node *n, const uint8_t *event_log, size_t event_log_size, const char *cel_log,
		       size_t cel_log_size)
{
	_cleanup_free_ uint8_t *e = event_log_size ? malloc(event_log_size) : NULL;
	_cleanup_free_ char *c = cel_log_size ? malloc(cel_log_size + 1) : NULL;
	_cleanup_(evidence_done) struct evidence ev = {};
	struct attest_finish *f;
	char why[ATTEST_REASON_MAX];
	int r;

	if ((event_log_size && !e) || (cel_log_size && !c) || !(f = calloc(1, sizeof(*f))))
		return -ENOMEM;
	if (event_log_size)
		memcpy(e, event_log, event_log_size);
	if (cel_log_size) {
		memcpy(c, cel_log, cel_log_size);
		c[cel_log_size] = 0;
	}
	/* Refused here if the server would refuse them as unparsable; replayed once, in every bank. */
	*f = (struct attest_finish){ .event_log = e, .event_log_size = event_log_size, .cel_log = c, .cel_log_size = cel_log_size };
	r = evidence_logs_replay(f, PCR_BANKS_ALL, &ev, why);
	free(f);
	if (r < 0)
		return r;
	n->replay = ev.replay;
	free(n->event_log);
	free(n->cel_log);
	n->event_log = TAKE_PTR(e);
	n->event_log_size = event_log_size;
	n->cel_log = TAKE_PTR(c);
	n->cel_log_size = cel_log_size;
	return 0;
}
