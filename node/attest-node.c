/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include "attest-node.h"
#include "encode.h"
#include "log.h"
#include "ossl.h"
#include "payload.h"
#include "secbuf.h"
#include "tpmpub.h"

#ifndef KEYSTRAP_VERSION
#define KEYSTRAP_VERSION "0"
#endif

static int marshal_pub(const TPM2B_PUBLIC *pub, uint8_t *buf, size_t max, size_t *ret_size)
{
	struct tpm_pub p;
	int r = tpm_pub_from_tss(pub, &p);

	return r < 0 ? r : tpm_pub_marshal(&p, buf, max, ret_size);
}

/* NV holds the certificate possibly padded: the DER it starts with, exactly. */
static int ek_cert_der(const uint8_t *nv, size_t size, uint8_t *out, size_t max, size_t *ret_size)
{
	const uint8_t *p = nv;
	_cleanup_(X509_freep) X509 *x = d2i_X509(NULL, &p, (long)size);
	size_t n;

	if (!x) {
		ERR_clear_error();
		return -EBADMSG;
	}
	n = (size_t)(p - nv);
	if (n > max)
		return -EMSGSIZE;
	memcpy(out, nv, n);
	*ret_size = n;
	return 0;
}

#define STEP(what, expr)                    \
	do {                                \
		if ((r = (expr)) < 0) {     \
			*ret_what = (what); \
			goto fail;          \
		}                           \
	} while (0)

int attest_node_start(struct tpm *t, enum tpm_ek_kind kind, const uint8_t *ak_unique, ESYS_TR *ret_ek,
		      ESYS_TR *ret_ak, struct attest_start *ret, const char **ret_what)
{
	_cleanup_free_ uint8_t *nv = NULL;
	ESYS_TR ek = ESYS_TR_NONE, ak = ESYS_TR_NONE;
	TPM2B_PUBLIC ek_pub, ak_pub;
	size_t nv_size;
	int r;

	memset(ret, 0, sizeof(*ret));
	snprintf(ret->version, sizeof(ret->version), "%s", KEYSTRAP_VERSION);
	STEP("reading the EK certificate", tpm_ek_cert_read(t, kind, &nv, &nv_size));
	STEP("reading the EK certificate", ek_cert_der(nv, nv_size, ret->ek_cert, sizeof(ret->ek_cert),
						       &ret->ek_cert_size));
	STEP("creating the EK", tpm_ek_create(t, kind, &ek, &ek_pub));
	STEP("creating the AK", tpm_ak_create(t, ak_unique, &ak, &ak_pub));
	STEP("marshalling the EK", marshal_pub(&ek_pub, ret->ek_pub, sizeof(ret->ek_pub), &ret->ek_pub_size));
	STEP("marshalling the AK", marshal_pub(&ak_pub, ret->ak_pub, sizeof(ret->ak_pub), &ret->ak_pub_size));
	*ret_ek = ek;
	*ret_ak = ak;
	return 0;
fail:
	tpm_flush(t, &ek);
	tpm_flush(t, &ak);
	return r;
}

int attest_node_ek_hash(struct tpm *t, enum tpm_ek_kind kind, char ret[2 * TPM_EK_ID_SIZE + 1])
{
	char reason[TPM_PUB_REASON_MAX];
	uint8_t id[TPM_EK_ID_SIZE];
	ESYS_TR ek = ESYS_TR_NONE;
	TPM2B_PUBLIC pub;
	struct tpm_pub p;
	int r;

	assert(t);
	r = tpm_ek_create(t, kind, &ek, &pub);
	tpm_flush(t, &ek);
	if (r < 0)
		return r;
	if ((r = tpm_pub_from_tss(&pub, &p)) < 0)
		return r;
	if ((r = tpm_ek_identity(&p, id, reason)) < 0)
		return log_debug_errno(r, "the EK is no template: %s", reason);
	hex_encode(id, sizeof(id), ret);
	return 0;
}

static int csr_make(EVP_PKEY *key, char *pem, size_t max)
{
	X509_REQ *req = X509_REQ_new();
	BIO *bio = BIO_new(BIO_s_mem());
	BUF_MEM *mem;
	int r = -EIO;

	if (req && bio && X509_REQ_set_version(req, 0) == 1 &&
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
				       (const unsigned char *)"keystrap-node", -1, -1, 0) == 1 &&
	    X509_REQ_set_pubkey(req, key) == 1 && X509_REQ_sign(req, key, EVP_sha256()) > 0 &&
	    PEM_write_bio_X509_REQ(bio, req) == 1) {
		BIO_get_mem_ptr(bio, &mem);
		if (mem->length < max) {
			memcpy(pem, mem->data, mem->length);
			pem[mem->length] = 0;
			r = 0;
		} else
			r = -EMSGSIZE;
	}
	X509_REQ_free(req);
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

static int unmarshal_credential(const uint8_t *b, size_t b_size, const uint8_t *s, size_t s_size,
				TPM2B_ID_OBJECT *blob, TPM2B_ENCRYPTED_SECRET *seed)
{
	size_t off = 0;

	if (Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(b, b_size, &off, blob) != 0 || off != b_size)
		return -EBADMSG;
	off = 0;
	if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(s, s_size, &off, seed) != 0 || off != s_size)
		return -EBADMSG;
	return 0;
}

static int spki_of(EVP_PKEY *key, uint8_t **ret, size_t *ret_size)
{
	int n = i2d_PUBKEY(key, ret);

	if (n <= 0)
		return -EIO;
	*ret_size = (size_t)n;
	return 0;
}

int attest_node_answer(struct tpm *t, ESYS_TR ek, ESYS_TR ak, const struct attest_challenge *ch,
		       struct tpm *quote_tpm, ESYS_TR quote_ak, EVP_PKEY **ret_key, struct attest_finish *ret,
		       const char **ret_what)
{
	_cleanup_secbuf_ struct secbuf *secret = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	TPM2B_ID_OBJECT blob = {};
	TPM2B_ENCRYPTED_SECRET seed = {};
	static struct tpm_quote q;
	uint8_t *spki = NULL, extra[32];
	size_t spki_size;
	int r;

	memset(ret, 0, sizeof(*ret));
	STEP("reading the credential", unmarshal_credential(ch->credential_blob, ch->credential_blob_size,
							    ch->credential_seed, ch->credential_seed_size, &blob, &seed));
	STEP("ActivateCredential", tpm_credential_activate(t, ak, ek, &blob, &seed, &secret));
	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	STEP("making the node key", key ? 0 : -EIO);
	STEP("making the CSR", csr_make(key, ret->csr, sizeof(ret->csr)));
	STEP("making the CSR", spki_of(key, &spki, &spki_size));
	r = attest_proof(secret->data, secret->size, ch->nonce, ret->proof);
	if (r >= 0)
		r = attest_extra_data(ch->nonce, ret->proof, spki, spki_size, extra);
	OPENSSL_free(spki);
	STEP("proving the activation", r);
	STEP("quoting PCRs", tpm_quote(quote_tpm, quote_ak, ch->bank, ch->mask, extra, sizeof(extra), &q));
	STEP("reading PCRs", tpm_pcr_read(quote_tpm, ch->bank, ch->mask, ret->pcr_values));
	memcpy(ret->session, ch->session, sizeof(ret->session));
	memcpy(ret->attest, q.attest, q.attest_size);
	ret->attest_size = q.attest_size;
	memcpy(ret->signature, q.signature, q.signature_size);
	ret->signature_size = q.signature_size;
	ret->bank = ch->bank;
	ret->mask = ch->mask;
	*ret_key = TAKE_PTR(key);
	return 0;
fail:
	secmem_wipe(ret->proof, sizeof(ret->proof));
	return r;
}

int attest_node_open(struct tpm *t, ESYS_TR ek, ESYS_TR ak, const char *session, const struct attest_payload *p,
		     struct node_secret **ret, size_t *ret_n, const char **ret_what)
{
	_cleanup_secbuf_ struct secbuf *key = NULL, *plain = NULL;
	TPM2B_ID_OBJECT blob = {};
	TPM2B_ENCRYPTED_SECRET seed = {};
	int r;

	STEP("reading the payload's credential", unmarshal_credential(p->credential_blob, p->credential_blob_size,
								      p->credential_seed, p->credential_seed_size,
								      &blob, &seed));
	STEP("ActivateCredential for the payload key", tpm_credential_activate(t, ak, ek, &blob, &seed, &key));
	STEP("ActivateCredential for the payload key", key->size == PAYLOAD_KEY_SIZE ? 0 : -EBADMSG);
	STEP("decrypting the payload", payload_decrypt(key->data, session, p->iv, p->ciphertext, p->ciphertext_size,
						       &plain));
	STEP("decoding the payload", payload_decode(plain->data, plain->size, ret, ret_n));
	return 0;
fail:
	return r;
}
