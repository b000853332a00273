/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include <tss2/tss2_mu.h>

#include "encode.h"
#include "macro.h"
#include "pcr.h"

static const struct pcr_bank banks[] = {
	{ "sha1", TPM2_ALG_SHA1, 20, "SHA1" },
	{ "sha256", TPM2_ALG_SHA256, 32, "SHA256" },
	{ "sha384", TPM2_ALG_SHA384, 48, "SHA384" },
	{ "sha512", TPM2_ALG_SHA512, 64, "SHA512" },
	{ "sm3_256", TPM2_ALG_SM3_256, 32, "SM3" },
};
_Static_assert(ELEMENTSOF(banks) == PCR_BANKS, "PCR_BANKS counts the bank table");

const struct pcr_bank *pcr_bank_by_name(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(banks); i++)
		if (streq(banks[i].name, name))
			return &banks[i];
	return NULL;
}

const struct pcr_bank *pcr_bank_by_alg(TPMI_ALG_HASH alg)
{
	for (size_t i = 0; i < ELEMENTSOF(banks); i++)
		if (banks[i].alg == alg)
			return &banks[i];
	return NULL;
}

const struct pcr_bank *pcr_bank_by_index(size_t i)
{
	return i < ELEMENTSOF(banks) ? &banks[i] : NULL;
}

size_t pcr_bank_index(const struct pcr_bank *bank)
{
	return (size_t)(bank - banks);
}

int pcr_bank_digest(const struct pcr_bank *bank, const void *data, size_t n, uint8_t *out)
{
	const EVP_MD *md = EVP_get_digestbyname(bank->md);

	if (!md || (size_t)EVP_MD_get_size(md) != bank->size)
		return -EOPNOTSUPP;
	return EVP_Digest(data, n, out, NULL, md, NULL) ? 0 : -EIO;
}

int pcr_bank_extend(const struct pcr_bank *bank, uint8_t *value, const uint8_t *digest)
{
	struct pcr_hashes h = { 0 };
	int r = pcr_hashes_extend(&h, bank, value, digest);

	pcr_hashes_done(&h);
	return r;
}

void pcr_hashes_done(struct pcr_hashes *h)
{
	for (size_t i = 0; i < PCR_BANKS; i++)
		EVP_MD_free(h->md[i]);
	EVP_MD_CTX_free(h->ctx);
	*h = (struct pcr_hashes){ 0 };
}

int pcr_hashes_extend(struct pcr_hashes *h, const struct pcr_bank *bank, uint8_t *value, const uint8_t *digest)
{
	size_t b = pcr_bank_index(bank);

	if (!h->md[b]) {
		/* An explicit fetch: EVP_get_digestbyname's EVP_MD makes every EVP_DigestInit fetch again. */
		EVP_MD *md = EVP_MD_fetch(NULL, bank->md, NULL);

		if (!md || (size_t)EVP_MD_get_size(md) != bank->size) {
			EVP_MD_free(md);
			return -EOPNOTSUPP;
		}
		h->md[b] = md;
	}
	if (!h->ctx && !(h->ctx = EVP_MD_CTX_new()))
		return -ENOMEM;
	if (!EVP_DigestInit_ex2(h->ctx, h->md[b], NULL) || !EVP_DigestUpdate(h->ctx, value, bank->size) ||
	    !EVP_DigestUpdate(h->ctx, digest, bank->size) || !EVP_DigestFinal_ex(h->ctx, value, NULL))
		return -EIO;
	return 0;
}

static int parse_index(const char *s, size_t len, unsigned *ret)
{
	unsigned v = 0;

	if (len == 0 || len > 2)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v >= PCR_COUNT)
		return -ERANGE;
	*ret = v;
	return 0;
}

int pcr_spec_parse(const char *s, const struct pcr_bank *bank, struct pcr_spec *ret, char **ret_bad)
{
	struct pcr_spec spec = { .bank = bank };
	const char *p = s;

	if (!*s)
		goto bad_all;
	while (*p) {
		size_t len = strcspn(p, ","), idx_len = strcspn(p, ":,");
		char item[2 * PCR_DIGEST_MAX + 8];
		unsigned idx;

		if (len == 0 || len >= sizeof(item))
			goto bad_item;
		memcpy(item, p, len);
		item[len] = 0;
		if (parse_index(item, idx_len, &idx) < 0 || (spec.mask & (1u << idx)))
			goto bad_item;
		spec.mask |= 1u << idx;
		if (idx_len < len) {
			const char *v = item + idx_len + 1;

			if (streq(v, "0"))
				memset(spec.values[idx], 0, bank->size);
			else if (hex_decode(v, spec.values[idx], bank->size) < 0)
				goto bad_item;
			spec.given |= 1u << idx;
		}
		p += len;
		if (*p == ',' && *++p == 0)
			goto bad_all;
		continue;
bad_item:
		if (ret_bad)
			*ret_bad = strndup(p, len);
		return -EINVAL;
	}
	*ret = spec;
	return 0;
bad_all:
	if (ret_bad)
		*ret_bad = strdup(s);
	return -EINVAL;
}

void pcr_selection_from_mask(uint32_t mask, TPMI_ALG_HASH alg, TPML_PCR_SELECTION *ret)
{
	*ret = (TPML_PCR_SELECTION){
		.count = 1,
		.pcrSelections[0] = {
			.hash = alg,
			.sizeofSelect = 3,
			.pcrSelect = { mask & 0xff, (mask >> 8) & 0xff, (mask >> 16) & 0xff },
		},
	};
}

static int sha256(const void *a, size_t na, const void *b, size_t nb, const void *c, size_t nc,
		  const void *d, size_t nd, uint8_t out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (!ctx)
		return -ENOMEM;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) && EVP_DigestUpdate(ctx, a, na) &&
	     EVP_DigestUpdate(ctx, b, nb) && EVP_DigestUpdate(ctx, c, nc) &&
	     EVP_DigestUpdate(ctx, d, nd) && EVP_DigestFinal_ex(ctx, out, NULL);
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

int pcr_policy_digest(const struct pcr_spec *spec, uint8_t ret_digest[32])
{
	uint8_t concat[PCR_COUNT * PCR_DIGEST_MAX], pcr_digest[32], zero[32] = { 0 }, sel[64];
	uint8_t cc[4] = { 0x00, 0x00, 0x01, 0x7f }; /* TPM2_CC_PolicyPCR, big-endian */
	TPML_PCR_SELECTION selection;
	size_t n = 0, sel_len = 0;
	int r;

	if (spec->given != spec->mask)
		return -EINVAL; /* every value must be known before the digest means anything */
	for (unsigned i = 0; i < PCR_COUNT; i++)
		if (spec->mask & (1u << i)) {
			memcpy(concat + n, spec->values[i], spec->bank->size);
			n += spec->bank->size;
		}
	pcr_selection_from_mask(spec->mask, spec->bank->alg, &selection);
	if (Tss2_MU_TPML_PCR_SELECTION_Marshal(&selection, sel, sizeof(sel), &sel_len) != TSS2_RC_SUCCESS)
		return -EINVAL;
	r = sha256(concat, n, NULL, 0, NULL, 0, NULL, 0, pcr_digest);
	if (r < 0)
		return r;
	return sha256(zero, sizeof(zero), cc, sizeof(cc), sel, sel_len, pcr_digest, sizeof(pcr_digest),
		      ret_digest);
}

void pcr_mask_format(uint32_t mask, char *buf, size_t size)
{
	size_t o = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < PCR_COUNT && o < size; i++)
		if (mask & (1u << i)) {
			int k = snprintf(buf + o, size - o, "%s%u", o ? "," : "", i);

			if (k < 0)
				break;
			o += (size_t)k;
		}
}
