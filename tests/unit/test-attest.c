/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The attestation core's pure code (common/wire, tpmpub; server/verify/credential, quote) without a TPM:
 * known-answer vectors and one real quote captured from swtpm 0.7 (libtpms).
 *
 * Where the expected values come from (computed once, independently of this tree):
 *  - KDFa: Python's hmac module, K(i) = HMAC(key, [i]32 || label || 00 || u || v || [bits]32);
 *    vectors A and C also match `openssl kdf ... KBKDF` (SP 800-108 counter mode).
 *  - KDFe: Python's hashlib, H([i]32 || Z || "IDENTITY\0" || u || v).
 *  - Names: what the TPM itself reported (tpm2_readpublic on swtpm) for the AK and for the
 *    EKs swtpm_setup persisted at 0x81010001 / 0x81010016; the AK's qualified name is the
 *    qualifiedSigner in the captured quote, and sha256(0x4000000b || name) in Python.
 */
#include <errno.h>
#include <string.h>

#include "credential.h"
#include "encode.h"
#include "macro.h"
#include "quote.h"
#include "tap.h"
#include "tpmpub.h"
#include "wire.h"

/* An AK from tpm_ak_create on swtpm, and the quote it made over sha256:0,7,15 with nonce 00..1f. */
static const char ak_hex[] =
	"00580023000b00050076000000100018000b0003001000208d25f053a43f46727d6d4de92ab521f68074f8821f8b85"
	"4072889f7917a22efe00207636a17e5ae7c3f64f49202919bed652502bf22f6acc074f4a2e23d853787fe3";
static const char ak_name_hex[] = "000bb9b0faf7aea9b80ef79c263fbe62d32a2282213d9b7b42d5c98a5fae9a355f2e";
static const char ak_qn_hex[] = "000bf0de714fd72b02e5d05c437e07ba9f8d270c422cbe81a87ff9f2e536e225e918";
static const char attest_hex[] =
	"ff54434780180022000bf0de714fd72b02e5d05c437e07ba9f8d270c422cbe81a87ff9f2e536e225e9180020000102"
	"030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00000000000c18860000000200000000012019"
	"10230016363600000001000b038180000020d7cbb9d2bf9587cb92d6e44b1d3798b7ce25b3cdf9286f51bfb12a96fe19"
	"433d";
static const char sig_hex[] =
	"0018000b0020c623a15a4e78782c7cb6d93d9d38b5bc2bdd5d6d5d3edfd5b1b0e8598821615e00202fa4efa1f767673c"
	"25df6d6336c36033c783c5aa831603a3acff963d49ad2dc1";
static const char pcr15_hex[] = "c6481e22c5ff4164af680b8cfaa5e8ed3120eeff89c4f307c4a6faaae059ce10";

/* swtpm_setup's EKs (templates L-1, H-3) and an L-2 EK, as tpm_ek_create returned them. */
static const char ek_rsa_hex[] =
	"013a0001000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa00060080"
	"004300100800000000000100a9cdbeb89cfb502002edc649c3c02fb512f0ed867ed2d0b40437afb368cc7114d2ebb6ae"
	"be0a2d688a48e41387512fbb5b1e2dab755613b5c5773565a6bdf1e22d4928a3ab90d3f6e9c3a25dc5433aac8e15f24d"
	"6839974bdcd8bda7d244dedfcbec994d03d4303820735b53b66b565672058d52bf1841d55632511b63e775e25b3297d3"
	"0d30ffcd0b095248d7c7ebacd407f6861a572b52a97f0509ebcd2047dfe7056a19a288ea3ce1d8386704c21ff62bb3e8"
	"34cabd7fd9baaea01c07cb017f49bdfccfd4f8250fe7c9a4c2fef4ef763de29eba85e17da01edbb237ad17fa473bf902"
	"ce35ad736e51fe78f788ad0d90c65588eadd466374627bf6e3ff83cd";
static const char ek_rsa_name_hex[] = "000b8f439247b039a393f8a8d700bcbe837f3b791cfdb9c7dd85a4a32cd6a96c6ac8";
static const char ek_p384_hex[] =
	"00aa0023000c000300f20030b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09"
	"699646150f9fc000f3f80e1200060100004300100004001000309735cfd03bc4e86f21dab9fae3b797e91cabe9b30dd6"
	"843757a932c0dde144d978fdb031cba2dc9521a717a5488b652a0030d76d12b3a0b74e1c284edc89422d5dc28b9d4415"
	"ce58750fc008b7415224c86b16d55cbb951edca5a1b1214c2f55a601";
static const char ek_p384_name_hex[] =
	"000c3f267b03522fa5e43b9913e26a01bdc1f7656d91d54e0b4536fc91fa4b65100738d4d17518330cffd83fc7ae5d45d583";
static const char ek_p256_hex[] =
	"007a0023000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa00060080"
	"0043001000030010002002b9cad1c8f52f1998ce61e921861d56452a6b7bc2f36cc55d85cce4c25fe1890020ed1f22b8"
	"9e763c0337d9cfcc063b32409dc56c3ad443f4e92a1414c5fab0e4e0";

static size_t unhex(const char *s, uint8_t *out)
{
	size_t n = strlen(s) / 2;

	return hex_decode(s, out, n) == 0 ? n : 0;
}

static bool hex_is(const uint8_t *p, size_t n, const char *want)
{
	char buf[512];

	if (2 * n + 1 > sizeof(buf))
		return false;
	hex_encode(p, n, buf);
	return streq(buf, want);
}

static void seq(uint8_t *p, size_t n, uint8_t from)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(from + i);
}

static void test_kdfa(void)
{
	uint8_t key[32], name[34] = { 0x00, 0x0b }, ctx_v[16], out[65];

	seq(key, 32, 0);
	seq(name + 2, 32, 0xa0);
	seq(ctx_v, 16, 0);
	CHECK(tpm_kdfa(TPM2_ALG_SHA256, key, 32, "STORAGE", name, 34, NULL, 0, out, 128) == 0 &&
		      hex_is(out, 16, "9320118b011ccd8738f7e77c22c0dd49"),
	      "KDFa-SHA256 \"STORAGE\" with a name as contextU, 128 bits (the credential's symKey shape)");
	CHECK(tpm_kdfa(TPM2_ALG_SHA256, key, 32, "INTEGRITY", NULL, 0, NULL, 0, out, 256) == 0 &&
		      hex_is(out, 32, "bacf689f634ece301e1f1b15b072d9c87db6a69585db42b1a0cb8f73ebe2692e"),
	      "KDFa-SHA256 \"INTEGRITY\", no context, 256 bits (the HMAC key shape)");
	CHECK(tpm_kdfa(TPM2_ALG_SHA256, key, 32, "INTEGRITY", NULL, 0, NULL, 0, out, 520) == 0 &&
		      hex_is(out, 65, "7dafa373893777b31b17cb30ce771741db80d9f34b47ee8ad27ab3931d0ebbadb81d2a665e2458fa"
				      "1add33fe132072316e02d6a9bc5ea325914c9b42fae8eda9e3"),
	      "KDFa over three HMAC blocks, the last one truncated; [bits] is 520 in every block");
	CHECK(tpm_kdfa(TPM2_ALG_SHA384, key, 32, "STORAGE", name, 34, ctx_v, 16, out, 256) == 0 &&
		      hex_is(out, 32, "9ff98909fff83318c62d70aab22cd20a7fbaa800a0e9f9e8b7561a0899073804"),
	      "KDFa-SHA384 with contextU and contextV");
	CHECK(tpm_kdfa(TPM2_ALG_SHA256, key, 32, "X", NULL, 0, NULL, 0, out, 7) == -EINVAL &&
		      tpm_kdfa(TPM2_ALG_SHA256, key, 32, "X", NULL, 0, NULL, 0, out, 0) == -EINVAL &&
		      tpm_kdfa(TPM2_ALG_NULL, key, 32, "X", NULL, 0, NULL, 0, out, 8) == -EINVAL,
	      "KDFa refuses bit counts that are not whole bytes, and unknown hashes");
}

static void test_kdfe(void)
{
	uint8_t z[32], u[32], v[32], out[48];

	seq(z, 32, 0x40);
	seq(u, 32, 0x60);
	seq(v, 32, 0x80);
	CHECK(tpm_kdfe(TPM2_ALG_SHA256, z, 32, "IDENTITY", u, 32, v, 32, out, 256) == 0 &&
		      hex_is(out, 32, "09889693e119f3fcbd0e9fab79ba8a81a68874d97d7929d67587b1fe260bd34c"),
	      "KDFe-SHA256 \"IDENTITY\" (the ECC credential seed shape)");
	CHECK(tpm_kdfe(TPM2_ALG_SHA256, z, 32, "IDENTITY", u, 32, v, 32, out, 384) == 0 &&
		      hex_is(out, 48, "09889693e119f3fcbd0e9fab79ba8a81a68874d97d7929d67587b1fe260bd34c"
				      "1cca12ed8b29b09a2869da6020a073bb"),
	      "KDFe over two hash blocks, the second truncated");
}

static void test_names(void)
{
	uint8_t buf[512];
	struct tpm_pub pub;
	TPM2B_NAME hier, qn;
	size_t n;

	n = unhex(ak_hex, buf);
	CHECK(tpm_pub_parse(buf, n, &pub) == 0 && hex_is(pub.name.name, pub.name.size, ak_name_hex),
	      "the AK's name is the one the TPM reported: 000b || SHA-256(TPMT_PUBLIC)");
	tpm_name_hierarchy(TPM2_RH_ENDORSEMENT, &hier);
	CHECK(hier.size == 4 && hex_is(hier.name, 4, "4000000b"), "the endorsement hierarchy's qualified name is its handle");
	CHECK(tpm_name_qualify(&hier, &pub.name, &qn) == 0 && hex_is(qn.name, qn.size, ak_qn_hex),
	      "the AK's qualified name is the qualifiedSigner of its quote");
	n = unhex(ek_rsa_hex, buf);
	CHECK(tpm_pub_parse(buf, n, &pub) == 0 && hex_is(pub.name.name, pub.name.size, ek_rsa_name_hex),
	      "the RSA EK's name is the one the TPM reported");
	n = unhex(ek_p384_hex, buf);
	CHECK(tpm_pub_parse(buf, n, &pub) == 0 && pub.name.size == 50 &&
		      hex_is(pub.name.name, pub.name.size, ek_p384_name_hex),
	      "the P-384 EK's name is 000c || SHA-384(TPMT_PUBLIC), as the TPM reported");
}

static void test_parse_strict(void)
{
	uint8_t buf[512];
	struct tpm_pub pub;
	size_t n = unhex(ak_hex, buf);
	bool all = true;

	for (size_t k = 0; k < n; k++)
		all = all && tpm_pub_parse(buf, k, &pub) == -EBADMSG;
	CHECK(all, "every truncation of a TPM2B_PUBLIC is refused as malformed");
	buf[n] = 0;
	CHECK(tpm_pub_parse(buf, n + 1, &pub) == -EBADMSG, "a trailing byte after the TPM2B_PUBLIC is refused");
	buf[1]++;
	CHECK(tpm_pub_parse(buf, n + 1, &pub) == -EBADMSG, "a TPM2B size that runs past the TPMT_PUBLIC is refused");
	buf[1]--;
	buf[3] = 0x08; /* type KEYEDHASH */
	CHECK(tpm_pub_parse(buf, n, &pub) == -EOPNOTSUPP, "a keyed-hash object is not an attestation key type");
	buf[3] = 0x23;
	buf[15] = 0x99; /* scheme ECDSA -> unknown */
	CHECK(tpm_pub_parse(buf, n, &pub) == -EBADMSG, "an unknown signing scheme is refused");
	buf[15] = 0x14; /* RSASSA in an ECC key */
	CHECK(tpm_pub_parse(buf, n, &pub) == -EBADMSG, "an RSA scheme in an ECC key is refused");
}

static void test_keys(void)
{
	uint8_t buf[512];
	struct tpm_pub ak, ek;
	EVP_PKEY *k = NULL;
	const char *why = NULL;
	size_t n;

	n = unhex(ak_hex, buf);
	CHECK(tpm_pub_parse(buf, n, &ak) == 0 && tpm_pub_to_evp(&ak, &k) == 0 && EVP_PKEY_get_bits(k) == 256,
	      "the AK converts to a P-256 OpenSSL key");
	EVP_PKEY_free(k);
	k = NULL;
	CHECK(tpm_pub_check_ak(&ak, &why) == 0, "the AK is a restricted signing key");
	n = unhex(ek_rsa_hex, buf);
	CHECK(tpm_pub_parse(buf, n, &ek) == 0 && tpm_pub_to_evp(&ek, &k) == 0 && EVP_PKEY_get_bits(k) == 2048,
	      "the RSA EK converts to a 2048-bit OpenSSL key (exponent 0 meaning 65537)");
	EVP_PKEY_free(k);
	k = NULL;
	CHECK(tpm_pub_check_ak(&ek, &why) == -EKEYREJECTED && why && strstr(why, "restricted signing"),
	      "an EK (a decryption key) is refused as AK, with the reason");
	ak.area.unique.ecc.y.buffer[31] ^= 1;
	CHECK(tpm_pub_to_evp(&ak, &k) == -EBADMSG && !k, "a point off the curve is refused");
	ek.area.parameters.rsaDetail.keyBits = 1024;
	CHECK(tpm_pub_to_evp(&ek, &k) == -EOPNOTSUPP && !k, "a 1024-bit RSA key is refused");
}

static void test_credential_make(void)
{
	uint8_t buf[512], secret[48] = { 7 };
	struct tpm_pub ek, ak;
	TPM2B_ID_OBJECT blob, blob2;
	TPM2B_ENCRYPTED_SECRET seed, seed2;

	tpm_pub_parse(buf, unhex(ak_hex, buf), &ak);
	tpm_pub_parse(buf, unhex(ek_rsa_hex, buf), &ek);
	CHECK(credential_make(&ek, &ak.name, secret, 32, &blob, &seed) == 0 && blob.size == 2 + 32 + 2 + 32 &&
		      blob.credential[0] == 0 && blob.credential[1] == 32 && seed.size == 256,
	      "RSA EK: TPM2B(outerHMAC[32]) || 34 encrypted bytes, a 256-byte OAEP seed");
	CHECK(credential_make(&ek, &ak.name, secret, 32, &blob2, &seed2) == 0 &&
		      memcmp(blob.credential, blob2.credential, blob.size) != 0 && memcmp(seed.secret, seed2.secret, 256) != 0,
	      "every credential has a fresh seed");
	CHECK(credential_make(&ek, &ak.name, secret, 33, &blob, &seed) == -EMSGSIZE &&
		      credential_make(&ek, &ak.name, secret, 0, &blob, &seed) == -EMSGSIZE,
	      "a secret of 0 or more than 32 bytes for a SHA-256 EK is refused, as the TPM would");
	tpm_pub_parse(buf, unhex(ek_p256_hex, buf), &ek);
	CHECK(credential_make(&ek, &ak.name, secret, 32, &blob, &seed) == 0 && seed.size == 2 + 32 + 2 + 32,
	      "ECC P-256 EK: the seed is the ephemeral point, two 32-byte coordinates");
	tpm_pub_parse(buf, unhex(ek_p384_hex, buf), &ek);
	CHECK(credential_make(&ek, &ak.name, secret, 48, &blob, &seed) == 0 && blob.size == 2 + 48 + 2 + 48 &&
		      seed.size == 2 + 48 + 2 + 48,
	      "ECC P-384 EK (SHA-384, AES-256): a 48-byte HMAC and secret, a P-384 ephemeral point");
	ek.area.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CBC;
	CHECK(credential_make(&ek, &ak.name, secret, 32, &blob, &seed) == -EOPNOTSUPP,
	      "an EK whose symmetric scheme is not AES-CFB is refused");
}

/* SHA-256 of the TPMT_PUBLIC inside a TPM2B_PUBLIC given in hex: what the registry kept so far. */
static bool id_is_area_hash(const char *tpm2b_hex, const uint8_t id[TPM_EK_ID_SIZE])
{
	uint8_t buf[512], d[32];
	size_t n = unhex(tpm2b_hex, buf);

	return pcr_bank_digest(pcr_bank_by_alg(TPM2_ALG_SHA256), buf + 2, n - 2, d) == 0 && memcmp(d, id, 32) == 0;
}

/* x has no EK identity, for the reason want. */
static bool no_identity(const struct tpm_pub *x, const char *want)
{
	uint8_t id[TPM_EK_ID_SIZE];
	char reason[TPM_PUB_REASON_MAX];

	return tpm_ek_identity(x, id, reason) == -EKEYREJECTED && streq(reason, want);
}

static void test_ek_identity(void)
{
	static const char *const eks[] = { ek_rsa_hex, ek_p256_hex, ek_p384_hex };
	uint8_t buf[512], id[TPM_EK_ID_SIZE], id2[TPM_EK_ID_SIZE];
	char reason[TPM_PUB_REASON_MAX];
	struct tpm_pub ek, x;
	bool all = true, distinct = true;

	for (size_t i = 0; i < ELEMENTSOF(eks); i++)
		all = all && tpm_pub_parse(buf, unhex(eks[i], buf), &ek) == 0 && tpm_ek_identity(&ek, id, reason) == 0 &&
		      id_is_area_hash(eks[i], id);
	CHECK(all, "EKs a TPM derived (L-1, L-2, H-3) have an identity: SHA-256 of their TPMT_PUBLIC, as registry rows hold");
	for (size_t i = 0; i < _TPM_EK_KIND_MAX; i++)
		for (size_t j = i + 1; j < _TPM_EK_KIND_MAX; j++) {
			const TPMT_PUBLIC *a = &tpm_ek_profile(i)->area, *b = &tpm_ek_profile(j)->area;

			distinct = distinct && !(a->type == b->type && (a->type == TPM2_ALG_RSA ?
						a->parameters.rsaDetail.keyBits == b->parameters.rsaDetail.keyBits :
						a->parameters.eccDetail.curveID == b->parameters.eccDetail.curveID));
		}
	CHECK(distinct && !tpm_ek_profile(_TPM_EK_KIND_MAX),
	      "no two EK templates hold the same key type: the key alone decides the template");

	tpm_pub_parse(buf, unhex(ek_rsa_hex, buf), &ek);
	x = ek;
	memset(x.area.authPolicy.buffer, 0xab, 32);
	CHECK(no_identity(&x, "authPolicy 'abababababababababababababababababababababababababababababababab' is not the EK "
			      "template L-1's (rsa2048)"),
	      "the certified RSA key under another authPolicy: no identity, the policy quoted");
	x = ek;
	x.area.authPolicy.size = 0;
	CHECK(no_identity(&x, "authPolicy '' is not the EK template L-1's (rsa2048)"), "or with no authPolicy");
	x = ek;
	x.area.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
	CHECK(no_identity(&x, "objectAttributes 0x000300f2 are not 0x000300b2 (EK template L-1, rsa2048)"),
	      "with userWithAuth added: refused, both attribute sets named");
	x = ek;
	x.area.nameAlg = TPM2_ALG_SHA384;
	CHECK(no_identity(&x, "nameAlg 0x000c is not 0x000b (EK template L-1, rsa2048)"),
	      "with another nameAlg: refused");
	x = ek;
	x.area.parameters.rsaDetail.exponent = 65537;
	CHECK(no_identity(&x, "the symmetric, scheme, exponent or KDF parameters are not the EK template L-1's (rsa2048)"),
	      "the default exponent written out (the same key): refused");
	x = ek;
	x.area.parameters.rsaDetail.keyBits = 3072;
	CHECK(no_identity(&x, "an RSA 3072 key is in none of the EK templates (rsa2048, ecc256, ecc384)"),
	      "an RSA 3072 key: in no template");
	x = ek;
	x.area.unique.rsa.size = 255;
	CHECK(no_identity(&x, "an RSA modulus of 255 bytes is not a 2048-bit key"),
	      "a short modulus: refused");

	tpm_pub_parse(buf, unhex(ek_p256_hex, buf), &ek);
	x = ek;
	x.area.parameters.eccDetail.symmetric.keyBits.aes = 256;
	CHECK(no_identity(&x, "the symmetric, scheme, exponent or KDF parameters are not the EK template L-2's (ecc256)"),
	      "the P-256 key with AES-256: refused");
	x = ek;
	x.area.parameters.eccDetail.curveID = TPM2_ECC_NIST_P521;
	CHECK(no_identity(&x, "an ECC key on curve 0x0005 is in none of the EK templates (rsa2048, ecc256, ecc384)"),
	      "a P-521 key: in no template");
	/* A point whose x starts with a zero octet, written at full length and without it. */
	x = ek;
	x.area.unique.ecc.x.buffer[0] = 0;
	CHECK(tpm_ek_identity(&x, id, reason) == 0, "a P-256 key with x = 00...: an identity");
	memmove(x.area.unique.ecc.x.buffer, x.area.unique.ecc.x.buffer + 1, 31);
	x.area.unique.ecc.x.size = 31;
	CHECK(tpm_ek_identity(&x, id2, reason) == 0 && memcmp(id, id2, sizeof(id)) == 0,
	      "the same point with x's leading zero dropped: the same identity");
	x.area.unique.ecc.y.size = 33;
	CHECK(no_identity(&x, "ECC point coordinates of 31 and 33 bytes exceed the curve"),
	      "a coordinate longer than the curve: refused");

	tpm_pub_parse(buf, unhex(ek_p384_hex, buf), &ek);
	x = ek;
	x.area.authPolicy = tpm_ek_profile(TPM_EK_ECC_P256)->area.authPolicy;
	CHECK(no_identity(&x, "authPolicy '837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa' is not the "
			      "EK template H-3's (ecc384)"),
	      "the P-384 key under the low-range policy: refused");
}

struct real_quote {
	struct tpm_pub ak;
	uint8_t attest[256], sig[128], nonce[32], values[PCR_COUNT][PCR_DIGEST_MAX];
	size_t attest_size, sig_size;
	struct quote_expect e;
};

static void real_quote_load(struct real_quote *q)
{
	uint8_t buf[256];

	memset(q, 0, sizeof(*q));
	tpm_pub_parse(buf, unhex(ak_hex, buf), &q->ak);
	q->attest_size = unhex(attest_hex, q->attest);
	q->sig_size = unhex(sig_hex, q->sig);
	seq(q->nonce, 32, 0);
	unhex(pcr15_hex, q->values[15]); /* PCRs 0 and 7 are zero on swtpm */
	q->e = (struct quote_expect){
		.ak = &q->ak, .extra_data = q->nonce, .extra_data_size = 32, .bank = pcr_bank_by_name("sha256"),
		.mask = 1u << 0 | 1u << 7 | 1u << 15, .pcr_values = (const uint8_t(*)[PCR_DIGEST_MAX])q->values,
	};
}

static int verify(struct real_quote *q, char *reason)
{
	return quote_verify(&q->e, q->attest, q->attest_size, q->sig, q->sig_size, NULL, reason);
}

/* Flips each byte's low bit of buf (part of q) in turn: the quote must fail every time. */
static bool every_flip_fails(struct real_quote *q, uint8_t *buf, size_t size)
{
	char reason[QUOTE_REASON_MAX];
	bool all = true;

	for (size_t i = 0; i < size && all; i++) {
		buf[i] ^= 0x01;
		all = verify(q, reason) < 0;
		buf[i] ^= 0x01;
	}
	return all;
}

static void test_quote(void)
{
	static struct real_quote q;
	char reason[QUOTE_REASON_MAX];
	TPMS_ATTEST a;
	TPM2B_NAME owner, parents[2];
	bool all;

	real_quote_load(&q);
	CHECK(quote_verify(&q.e, q.attest, q.attest_size, q.sig, q.sig_size, &a, reason) == 0 &&
		      a.clockInfo.resetCount == 2 && a.clockInfo.restartCount == 0 && a.firmwareVersion == 0x2019102300163636ULL,
	      "the captured swtpm quote verifies and reports its clock and firmware fields");
	q.nonce[0] ^= 1;
	CHECK(verify(&q, reason) == -EPERM && streq(reason, "quote extraData does not match the expected nonce"),
	      "another nonce: refused, naming the nonce");
	q.nonce[0] ^= 1;
	q.values[7][0] = 1;
	CHECK(verify(&q, reason) == -EPERM && streq(reason, "PCR digest does not match the PCR values"),
	      "another reported PCR 7: refused, naming the PCR digest");
	q.values[7][0] = 0;
	q.e.mask = 1u << 0 | 1u << 7;
	CHECK(verify(&q, reason) == -EPERM &&
		      streq(reason, "quoted PCR selection sha256:0,7,15 is not the requested sha256:0,7"),
	      "another PCR selection asked for: refused, naming both");
	q.e.mask = 1u << 0 | 1u << 7 | 1u << 15;
	tpm_name_hierarchy(TPM2_RH_OWNER, &owner);
	q.e.ak_parents = &owner;
	q.e.n_ak_parents = 1;
	CHECK(verify(&q, reason) == -EKEYREJECTED && streq(reason, "quote signed by a key other than the AK"),
	      "the same AK taken for an owner-hierarchy key is another signer");
	parents[0] = owner;
	tpm_name_hierarchy(TPM2_RH_ENDORSEMENT, &parents[1]);
	q.e.ak_parents = parents;
	q.e.n_ak_parents = 2;
	CHECK(verify(&q, reason) == 0, "the AK under the second of two admissible parents (owner, endorsement) verifies");
	q.e.n_ak_parents = 0;

	CHECK(every_flip_fails(&q, q.attest, q.attest_size), "flipping any one bit of the signed attest bytes makes the quote fail");
	CHECK(every_flip_fails(&q, q.sig, q.sig_size), "flipping any one bit of the signature makes the quote fail");
	all = true;
	for (size_t k = 0; k < q.attest_size && all; k++)
		all = quote_verify(&q.e, q.attest, k, q.sig, q.sig_size, NULL, reason) == -EBADMSG;
	CHECK(all, "every truncation of the attest bytes is refused as malformed");
	CHECK(verify(&q, reason) == 0, "and the untouched quote still verifies");
}

static void test_unwrap(void)
{
	uint8_t buf[4] = { 0x00, 0x02, 0xaa, 0xbb };
	const uint8_t *p;
	size_t n;

	CHECK(quote_attest_unwrap(buf, 4, &p, &n) == 0 && p == buf + 2 && n == 2, "a TPM2B_ATTEST unwraps to its bytes");
	CHECK(quote_attest_unwrap(buf, 3, &p, &n) == -EBADMSG && quote_attest_unwrap(buf + 1, 3, &p, &n) == -EBADMSG,
	      "a TPM2B_ATTEST whose size is not its length is refused");
}

static void test_wire(void)
{
	const uint8_t in[] = { 0x01, 0x02, 0x03, 0x00, 0x05 };
	struct wire w = wire_init(in, sizeof(in));
	uint8_t dst[4];

	CHECK(wire_u16(&w) == 0x0102 && wire_u8(&w) == 0x03 && wire_ok(&w) && w.left == 2, "reads are big-endian");
	CHECK(wire_u32(&w) == 0 && !wire_ok(&w) && w.left == 0, "a read past the end fails and consumes nothing more");
	CHECK(wire_u8(&w) == 0 && !wire_ok(&w), "once failed, every later read fails");
	w = wire_init(in + 3, 2);
	CHECK(wire_tpm2b(&w, dst, 4) == 0 && !wire_ok(&w), "a TPM2B longer than the input fails");
	w = wire_init((const uint8_t[]){ 0x00, 0x05, 1, 2, 3, 4, 5 }, 7);
	CHECK(wire_tpm2b(&w, dst, 4) == 0 && !wire_ok(&w), "a TPM2B longer than its destination fails");
}

int main(void)
{
	test_kdfa();
	test_kdfe();
	test_names();
	test_parse_strict();
	test_keys();
	test_credential_make();
	test_ek_identity();
	test_quote();
	test_unwrap();
	test_wire();
	return TAP_DONE();
}
