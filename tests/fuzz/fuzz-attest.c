/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a node sends the server, as arbitrary bytes: its AK public (and the AK's parent, for an
 * AK that is not a primary of the endorsement hierarchy), a TPMS_ATTEST, a TPMT_SIGNATURE, and
 * the PCR values it claims; plus the nonce and selection the verifier expects. Input layout,
 * every field a 16-bit length then bytes:
 *   ak TPM2B_PUBLIC | parent TPM2B_PUBLIC (empty: none) | attest | signature | nonce
 *   | bank (2 bytes, TPM_ALG_ID) | mask (4 bytes) | PCR values, in index order
 * Seeds (tests/fuzz/seeds/attest/) are real quotes from swtpm: keystrap's ECDSA AK, and an
 * RSASSA AK tpm2-tools made under the RSA EK; plus the EKs in the AK slot, which also drive
 * MakeCredential with RSA 2048, ECC P-256 and P-384 keys.
 * Invariants besides "no crash": an accepted public re-marshals to the very bytes it came from;
 * every refusal has a reason; an accepted quote carries exactly the expected extraData.
 */
#include <stdlib.h>
#include <string.h>

#include "credential.h"
#include "quote.h"
#include "tpmpub.h"
#include "wire.h"

static void must(int cond)
{
	if (!cond)
		abort();
}

struct field {
	uint8_t data[1024];
	size_t size;
};

static void take(struct wire *w, struct field *f)
{
	f->size = wire_tpm2b(w, f->data, sizeof(f->data));
}

static int parse_pub(const struct field *f, struct tpm_pub *ret)
{
	uint8_t again[sizeof(TPM2B_PUBLIC)];
	size_t n;
	int r;

	r = tpm_pub_parse(f->data, f->size, ret);
	if (r < 0)
		return r;
	/* Strict means canonical: the name was hashed over these bytes, so they must be the only encoding. */
	must(tpm_pub_marshal(ret, again, sizeof(again), &n) == 0 && n == f->size && memcmp(again, f->data, n) == 0);
	return 0;
}

static void exercise_key(const struct tpm_pub *pub)
{
	static const uint8_t secret[32] = { 1, 2, 3 };
	TPM2B_ENCRYPTED_SECRET seed;
	TPM2B_ID_OBJECT blob;
	EVP_PKEY *key = NULL;
	const char *why = NULL;
	uint8_t id[TPM_EK_ID_SIZE], id2[TPM_EK_ID_SIZE];
	char reason[TPM_PUB_REASON_MAX] = "";

	if (tpm_pub_to_evp(pub, &key) == 0)
		EVP_PKEY_free(key);
	if (tpm_pub_check_ak(pub, &why) < 0)
		must(why != NULL);
	/* The registry's key: an EK without one says why; one that has it, has it every time. */
	if (tpm_ek_identity(pub, id, reason) < 0)
		must(reason[0] != 0);
	else
		must(tpm_ek_identity(pub, id2, reason) == 0 && memcmp(id, id2, sizeof(id)) == 0);
	/* The server wraps credentials for whatever EK a node presents. */
	if (credential_make(pub, &pub->name, secret, sizeof(secret), &blob, &seed) == 0)
		must(blob.size > 0 && blob.size <= sizeof(blob.credential) && seed.size > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct field ak_f, parent_f, attest, sig, nonce;
	static uint8_t values[PCR_COUNT][PCR_DIGEST_MAX];
	struct wire w = wire_init(data, size);
	char reason[QUOTE_REASON_MAX] = "";
	struct tpm_pub ak, parent;
	TPM2B_NAME parents[2];
	struct quote_expect e = { 0 };
	const uint8_t *inner;
	size_t inner_size;
	TPMS_ATTEST a;
	int r;

	take(&w, &ak_f);
	take(&w, &parent_f);
	take(&w, &attest);
	take(&w, &sig);
	take(&w, &nonce);
	e.bank = pcr_bank_by_alg(wire_u16(&w));
	e.mask = wire_u32(&w);
	if (!wire_ok(&w))
		return 0;
	memset(values, 0, sizeof(values));
	for (unsigned i = 0; e.bank && i < PCR_COUNT; i++)
		if (e.mask & (1u << i))
			wire_bytes(&w, values[i], e.bank->size);

	(void)quote_attest_unwrap(attest.data, attest.size, &inner, &inner_size);
	if (parse_pub(&ak_f, &ak) < 0)
		return 0;
	exercise_key(&ak);
	if (parent_f.size) {
		if (parse_pub(&parent_f, &parent) < 0)
			return 0;
		/* As the server asks: an endorsement primary, or a child of this (EK) parent. */
		tpm_name_hierarchy(TPM2_RH_ENDORSEMENT, &parents[0]);
		must(tpm_name_qualify(&parents[0], &parent.name, &parents[1]) == 0);
		e.ak_parents = parents;
		e.n_ak_parents = 2;
	}
	e.ak = &ak;
	e.extra_data = nonce.data;
	e.extra_data_size = nonce.size;
	e.pcr_values = (const uint8_t(*)[PCR_DIGEST_MAX])values;
	r = quote_verify(&e, attest.data, attest.size, sig.data, sig.size, &a, reason);
	if (r < 0) {
		must(reason[0] != 0);
		return 0;
	}
	must(a.magic == TPM2_GENERATED_VALUE && a.type == TPM2_ST_ATTEST_QUOTE);
	must(a.extraData.size == nonce.size && memcmp(a.extraData.buffer, nonce.data, nonce.size) == 0);
	return 0;
}
