/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/param.h>
#include <sys/random.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "log.h"
#include "ossl.h"
#include "tcti-deadline.h"
#include "tpm.h"

#define UNSEAL_ATTEMPTS 3

/* AES-128-CFB parameter encryption: what every TPM 2.0 must support. */
static const TPMT_SYM_DEF session_sym = {
	.algorithm = TPM2_ALG_AES,
	.keyBits.aes = 128,
	.mode.aes = TPM2_ALG_CFB,
};

/* The response code without its parameter/handle/session number. */
static TSS2_RC rc_base(TSS2_RC rc)
{
	if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER)
		return rc;
	return rc & TPM2_RC_FMT1 ? rc & (TPM2_RC_FMT1 | 0x3f) : rc;
}

const char *tpm_rc_str(TSS2_RC rc)
{
	return Tss2_RC_Decode(rc);
}

int tpm_rc_errno(TSS2_RC rc)
{
	TSS2_RC base;

	if (rc == TSS2_RC_SUCCESS)
		return 0;
	if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER) {
		base = rc & TSS2_RC_LAYER_MASK ? rc & 0xffff : rc;
		if (base == TSS2_BASE_RC_IO_ERROR || base == TSS2_BASE_RC_NO_CONNECTION ||
		    base == TSS2_BASE_RC_TRY_AGAIN)
			return -EIO;
		if (base == TSS2_BASE_RC_MEMORY)
			return -ENOMEM;
		return -EPROTO;
	}
	switch (rc_base(rc)) {
	case TPM2_RC_LOCKOUT:
		return -ENOLCK;
	case TPM2_RC_POLICY_FAIL:
	case TPM2_RC_PCR:
		return -EPERM;
	case TPM2_RC_PCR_CHANGED:
		return -EAGAIN;
	case TPM2_RC_INTEGRITY:
	case TPM2_RC_BINDING:
	case TPM2_RC_KEY:
	case TPM2_RC_SIZE:
	case TPM2_RC_KEY_SIZE:
	case TPM2_RC_ATTRIBUTES:
		return -ENOKEY;
	case TPM2_RC_INITIALIZE:
	case TPM2_RC_FAILURE:
		return -ENODEV;
	case TPM2_RC_OBJECT_MEMORY:
	case TPM2_RC_SESSION_MEMORY:
	case TPM2_RC_MEMORY:
	case TPM2_RC_OBJECT_HANDLES:
	case TPM2_RC_SESSION_HANDLES:
		return -EBUSY;
	default:
		return -EIO;
	}
}

/* What "the TPM did not answer" says; one process talks to one TPM, and the verb reports
 * after the context is gone. */
static char silence[256];

static void note_silence(const struct tpm *t, unsigned ms)
{
	snprintf(silence, sizeof(silence), "the TPM did not answer %swithin %g s (TCTI '%s')",
		 ms > t->timeout_ms ? "a key-generating command " : "", ms / 1000.0, t->tcti_conf);
}

/* Once an exchange missed its deadline, every later failure is that one. */
static int tpm_errno(struct tpm *t, TSS2_RC rc)
{
	unsigned ms;

	if (!tcti_deadline_expired(t->tcti, NULL, &ms))
		return tpm_rc_errno(rc);
	note_silence(t, ms);
	return -ETIMEDOUT;
}

const char *tpm_silence_reason(void)
{
	return silence[0] ? silence : "the TPM did not answer in time";
}

int tpm_timeout_parse(const char *s, unsigned *ret_ms)
{
	unsigned long ms = 0;
	size_t i = 0, frac = 0;

	/* Seconds with up to three decimals: no strtod, whose idea of '.' is the locale's. */
	for (; s[i] >= '0' && s[i] <= '9' && ms <= TPM_TIMEOUT_MAX_MS; i++)
		ms = ms * 10 + (unsigned long)(s[i] - '0');
	if (i == 0)
		return -EINVAL;
	ms *= 1000;
	if (s[i] == '.') {
		for (unsigned long scale = 100; s[++i] >= '0' && s[i] <= '9' && scale; scale /= 10, frac++)
			ms += scale * (unsigned long)(s[i] - '0');
		if (frac == 0)
			return -EINVAL;
	}
	if (s[i] || ms < TPM_TIMEOUT_MIN_MS || ms > TPM_TIMEOUT_MAX_MS)
		return -EINVAL;
	*ret_ms = (unsigned)ms;
	return 0;
}

int tpm_open(struct tpm **ret)
{
	const char *conf = secure_getenv("KEYSTRAP_TCTI"), *timeout = secure_getenv("KEYSTRAP_TPM_TIMEOUT");
	unsigned timeout_ms = TPM_TIMEOUT_DEFAULT_MS;
	struct tpm *t;
	TSS2_RC rc;
	int r;

	if (!conf || !*conf)
		conf = TPM_TCTI_DEFAULT;
	if (timeout && *timeout && tpm_timeout_parse(timeout, &timeout_ms) < 0)
		return log_debug_errno(-EINVAL, "KEYSTRAP_TPM_TIMEOUT='%s' is not a number of seconds", timeout);
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->timeout_ms = timeout_ms;
	t->tcti_conf = strdup(conf);
	if (!t->tcti_conf) {
		tpm_close(t);
		return -ENOMEM;
	}
	r = tcti_deadline_open(conf, timeout_ms, &t->tcti, &rc);
	if (r == -ETIMEDOUT)
		note_silence(t, timeout_ms);
	else if (r == -ENODEV)
		log_debug("TCTI '%s': %s", conf, tpm_rc_str(rc));
	if (r < 0) {
		tpm_close(t);
		return r;
	}
	rc = Esys_Initialize(&t->esys, t->tcti, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		log_debug("Esys_Initialize: %s", tpm_rc_str(rc));
		tpm_close(t);
		return -ENODEV;
	}
	*ret = t;
	return 0;
}

void tpm_close(struct tpm *t)
{
	if (!t)
		return;
	if (t->esys)
		Esys_Finalize(&t->esys);
	tcti_deadline_free(t->tcti);
	free(t->tcti_conf);
	free(t);
}

const char *tpm_tcti_conf(const struct tpm *t)
{
	return t->tcti_conf;
}

/* The storage primaries systemd 252 derives on every use; same seed + template = same key. */
static const TPM2B_PUBLIC primary_ecc = {
	.size = sizeof(TPMT_PUBLIC),
	.publicArea = {
		.type = TPM2_ALG_ECC,
		.nameAlg = TPM2_ALG_SHA256,
		.objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM |
				    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
				    TPMA_OBJECT_USERWITHAUTH,
		.parameters.eccDetail = {
			.symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
			.scheme.scheme = TPM2_ALG_NULL,
			.curveID = TPM2_ECC_NIST_P256,
			.kdf.scheme = TPM2_ALG_NULL,
		},
	},
};

static const TPM2B_PUBLIC primary_rsa = {
	.size = sizeof(TPMT_PUBLIC),
	.publicArea = {
		.type = TPM2_ALG_RSA,
		.nameAlg = TPM2_ALG_SHA256,
		.objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM |
				    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
				    TPMA_OBJECT_USERWITHAUTH,
		.parameters.rsaDetail = {
			.symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
			.scheme.scheme = TPM2_ALG_NULL,
			.keyBits = 2048,
		},
	},
};

int tpm_primary_create(struct tpm *t, uint16_t alg, ESYS_TR *ret)
{
	static const TPM2B_SENSITIVE_CREATE sensitive = { 0 };
	static const TPML_PCR_SELECTION creation_pcr = { 0 };
	ESYS_TR h = ESYS_TR_NONE;
	TSS2_RC rc;

	rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
				&sensitive, alg == TPM2_ALG_RSA ? &primary_rsa : &primary_ecc, NULL,
				&creation_pcr, &h, NULL, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS)
		return log_debug_errno(tpm_errno(t, rc), "CreatePrimary: %s", tpm_rc_str(rc));
	*ret = h;
	return 0;
}

static int tr_name(struct tpm *t, ESYS_TR h, TPM2B_NAME *ret)
{
	TPM2B_NAME *n = NULL;

	if (Esys_TR_GetName(t->esys, h, &n) != TSS2_RC_SUCCESS)
		return -EPROTO;
	*ret = *n;
	Esys_Free(n);
	return 0;
}

int tpm_srk_ensure(struct tpm *t, ESYS_TR *ret, uint8_t *ret_serialized, size_t max, size_t *ret_size)
{
	static const TPM2B_SENSITIVE_CREATE sensitive = { 0 };
	static const TPML_PCR_SELECTION creation_pcr = { 0 };
	ESYS_TR transient = ESYS_TR_NONE, srk = ESYS_TR_NONE;
	TPM2B_PUBLIC *pub = NULL;
	uint8_t *buf = NULL;
	size_t size = 0;
	TSS2_RC rc;
	int r = 0;

	/* The TCG "Provisioning Guidance" SRK is systemd 252's ECC primary plus noDA. */
	TPM2B_PUBLIC srk_template = primary_ecc;

	srk_template.publicArea.objectAttributes |= TPMA_OBJECT_NODA;
	rc = Esys_TR_FromTPMPublic(t->esys, TPM_SRK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &srk);
	if (rc == TSS2_RC_SUCCESS) {
		/* Someone else's SRK is fine, as long as it can be a parent at all. */
		rc = Esys_ReadPublic(t->esys, srk, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
		if (rc != TSS2_RC_SUCCESS ||
		    (pub->publicArea.objectAttributes & (TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT)) !=
			    (TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT))
			r = log_debug_errno(-ENOKEY, "object at 0x%x is not a storage key", TPM_SRK_HANDLE);
		Esys_Free(pub);
	} else {
		rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
					ESYS_TR_NONE, &sensitive, &srk_template, NULL, &creation_pcr,
					&transient, NULL, NULL, NULL, NULL);
		if (rc != TSS2_RC_SUCCESS)
			return log_debug_errno(tpm_errno(t, rc), "CreatePrimary(SRK): %s", tpm_rc_str(rc));
		rc = Esys_EvictControl(t->esys, ESYS_TR_RH_OWNER, transient, ESYS_TR_PASSWORD, ESYS_TR_NONE,
				       ESYS_TR_NONE, TPM_SRK_HANDLE, &srk);
		tpm_flush(t, &transient);
		if (rc != TSS2_RC_SUCCESS)
			return log_debug_errno(tpm_errno(t, rc), "EvictControl(0x%x): %s", TPM_SRK_HANDLE,
					       tpm_rc_str(rc));
	}
	if (r == 0) {
		rc = Esys_TR_Serialize(t->esys, srk, &buf, &size);
		if (rc != TSS2_RC_SUCCESS || size > max)
			r = log_debug_errno(-EMSGSIZE, "TR_Serialize: %s", tpm_rc_str(rc));
		else
			memcpy(ret_serialized, buf, size);
		Esys_Free(buf);
	}
	if (r < 0) {
		(void)Esys_TR_Close(t->esys, &srk);
		return r;
	}
	*ret = srk;
	*ret_size = size;
	return 0;
}

int tpm_srk_load(struct tpm *t, const uint8_t *serialized, size_t size, ESYS_TR *ret)
{
	TPM2B_NAME want_name, have_name;
	ESYS_TR want = ESYS_TR_NONE, have = ESYS_TR_NONE;
	TSS2_RC rc;
	int r;

	/* ESAPI keeps one object per TPM handle: take the name and let go before looking it up live. */
	rc = Esys_TR_Deserialize(t->esys, serialized, size, &want);
	if (rc != TSS2_RC_SUCCESS)
		return log_debug_errno(-EINVAL, "TR_Deserialize: %s", tpm_rc_str(rc));
	r = tr_name(t, want, &want_name);
	(void)Esys_TR_Close(t->esys, &want);
	if (r < 0)
		return r;
	rc = Esys_TR_FromTPMPublic(t->esys, TPM_SRK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				   &have);
	if (rc != TSS2_RC_SUCCESS)
		return log_debug_errno(rc_base(rc) == TPM2_RC_HANDLE ? -ENOKEY : tpm_errno(t, rc),
				       "no SRK at 0x%x: %s", TPM_SRK_HANDLE, tpm_rc_str(rc));
	r = tr_name(t, have, &have_name);
	if (r == 0 && (want_name.size != have_name.size ||
		       memcmp(want_name.name, have_name.name, want_name.size) != 0))
		r = log_debug_errno(-ENOKEY, "object at 0x%x has another name", TPM_SRK_HANDLE);
	if (r < 0) {
		(void)Esys_TR_Close(t->esys, &have);
		return r;
	}
	*ret = have;
	return 0;
}

void tpm_flush(struct tpm *t, ESYS_TR *handle)
{
	TPM2_HANDLE raw = 0;

	if (*handle == ESYS_TR_NONE)
		return;
	/* Persistent objects are only forgotten locally; flushing them is an error. */
	if (Esys_TR_GetTpmHandle(t->esys, *handle, &raw) == TSS2_RC_SUCCESS &&
	    (raw >> TPM2_HR_SHIFT) == TPM2_HT_PERSISTENT)
		(void)Esys_TR_Close(t->esys, handle);
	else
		(void)Esys_FlushContext(t->esys, *handle);
	*handle = ESYS_TR_NONE;
}

int tpm_pcr_read(struct tpm *t, const struct pcr_bank *bank, uint32_t mask,
		 uint8_t ret_values[PCR_COUNT][PCR_DIGEST_MAX])
{
	uint32_t left = mask;

	/* A TPM may answer a large selection in parts: ask again for what is still missing. */
	while (left) {
		TPML_PCR_SELECTION sel, *out_sel = NULL;
		TPML_DIGEST *values = NULL;
		uint32_t got = 0;
		unsigned k = 0;
		TSS2_RC rc;

		pcr_selection_from_mask(left, bank->alg, &sel);
		rc = Esys_PCR_Read(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, NULL, &out_sel,
				   &values);
		if (rc != TSS2_RC_SUCCESS)
			return log_debug_errno(tpm_errno(t, rc), "PCR_Read: %s", tpm_rc_str(rc));
		for (unsigned i = 0; i < PCR_COUNT; i++) {
			if (!out_sel->count || !(out_sel->pcrSelections[0].pcrSelect[i / 8] & (1u << (i % 8))))
				continue;
			if (k >= values->count || values->digests[k].size != bank->size)
				break;
			memcpy(ret_values[i], values->digests[k++].buffer, bank->size);
			got |= 1u << i;
		}
		Esys_Free(out_sel);
		Esys_Free(values);
		if (!(got & left))
			return log_debug_errno(-EOPNOTSUPP, "bank %s does not return the PCRs asked for",
					       bank->name);
		left &= ~got;
	}
	return 0;
}

static int start_session(struct tpm *t, ESYS_TR salt_key, TPM2_SE type, TPMA_SESSION attrs,
			 ESYS_TR *ret)
{
	ESYS_TR s = ESYS_TR_NONE;
	TSS2_RC rc;

	rc = Esys_StartAuthSession(t->esys, salt_key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
				   ESYS_TR_NONE, NULL, type, &session_sym, TPM2_ALG_SHA256, &s);
	if (rc != TSS2_RC_SUCCESS)
		return log_debug_errno(tpm_errno(t, rc), "StartAuthSession: %s", tpm_rc_str(rc));
	rc = Esys_TRSess_SetAttributes(t->esys, s, attrs, 0xff);
	if (rc != TSS2_RC_SUCCESS) {
		tpm_flush(t, &s);
		return log_debug_errno(-EPROTO, "TRSess_SetAttributes: %s", tpm_rc_str(rc));
	}
	*ret = s;
	return 0;
}

int tpm_seal(struct tpm *t, ESYS_TR parent, const uint8_t policy[32], const struct secbuf *secret,
	     uint8_t *ret_blob, size_t blob_max, size_t *ret_blob_size)
{
	static const TPML_PCR_SELECTION creation_pcr = { 0 };
	TPM2B_PUBLIC template = {
		.size = sizeof(TPMT_PUBLIC),
		.publicArea = {
			.type = TPM2_ALG_KEYEDHASH,
			.nameAlg = TPM2_ALG_SHA256,
			/* No userWithAuth: the PCR policy is the only way to use it. */
			.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT,
			.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
			.authPolicy.size = 32,
		},
	};
	TPM2B_SENSITIVE_CREATE sensitive = { 0 };
	TPM2B_PRIVATE *priv = NULL;
	TPM2B_PUBLIC *pub = NULL;
	ESYS_TR session = ESYS_TR_NONE;
	size_t off = 0;
	TSS2_RC rc;
	int r;

	if (secret->size > sizeof(sensitive.sensitive.data.buffer))
		return -EMSGSIZE;
	memcpy(template.publicArea.authPolicy.buffer, policy, 32);

	/* Salted, decrypt session: the secret crosses the TPM bus encrypted. */
	r = start_session(t, parent, TPM2_SE_HMAC, TPMA_SESSION_DECRYPT, &session);
	if (r < 0)
		return r;
	sensitive.size = sizeof(sensitive.sensitive);
	sensitive.sensitive.data.size = (uint16_t)secret->size;
	memcpy(sensitive.sensitive.data.buffer, secret->data, secret->size);
	rc = Esys_Create(t->esys, parent, session, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &template,
			 NULL, &creation_pcr, &priv, &pub, NULL, NULL, NULL);
	secmem_wipe(&sensitive, sizeof(sensitive));
	if (rc != TSS2_RC_SUCCESS) {
		tpm_flush(t, &session);
		return log_debug_errno(tpm_errno(t, rc), "Create: %s", tpm_rc_str(rc));
	}
	rc = Tss2_MU_TPM2B_PRIVATE_Marshal(priv, ret_blob, blob_max, &off);
	if (rc == TSS2_RC_SUCCESS)
		rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub, ret_blob, blob_max, &off);
	Esys_Free(priv);
	Esys_Free(pub);
	if (rc != TSS2_RC_SUCCESS)
		return log_debug_errno(-EMSGSIZE, "marshal sealed object: %s", tpm_rc_str(rc));
	*ret_blob_size = off;
	return 0;
}

int tpm_rsa_public(EVP_PKEY *pkey, TPM2B_PUBLIC *ret)
{
	_cleanup_(BN_freep) BIGNUM *n = NULL, *e = NULL;
	TPM2B_PUBLIC pub = {
		.size = sizeof(TPMT_PUBLIC),
		.publicArea = {
			.type = TPM2_ALG_RSA,
			.nameAlg = TPM2_ALG_SHA256,
			.objectAttributes = TPMA_OBJECT_DECRYPT | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_USERWITHAUTH,
			.parameters.rsaDetail = {
				.scheme.scheme = TPM2_ALG_NULL,
				.symmetric.algorithm = TPM2_ALG_NULL,
			},
		},
	};
	int size;

	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bn_param(pkey, "n", &n) != 1 || EVP_PKEY_get_bn_param(pkey, "e", &e) != 1)
		return -EOPNOTSUPP;
	size = BN_num_bytes(n);
	if (size > (int)sizeof(pub.publicArea.unique.rsa.buffer) || BN_num_bits(e) > 32)
		return -EOPNOTSUPP;
	pub.publicArea.parameters.rsaDetail.keyBits = (TPMI_RSA_KEY_BITS)(size * 8);
	/* systemd 252 spells 65537 out rather than as the TPM's 0; the name, and so the policy, follows. */
	pub.publicArea.parameters.rsaDetail.exponent = (UINT32)BN_get_word(e);
	pub.publicArea.unique.rsa.size = (UINT16)size;
	if (BN_bn2bin(n, pub.publicArea.unique.rsa.buffer) != size)
		return -EINVAL;
	*ret = pub;
	return 0;
}

static int policy_authorize(struct tpm *t, ESYS_TR session, const struct tpm_authorize *auth,
			    const struct pcr_bank *bank)
{
	static const TPM2B_NONCE no_ref = { 0 };
	TPMT_SIGNATURE sig = {
		.sigAlg = TPM2_ALG_RSASSA,
		.signature.rsassa.hash = TPM2_ALG_SHA256,
	};
	TPM2B_DIGEST *approved = NULL, hash = { .size = 32 };
	TPMT_TK_VERIFIED *ticket = NULL;
	TPML_PCR_SELECTION sel;
	TPM2B_NAME name;
	ESYS_TR key = ESYS_TR_NONE;
	TSS2_RC rc;
	int r;

	if (auth->sig_size > sizeof(sig.signature.rsassa.sig.buffer))
		return -EMSGSIZE;
	rc = Esys_LoadExternal(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, &auth->key,
			       ESYS_TR_RH_OWNER, &key);
	if (rc != TSS2_RC_SUCCESS)
		return log_debug_errno(tpm_errno(t, rc), "LoadExternal: %s", tpm_rc_str(rc));
	r = tr_name(t, key, &name);
	if (r < 0)
		goto out;
	pcr_selection_from_mask(auth->mask, bank->alg, &sel);
	rc = Esys_PolicyPCR(t->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, &sel);
	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_PolicyGetDigest(t->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &approved);
	if (rc != TSS2_RC_SUCCESS) {
		r = log_debug_errno(tpm_errno(t, rc), "PolicyPCR/PolicyGetDigest: %s", tpm_rc_str(rc));
		goto out;
	}
	/* aHash = H(approvedPolicy || policyRef), policyRef empty; the TPM checks the RSA part. */
	if (EVP_Digest(approved->buffer, approved->size, hash.buffer, NULL, EVP_sha256(), NULL) != 1) {
		r = -ENOMEM;
		goto out;
	}
	sig.signature.rsassa.sig.size = (UINT16)auth->sig_size;
	memcpy(sig.signature.rsassa.sig.buffer, auth->sig, auth->sig_size);
	rc = Esys_VerifySignature(t->esys, key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &hash, &sig, &ticket);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm_errno(t, rc);
		/* A wrong signature of the right size is RC_SIGNATURE; of another size, RC_SIZE or
		 * RC_VALUE: the file's fault either way, never the TPM's. */
		if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER && r != -ETIMEDOUT && r != -ENOLCK &&
		    r != -ENODEV && r != -EBUSY)
			r = -EBADMSG;
		log_debug("VerifySignature: %s", tpm_rc_str(rc));
		goto out;
	}
	rc = Esys_PolicyAuthorize(t->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, approved,
				  &no_ref, &name, ticket);
	if (rc != TSS2_RC_SUCCESS)
		r = log_debug_errno(tpm_errno(t, rc), "PolicyAuthorize: %s", tpm_rc_str(rc));
out:
	Esys_Free(approved);
	Esys_Free(ticket);
	tpm_flush(t, &key);
	return r;
}

static int unseal_once(struct tpm *t, ESYS_TR parent, ESYS_TR object, const struct tpm_authorize *auth,
		       const struct pcr_bank *bank, const TPML_PCR_SELECTION *sel, struct secbuf **ret)
{
	TPM2B_SENSITIVE_DATA *out = NULL;
	ESYS_TR session = ESYS_TR_NONE;
	TSS2_RC rc;
	int r;

	/* Policy session salted with the parent and encrypting the response: unseal over the bus in clear never. */
	r = start_session(t, parent, TPM2_SE_POLICY, TPMA_SESSION_ENCRYPT, &session);
	if (r < 0)
		return r;
	if (auth) {
		r = policy_authorize(t, session, auth, bank);
		if (r < 0) {
			tpm_flush(t, &session);
			return r;
		}
	}
	rc = sel->count == 0 ? TSS2_RC_SUCCESS :
			       Esys_PolicyPCR(t->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, sel);
	if (rc != TSS2_RC_SUCCESS) {
		tpm_flush(t, &session);
		return log_debug_errno(tpm_errno(t, rc), "PolicyPCR: %s", tpm_rc_str(rc));
	}
	rc = Esys_Unseal(t->esys, object, session, ESYS_TR_NONE, ESYS_TR_NONE, &out);
	if (rc != TSS2_RC_SUCCESS) {
		tpm_flush(t, &session);
		return log_debug_errno(tpm_errno(t, rc), "Unseal: %s", tpm_rc_str(rc));
	}
	/* continueSession is clear: the TPM flushed the session with the response. */
	*ret = secbuf_dup(out->buffer, out->size);
	secmem_wipe(out, sizeof(*out));
	Esys_Free(out);
	return *ret ? 0 : -ENOMEM;
}

int tpm_unseal(struct tpm *t, ESYS_TR parent, const uint8_t *blob, size_t blob_size,
	       const struct tpm_authorize *auth, const struct pcr_bank *bank, uint32_t mask,
	       struct secbuf **ret)
{
	TPM2B_PRIVATE priv = { 0 };
	TPM2B_PUBLIC pub = { 0 };
	TPML_PCR_SELECTION sel;
	ESYS_TR object = ESYS_TR_NONE;
	size_t off = 0;
	TSS2_RC rc;
	int r = -EAGAIN;

	if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob, blob_size, &off, &priv) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob, blob_size, &off, &pub) != TSS2_RC_SUCCESS)
		return log_debug_errno(-EBADMSG, "tpm2-blob is not TPM2B_PRIVATE then TPM2B_PUBLIC");
	if (off != blob_size)
		return log_debug_errno(-EBADMSG, "tpm2-blob has %zu trailing bytes", blob_size - off);
	if (pub.publicArea.type != TPM2_ALG_KEYEDHASH)
		return log_debug_errno(-EBADMSG, "tpm2-blob is not a sealed data object");

	rc = Esys_Load(t->esys, parent, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &object);
	if (rc != TSS2_RC_SUCCESS)
		return log_debug_errno(tpm_errno(t, rc), "Load: %s", tpm_rc_str(rc));

	pcr_selection_from_mask(mask, bank->alg, &sel);
	if (mask == 0)
		sel.count = 0;
	for (int i = 0; i < UNSEAL_ATTEMPTS && r == -EAGAIN; i++)
		r = unseal_once(t, parent, object, auth, bank, &sel, ret);
	tpm_flush(t, &object);
	return r;
}

int tpm_pcr_extend(struct tpm *t, unsigned pcr, const void *data, size_t size,
		   TPML_DIGEST_VALUES *ret_digests)
{
	TPML_DIGEST_VALUES *digests = NULL;
	TPM2B_EVENT event = { 0 };
	TSS2_RC rc;

	if (pcr >= PCR_COUNT)
		return -ERANGE;
	if (size > sizeof(event.buffer))
		return -EMSGSIZE;
	event.size = (uint16_t)size;
	memcpy(event.buffer, data, size);
	/*
	 * PCR_Event, not PCR_Extend: the TPM hashes the data in every active bank itself, so no
	 * bank (not even one keystrap has no hash for) keeps a value that still unseals, and it
	 * costs one command instead of GetCapability + PCR_Extend.
	 */
	rc = Esys_PCR_Event(t->esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
			    &event, &digests);
	if (rc != TSS2_RC_SUCCESS)
		return log_debug_errno(tpm_errno(t, rc), "PCR_Event(%u): %s", pcr, tpm_rc_str(rc));
	if (ret_digests)
		*ret_digests = *digests;
	Esys_Free(digests);
	return 0;
}

/*
 * Attestation (issue 5): the EK and its certificate, an AK for this boot, ActivateCredential
 * and Quote. The verifying side is pure code in credential.c, quote.c and tpmpub.c.
 */

static uint16_t nv_chunk_size(struct tpm *t)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more;
	uint16_t n = 512;

	if (Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
			       TPM2_PT_NV_BUFFER_MAX, 1, &more, &cap) == TSS2_RC_SUCCESS &&
	    cap->data.tpmProperties.count == 1 &&
	    cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX &&
	    cap->data.tpmProperties.tpmProperty[0].value > 0)
		n = (uint16_t)MIN(cap->data.tpmProperties.tpmProperty[0].value, TPM2_MAX_NV_BUFFER_SIZE);
	Esys_Free(cap);
	return n;
}

static int nv_read_all(struct tpm *t, ESYS_TR nv, uint8_t **ret, size_t *ret_size)
{
	TPM2B_NV_PUBLIC *pub = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	ESYS_TR auth;
	uint16_t size, chunk;
	TSS2_RC rc;

	rc = Esys_NV_ReadPublic(t->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
	if (rc != TSS2_RC_SUCCESS)
		return log_debug_errno(tpm_errno(t, rc), "NV_ReadPublic: %s", tpm_rc_str(rc));
	size = pub->nvPublic.dataSize;
	/* EK certificate indices are readable with their own empty auth, or the owner's. */
	auth = pub->nvPublic.attributes & TPMA_NV_AUTHREAD ? nv :
	       pub->nvPublic.attributes & TPMA_NV_OWNERREAD ? ESYS_TR_RH_OWNER : ESYS_TR_NONE;
	Esys_Free(pub);
	if (auth == ESYS_TR_NONE)
		return log_debug_errno(-EACCES, "NV index is neither auth- nor owner-readable");
	if (size == 0)
		return -ENODATA;
	buf = malloc(size);
	if (!buf)
		return -ENOMEM;
	chunk = nv_chunk_size(t);
	for (uint16_t off = 0; off < size;) {
		TPM2B_MAX_NV_BUFFER *data = NULL;
		uint16_t n = MIN(chunk, (uint16_t)(size - off));

		rc = Esys_NV_Read(t->esys, auth, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, off, &data);
		if (rc != TSS2_RC_SUCCESS)
			return log_debug_errno(tpm_errno(t, rc), "NV_Read: %s", tpm_rc_str(rc));
		if (data->size != n) {
			Esys_Free(data);
			return log_debug_errno(-EPROTO, "NV_Read returned %u bytes, not %u", data->size, n);
		}
		memcpy(buf + off, data->buffer, n);
		Esys_Free(data);
		off += n;
	}
	*ret = TAKE_PTR(buf);
	*ret_size = size;
	return 0;
}

int tpm_ek_cert_read(struct tpm *t, enum tpm_ek_kind kind, uint8_t **ret, size_t *ret_size)
{
	ESYS_TR nv = ESYS_TR_NONE;
	TSS2_RC rc;
	int r;

	if (kind >= _TPM_EK_KIND_MAX)
		return -EINVAL;
	rc = Esys_TR_FromTPMPublic(t->esys, tpm_ek_profile(kind)->cert_index, ESYS_TR_NONE, ESYS_TR_NONE,
				   ESYS_TR_NONE, &nv);
	if (rc != TSS2_RC_SUCCESS)
		return log_debug_errno(rc_base(rc) == TPM2_RC_HANDLE ? -ENOENT : tpm_errno(t, rc),
				       "NV index 0x%08x: %s", tpm_ek_profile(kind)->cert_index, tpm_rc_str(rc));
	r = nv_read_all(t, nv, ret, ret_size);
	(void)Esys_TR_Close(t->esys, &nv);
	return r;
}

static int create_primary(struct tpm *t, ESYS_TR hierarchy, const TPM2B_PUBLIC *template, ESYS_TR *ret,
			  TPM2B_PUBLIC *ret_pub)
{
	static const TPM2B_SENSITIVE_CREATE sensitive = { 0 };
	static const TPML_PCR_SELECTION creation_pcr = { 0 };
	TPM2B_PUBLIC *pub = NULL;
	ESYS_TR h = ESYS_TR_NONE;
	TSS2_RC rc;

	rc = Esys_CreatePrimary(t->esys, hierarchy, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
				template, NULL, &creation_pcr, &h, &pub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS)
		return log_debug_errno(tpm_errno(t, rc), "CreatePrimary: %s", tpm_rc_str(rc));
	if (ret_pub)
		*ret_pub = *pub;
	Esys_Free(pub);
	*ret = h;
	return 0;
}

int tpm_ek_create(struct tpm *t, enum tpm_ek_kind kind, ESYS_TR *ret, TPM2B_PUBLIC *ret_pub)
{
	TPM2B_PUBLIC template;

	if (kind >= _TPM_EK_KIND_MAX)
		return -EINVAL;
	template = (TPM2B_PUBLIC){ .publicArea = tpm_ek_profile(kind)->area };
	return create_primary(t, ESYS_TR_RH_ENDORSEMENT, &template, ret, ret_pub);
}

int tpm_ak_create(struct tpm *t, const uint8_t *unique, ESYS_TR *ret, TPM2B_PUBLIC *ret_pub)
{
	TPM2B_PUBLIC template = {
		.publicArea = {
			.type = TPM2_ALG_ECC,
			.nameAlg = TPM2_ALG_SHA256,
			/* Signs only what the TPM produced (quotes), never leaves it, dies with the boot. */
			.objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT |
					    TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
					    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
					    TPMA_OBJECT_STCLEAR,
			.parameters.eccDetail = {
				.symmetric.algorithm = TPM2_ALG_NULL,
				.scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 },
				.curveID = TPM2_ECC_NIST_P256,
				.kdf.scheme = TPM2_ALG_NULL,
			},
			.unique.ecc.x.size = TPM_AK_UNIQUE_SIZE,
		},
	};

	/*
	 * A primary in the endorsement hierarchy: one command, and its qualified name (what a quote
	 * names as signer) is H(TPM_RH_ENDORSEMENT || name), which a verifier computes from the AK
	 * public alone. Random unique bytes make it a key of this boot only.
	 */
	if (unique)
		memcpy(template.publicArea.unique.ecc.x.buffer, unique, TPM_AK_UNIQUE_SIZE);
	else if (getrandom(template.publicArea.unique.ecc.x.buffer, TPM_AK_UNIQUE_SIZE, 0) != TPM_AK_UNIQUE_SIZE)
		return -errno;
	return create_primary(t, ESYS_TR_RH_ENDORSEMENT, &template, ret, ret_pub);
}

static bool tpm_self_test_passed(struct tpm *t)
{
	TPM2B_MAX_BUFFER *data = NULL;
	TPM2_RC result = TPM2_RC_FAILURE;

	if (Esys_GetTestResult(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &data, &result) !=
	    TSS2_RC_SUCCESS)
		return false;
	Esys_Free(data);
	return result == TPM2_RC_SUCCESS;
}

/* A credential the TPM cannot open is the peer's problem, not a TPM fault. */
static int activate_rc_errno(struct tpm *t, TSS2_RC rc)
{
	if (tcti_deadline_expired(t->tcti, NULL, NULL))
		return tpm_errno(t, rc);
	switch (rc_base(rc)) {
	case TPM2_RC_INTEGRITY:
	case TPM2_RC_VALUE:
	case TPM2_RC_SIZE:
	case TPM2_RC_ECC_POINT:
	case TPM2_RC_NO_RESULT:
		return -EKEYREJECTED;
	case TPM2_RC_FAILURE:
		/* libtpms (swtpm) answers an RSA seed it cannot OAEP-decrypt with TPM_RC_FAILURE
		 * without entering failure mode; a TPM really in failure mode says so here. */
		return tpm_self_test_passed(t) ? -EKEYREJECTED : -ENODEV;
	default:
		return tpm_errno(t, rc);
	}
}

int tpm_credential_activate(struct tpm *t, ESYS_TR ak, ESYS_TR ek, const TPM2B_ID_OBJECT *blob,
			    const TPM2B_ENCRYPTED_SECRET *seed, struct secbuf **ret)
{
	TPM2B_PUBLIC *ek_pub = NULL;
	TPM2B_DIGEST *out = NULL;
	ESYS_TR session = ESYS_TR_NONE;
	bool policy;
	TSS2_RC rc;
	int r;

	rc = Esys_ReadPublic(t->esys, ek, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &ek_pub, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS)
		return log_debug_errno(tpm_errno(t, rc), "ReadPublic(EK): %s", tpm_rc_str(rc));
	/* Low-range EKs admit their user only by PolicySecret(endorsement); high-range ones by auth too. */
	policy = !(ek_pub->publicArea.objectAttributes & TPMA_OBJECT_USERWITHAUTH);
	Esys_Free(ek_pub);

	/* Salted with the EK and encrypting the response: the credential crosses the bus encrypted. */
	r = start_session(t, ek, policy ? TPM2_SE_POLICY : TPM2_SE_HMAC, TPMA_SESSION_ENCRYPT, &session);
	if (r < 0)
		return r;
	if (policy) {
		rc = Esys_PolicySecret(t->esys, ESYS_TR_RH_ENDORSEMENT, session, ESYS_TR_PASSWORD, ESYS_TR_NONE,
				       ESYS_TR_NONE, NULL, NULL, NULL, 0, NULL, NULL);
		if (rc != TSS2_RC_SUCCESS) {
			tpm_flush(t, &session);
			return log_debug_errno(tpm_errno(t, rc), "PolicySecret(endorsement): %s", tpm_rc_str(rc));
		}
	}
	rc = Esys_ActivateCredential(t->esys, ak, ek, ESYS_TR_PASSWORD, session, ESYS_TR_NONE, blob, seed, &out);
	if (rc != TSS2_RC_SUCCESS) {
		tpm_flush(t, &session);
		return log_debug_errno(activate_rc_errno(t, rc), "ActivateCredential: %s", tpm_rc_str(rc));
	}
	/* continueSession is clear: the TPM flushed the session with the response. */
	*ret = secbuf_dup(out->buffer, out->size);
	secmem_wipe(out, sizeof(*out));
	Esys_Free(out);
	return *ret ? 0 : -ENOMEM;
}

int tpm_quote(struct tpm *t, ESYS_TR ak, const struct pcr_bank *bank, uint32_t mask, const uint8_t *extra,
	      size_t extra_size, struct tpm_quote *ret)
{
	static const TPMT_SIG_SCHEME key_scheme = { .scheme = TPM2_ALG_NULL };
	TPM2B_DATA qualifying = { 0 };
	TPML_PCR_SELECTION sel;
	TPM2B_ATTEST *quoted = NULL;
	TPMT_SIGNATURE *sig = NULL;
	size_t off = 0;
	TSS2_RC rc;

	if (extra_size > sizeof(qualifying.buffer))
		return -EMSGSIZE;
	qualifying.size = (uint16_t)extra_size;
	if (extra_size)
		memcpy(qualifying.buffer, extra, extra_size);
	pcr_selection_from_mask(mask, bank->alg, &sel);
	rc = Esys_Quote(t->esys, ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qualifying, &key_scheme, &sel,
			&quoted, &sig);
	if (rc != TSS2_RC_SUCCESS)
		return log_debug_errno(tpm_errno(t, rc), "Quote: %s", tpm_rc_str(rc));
	memcpy(ret->attest, quoted->attestationData, quoted->size);
	ret->attest_size = quoted->size;
	rc = Tss2_MU_TPMT_SIGNATURE_Marshal(sig, ret->signature, sizeof(ret->signature), &off);
	ret->signature_size = off;
	Esys_Free(quoted);
	Esys_Free(sig);
	return rc == TSS2_RC_SUCCESS ? 0 : -EPROTO;
}
