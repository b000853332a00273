/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A systemd 252 signed-policy token (systemd-cryptenroll --tpm2-public-key): which signature in
 * systemd's PCR signature file to hand the TPM, and why none fits, in one line each.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "encode.h"
#include "json-cleanup.h"
#include "log.h"
#include "open.h"
#include "ossl.h"
#include "pcrsig.h"
#include "unlock.h"

static int key_load(const struct tpm2_token *k, EVP_PKEY **ret, uint8_t ret_fp[32])
{
	_cleanup_free_ uint8_t *der = NULL;
	EVP_PKEY *pkey;
	BIO *bio;
	int n;

	bio = BIO_new_mem_buf(k->pubkey, (int)k->pubkey_size);
	if (!bio)
		return -ENOMEM;
	pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!pkey)
		return -EBADMSG;
	/* systemd's pkfp: SHA-256 of i2d_PublicKey's DER, for RSA the PKCS#1 RSAPublicKey. */
	n = i2d_PublicKey(pkey, &der);
	if (n <= 0 || EVP_Digest(der, (size_t)n, ret_fp, NULL, EVP_sha256(), NULL) != 1) {
		EVP_PKEY_free(pkey);
		return -ENOMEM;
	}
	*ret = pkey;
	return 0;
}

/* "PCR 11 is HEX, PCR 12 is HEX" */
static void values_format(const struct pcr_spec *s, char *buf, size_t size)
{
	size_t o = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < PCR_COUNT && o < size; i++)
		if (s->mask & (1u << i)) {
			char hex[2 * PCR_DIGEST_MAX + 1];

			hex_encode(s->values[i], s->bank->size, hex);
			o += (size_t)snprintf(buf + o, size - o, "%sPCR %u is %s", o ? ", " : "", i, hex);
		}
}

int unlock_signed_policy(struct tpm *t, const char *path, int tok, const struct tpm2_token *k,
			 const char *signature, struct tpm_authorize *ret)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	_cleanup_json_ json_object *sigs = NULL;
	_cleanup_free_ char *file = NULL;
	struct pcr_spec now = { .bank = k->bank, .mask = k->pubkey_pcr_mask, .given = k->pubkey_pcr_mask };
	uint8_t fp[32], pol[32];
	char fphex[65], values[PCR_COUNT * (2 * PCR_DIGEST_MAX + 16)];
	const char *why;
	int r;

	if (key_load(k, &pkey, fp) < 0)
		return log_error_errno(-EINVAL, "%s token %d is malformed: tpm2_pubkey is not a PEM public key",
				       path, tok);
	if (tpm_rsa_public(pkey, &ret->key) < 0)
		return log_error_errno(-EOPNOTSUPP, "%s token %d: tpm2_pubkey is not an RSA key of at most "
				       "4096 bits, which is all systemd 252 signs with", path, tok);
	hex_encode(fp, sizeof(fp), fphex);
	ret->mask = k->pubkey_pcr_mask;

	r = tpm_pcr_read(t, k->bank, now.mask, now.values);
	if (r < 0)
		return log_error_errno(r, "%s token %d: %s", path, tok, tpm_failure_reason(r));
	r = pcr_policy_digest(&now, pol);
	if (r < 0)
		return log_error_errno(r, "%s token %d: cannot compute the PCR policy digest", path, tok);
	values_format(&now, values, sizeof(values));

	r = pcrsig_load(signature, &sigs, &file);
	if (r == -ENOMEM)
		return log_error_errno(r, "out of memory");
	if (r == -ENOENT && !signature)
		return log_error_errno(r, "%s token %d has a signed PCR policy but there is no %s in "
				       "/etc/systemd, /run/systemd, /usr/local/lib/systemd, /usr/lib/systemd "
				       "or (in the initrd) /.extra", path, tok, file);
	if (r == -EBADMSG)
		return log_error_errno(r, "%s token %d: PCR signature file %s is not a JSON object of at "
				       "most 64 KiB", path, tok, file);
	if (r < 0)
		return log_error_errno(r, "%s token %d: cannot read PCR signature file %s: %s", path, tok,
				       file, strerror(-r));

	r = pcrsig_find(sigs, k->bank, k->pubkey_pcr_mask, fp, pol, ret->sig, sizeof(ret->sig),
			&ret->sig_size, &why);
	if (r == -EKEYREJECTED)
		return log_error_errno(r, "%s token %d: PCR signature file %s: %s, %s", path, tok, file, why,
				       fphex);
	if (r < 0)
		return log_error_errno(r, "%s token %d: PCR signature file %s: %s (%s: %s)", path, tok, file,
				       why, k->bank->name, values);
	return 0;
}
