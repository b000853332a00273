/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * attest-check: drives keystrap's attestation core (node/tpm.c, credential.c, quote.c, tpmpub.c)
 * against a real TPM for tests/bats/attest-crypto.bats. Each subcommand does one thing and prints
 * one line: exit 0 when it succeeded, 1 when it was refused (the line says why), 2 on usage.
 * Test-only: it reads a test secret from a file, which keystrap itself never does.
 *
 *   ek KIND OUT.pub [OTHER.pub]   read KIND's EK certificate, derive the EK, check the certificate
 *                                 names it (or names OTHER.pub instead); write the EK public
 *   ak UNIQUE OUT.pub             derive the AK, check its name and qualified name against the TPM's
 *   makecred EK.pub NAME SECRET OUT   software MakeCredential; OUT in tpm2-tools' file format
 *   activate KIND UNIQUE CRED SECRET  ActivateCredential with KIND's EK and the AK; compare to SECRET
 *   quote UNIQUE BANK:PCRS NONCE DIR  quote; DIR/attest (TPMS_ATTEST), DIR/signature, DIR/pcrs
 *   pcrread BANK:PCRS FILE        the PCR values, concatenated in index order
 *   verify AK.pub BANK:PCRS NONCE DIR [PARENT.pub]  verify DIR's quote (AK under PARENT, else a
 *                                 primary in the endorsement hierarchy)
 *   bench KIND UNIQUE SECONDS     operations per second of the pure code, TPM latencies
 *
 * KIND: rsa2048|ecc256|ecc384; UNIQUE, NAME, NONCE: hex. *.pub: marshalled TPM2B_PUBLIC.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <tss2/tss2_mu.h>

#include "credential.h"
#include "encode.h"
#include "fileio.h"
#include "log.h"
#include "quote.h"
#include "secbuf.h"
#include "tpm.h"
#include "tpmpub.h"
#include "wire.h"

#define FILE_MAX 65536
#define TOOLS_MAGIC 0xBADCC0DEu

static int usage(void)
{
	fprintf(stderr, "usage: attest-check ek|ak|makecred|activate|quote|pcrread|verify|bench ... (see source)\n");
	return 2;
}

static int refuse(const char *fmt, ...) _printf_(1, 2);
static int refuse(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	return 1;
}

static int read_all(const char *path, uint8_t *buf, size_t max, size_t *ret_size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	ssize_t k;

	if (fd < 0)
		return -errno;
	while ((k = read(fd, buf + n, max - n)) > 0)
		if ((n += (size_t)k) == max)
			return -EFBIG;
	if (k < 0)
		return -errno;
	*ret_size = n;
	return 0;
}

static int write_all(const char *path, const void *buf, size_t size)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	return fd < 0 ? -errno : write_full(fd, buf, size);
}

static int hex_arg(const char *s, uint8_t *buf, size_t max, size_t *ret_size)
{
	size_t n = strlen(s) / 2;

	if (strlen(s) % 2 || n > max || hex_decode(s, buf, n) < 0)
		return -EINVAL;
	*ret_size = n;
	return 0;
}

static int load_pub(const char *path, struct tpm_pub *ret)
{
	uint8_t buf[sizeof(TPM2B_PUBLIC)];
	size_t n;
	int r = read_all(path, buf, sizeof(buf), &n);

	return r < 0 ? r : tpm_pub_parse(buf, n, ret);
}

static int save_pub(const char *path, const TPM2B_PUBLIC *pub, struct tpm_pub *ret)
{
	uint8_t buf[sizeof(TPM2B_PUBLIC)];
	size_t n;
	int r = tpm_pub_from_tss(pub, ret);

	if (r >= 0)
		r = tpm_pub_marshal(ret, buf, sizeof(buf), &n);
	return r < 0 ? r : write_all(path, buf, n);
}

static void name_hex(const TPM2B_NAME *n, char *out)
{
	hex_encode(n->name, n->size, out);
}

/* "sha256:7,15" */
static int pcrs_arg(const char *s, const struct pcr_bank **ret_bank, uint32_t *ret_mask)
{
	struct pcr_spec spec;
	const char *colon = strchr(s, ':');
	char bank[16];

	if (!colon || (size_t)(colon - s) >= sizeof(bank))
		return -EINVAL;
	memcpy(bank, s, (size_t)(colon - s));
	bank[colon - s] = 0;
	*ret_bank = pcr_bank_by_name(bank);
	if (!*ret_bank || pcr_spec_parse(colon + 1, *ret_bank, &spec, NULL) < 0 || spec.given)
		return -EINVAL;
	*ret_mask = spec.mask;
	return 0;
}

static int open_tpm(struct tpm **ret)
{
	int r = tpm_open(ret);

	if (r < 0)
		fprintf(stderr, "attest-check: cannot open the TPM: %s\n", strerror(-r));
	return r;
}

static int cmd_ek(int argc, char **argv)
{
	_cleanup_tpm_ struct tpm *t = NULL;
	_cleanup_free_ uint8_t *cert = NULL;
	struct tpm_pub ek, against;
	enum tpm_ek_kind kind;
	TPM2B_PUBLIC pub;
	ESYS_TR h = ESYS_TR_NONE;
	size_t size;
	int r;

	if ((argc != 4 && argc != 5) || tpm_ek_kind_from_name(argv[2], &kind) < 0)
		return usage();
	if (open_tpm(&t) < 0)
		return 1;
	r = tpm_ek_cert_read(t, kind, &cert, &size);
	if (r == -ENOENT)
		return refuse("no EK certificate for %s in this TPM", argv[2]);
	if (r < 0)
		return refuse("reading the %s EK certificate failed: %s", argv[2], strerror(-r));
	r = tpm_ek_create(t, kind, &h, &pub);
	if (r < 0)
		return refuse("creating the %s EK failed: %s", argv[2], strerror(-r));
	tpm_flush(t, &h);
	r = save_pub(argv[3], &pub, &ek);
	if (r < 0)
		return refuse("EK public: %s", strerror(-r));
	if (argc == 5 && load_pub(argv[4], &against) < 0)
		return refuse("%s is not a TPM2B_PUBLIC", argv[4]);
	r = tpm_pub_cert_matches(argc == 5 ? &against : &ek, cert, size);
	if (r == -EKEYREJECTED)
		return refuse("the %s EK certificate certifies another key", argv[2]);
	if (r < 0)
		return refuse("the %s EK certificate is unusable: %s", argv[2], strerror(-r));
	printf("the %s EK certificate (%zu bytes) certifies %s\n", argv[2], size,
	       argc == 5 ? argv[4] : "the EK derived from the profile template");
	return 0;
}

static int parse_unique(const char *s, uint8_t unique[TPM_AK_UNIQUE_SIZE])
{
	size_t n;

	return hex_arg(s, unique, TPM_AK_UNIQUE_SIZE, &n) < 0 || n != TPM_AK_UNIQUE_SIZE ? -EINVAL : 0;
}

static int cmd_ak(int argc, char **argv)
{
	_cleanup_tpm_ struct tpm *t = NULL;
	uint8_t unique[TPM_AK_UNIQUE_SIZE];
	TPM2B_NAME *tpm_name = NULL, *tpm_qn = NULL, hier, qn;
	char hex[2 * sizeof(TPMU_NAME) + 1];
	struct tpm_pub ak;
	TPM2B_PUBLIC pub;
	ESYS_TR h = ESYS_TR_NONE;
	bool same;
	int r;

	if (argc != 4 || parse_unique(argv[2], unique) < 0)
		return usage();
	if (open_tpm(&t) < 0)
		return 1;
	r = tpm_ak_create(t, unique, &h, &pub);
	if (r < 0)
		return refuse("creating the AK failed: %s", strerror(-r));
	r = save_pub(argv[3], &pub, &ak);
	if (r < 0)
		return refuse("AK public: %s", strerror(-r));
	/* The TPM's own view of the name and qualified name is the oracle for tpmpub.c. */
	if (Esys_ReadPublic(t->esys, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, &tpm_name, &tpm_qn) !=
	    TSS2_RC_SUCCESS)
		return refuse("ReadPublic(AK) failed");
	tpm_flush(t, &h);
	tpm_name_hierarchy(TPM2_RH_ENDORSEMENT, &hier);
	r = tpm_name_qualify(&hier, &ak.name, &qn);
	same = r == 0 && tpm_name->size == ak.name.size && !memcmp(tpm_name->name, ak.name.name, ak.name.size) &&
	       tpm_qn->size == qn.size && !memcmp(tpm_qn->name, qn.name, qn.size);
	Esys_Free(tpm_name);
	Esys_Free(tpm_qn);
	if (!same)
		return refuse("the AK's computed name or qualified name differs from the TPM's");
	if (tpm_pub_check_ak(&ak, NULL) < 0)
		return refuse("the AK is not a restricted signing key");
	name_hex(&ak.name, hex);
	printf("%s\n", hex);
	return 0;
}

static int cmd_makecred(int argc, char **argv)
{
	uint8_t out[8 + sizeof(TPM2B_ID_OBJECT) + sizeof(TPM2B_ENCRYPTED_SECRET)] = {
		0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1,
	};
	_cleanup_secbuf_ struct secbuf *secret = NULL;
	TPM2B_ENCRYPTED_SECRET seed;
	TPM2B_ID_OBJECT blob;
	TPM2B_NAME name = { 0 };
	struct tpm_pub ek;
	size_t n, off = 8;
	int r;

	if (argc != 6 || hex_arg(argv[3], name.name, sizeof(name.name), &n) < 0)
		return usage();
	name.size = (uint16_t)n;
	if (load_pub(argv[2], &ek) < 0)
		return refuse("%s is not an RSA or ECC TPM2B_PUBLIC", argv[2]);
	r = secbuf_read_file(argv[4], 64, &secret);
	if (r < 0)
		return refuse("secret file: %s", strerror(-r));
	r = credential_make(&ek, &name, secret->data, secret->size, &blob, &seed);
	if (r < 0)
		return refuse("MakeCredential failed: %s", strerror(-r));
	if (Tss2_MU_TPM2B_ID_OBJECT_Marshal(&blob, out, sizeof(out), &off) != TSS2_RC_SUCCESS ||
	    Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(&seed, out, sizeof(out), &off) != TSS2_RC_SUCCESS)
		return refuse("marshalling the credential failed");
	r = write_all(argv[5], out, off);
	if (r < 0)
		return refuse("%s: %s", argv[5], strerror(-r));
	printf("credential for %s written to %s\n", argv[3], argv[5]);
	return 0;
}

/* tpm2-tools' credential file: magic, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. */
static int load_credential(const char *path, TPM2B_ID_OBJECT *blob, TPM2B_ENCRYPTED_SECRET *seed)
{
	uint8_t buf[8 + sizeof(*blob) + sizeof(*seed)];
	struct wire w;
	size_t n;
	int r = read_all(path, buf, sizeof(buf), &n);

	if (r < 0)
		return r;
	w = wire_init(buf, n);
	if (wire_u32(&w) != TOOLS_MAGIC || wire_u32(&w) != 1)
		return -EBADMSG;
	blob->size = wire_tpm2b(&w, blob->credential, sizeof(blob->credential));
	seed->size = wire_tpm2b(&w, seed->secret, sizeof(seed->secret));
	return wire_done(&w) ? 0 : -EBADMSG;
}

static int cmd_activate(int argc, char **argv)
{
	_cleanup_tpm_ struct tpm *t = NULL;
	_cleanup_secbuf_ struct secbuf *want = NULL, *got = NULL;
	uint8_t unique[TPM_AK_UNIQUE_SIZE];
	TPM2B_ENCRYPTED_SECRET seed;
	TPM2B_ID_OBJECT blob;
	enum tpm_ek_kind kind;
	ESYS_TR ek = ESYS_TR_NONE, ak = ESYS_TR_NONE;
	int r;

	if (argc != 6 || tpm_ek_kind_from_name(argv[2], &kind) < 0 || parse_unique(argv[3], unique) < 0)
		return usage();
	if (load_credential(argv[4], &blob, &seed) < 0)
		return refuse("%s is not a tpm2-tools credential file", argv[4]);
	r = secbuf_read_file(argv[5], 64, &want);
	if (r < 0)
		return refuse("secret file: %s", strerror(-r));
	if (open_tpm(&t) < 0)
		return 1;
	r = tpm_ek_create(t, kind, &ek, NULL);
	if (r >= 0)
		r = tpm_ak_create(t, unique, &ak, NULL);
	if (r >= 0)
		r = tpm_credential_activate(t, ak, ek, &blob, &seed, &got);
	tpm_flush(t, &ak);
	tpm_flush(t, &ek);
	if (r == -EKEYREJECTED)
		return refuse("ActivateCredential refused: the credential is not for this TPM's EK and this AK");
	if (r < 0)
		return refuse("ActivateCredential failed: %s", strerror(-r));
	if (got->size != want->size || !secmem_equal(got->data, want->data, want->size))
		return refuse("ActivateCredential returned a secret other than the one made");
	printf("ActivateCredential recovered the secret (%zu bytes)\n", got->size);
	return 0;
}

static int pcr_values_write(const char *path, const struct pcr_bank *bank, uint32_t mask,
			    uint8_t values[PCR_COUNT][PCR_DIGEST_MAX])
{
	uint8_t buf[PCR_COUNT * PCR_DIGEST_MAX];
	size_t n = 0;

	for (unsigned i = 0; i < PCR_COUNT; i++)
		if (mask & (1u << i)) {
			memcpy(buf + n, values[i], bank->size);
			n += bank->size;
		}
	return write_all(path, buf, n);
}

static int cmd_pcrread(int argc, char **argv)
{
	_cleanup_tpm_ struct tpm *t = NULL;
	uint8_t values[PCR_COUNT][PCR_DIGEST_MAX];
	const struct pcr_bank *bank;
	uint32_t mask;
	int r;

	if (argc != 4 || pcrs_arg(argv[2], &bank, &mask) < 0)
		return usage();
	if (open_tpm(&t) < 0)
		return 1;
	r = tpm_pcr_read(t, bank, mask, values);
	if (r >= 0)
		r = pcr_values_write(argv[3], bank, mask, values);
	if (r < 0)
		return refuse("reading PCRs failed: %s", strerror(-r));
	return 0;
}

static int path_in(char *buf, size_t size, const char *dir, const char *file)
{
	int n = snprintf(buf, size, "%s/%s", dir, file);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int cmd_quote(int argc, char **argv)
{
	_cleanup_tpm_ struct tpm *t = NULL;
	uint8_t unique[TPM_AK_UNIQUE_SIZE], nonce[64], values[PCR_COUNT][PCR_DIGEST_MAX];
	const struct pcr_bank *bank;
	struct tpm_quote q;
	char path[4096];
	ESYS_TR ak = ESYS_TR_NONE;
	uint32_t mask;
	size_t nonce_size;
	int r;

	if (argc != 6 || parse_unique(argv[2], unique) < 0 || pcrs_arg(argv[3], &bank, &mask) < 0 ||
	    hex_arg(argv[4], nonce, sizeof(nonce), &nonce_size) < 0)
		return usage();
	if (open_tpm(&t) < 0)
		return 1;
	r = tpm_ak_create(t, unique, &ak, NULL);
	if (r >= 0)
		r = tpm_quote(t, ak, bank, mask, nonce, nonce_size, &q);
	tpm_flush(t, &ak);
	/* Read after the quote, as a node would: a PCR extended in between shows in the digest. */
	if (r >= 0)
		r = tpm_pcr_read(t, bank, mask, values);
	if (r >= 0 && (r = path_in(path, sizeof(path), argv[5], "attest")) >= 0)
		r = write_all(path, q.attest, q.attest_size);
	if (r >= 0 && (r = path_in(path, sizeof(path), argv[5], "signature")) >= 0)
		r = write_all(path, q.signature, q.signature_size);
	if (r >= 0 && (r = path_in(path, sizeof(path), argv[5], "pcrs")) >= 0)
		r = pcr_values_write(path, bank, mask, values);
	if (r < 0)
		return refuse("quote failed: %s", strerror(-r));
	printf("quote of %s: %zu attest bytes, %zu signature bytes\n", argv[3], q.attest_size, q.signature_size);
	return 0;
}

struct evidence {
	uint8_t attest[sizeof(TPM2B_ATTEST)];
	size_t attest_size;
	uint8_t sig[sizeof(TPMT_SIGNATURE) + 64];
	size_t sig_size;
	uint8_t values[PCR_COUNT][PCR_DIGEST_MAX];
};

static int load_evidence(const char *dir, const struct pcr_bank *bank, uint32_t mask, struct evidence *ev)
{
	uint8_t buf[PCR_COUNT * PCR_DIGEST_MAX];
	char path[4096];
	size_t n, k = 0;
	int r;

	if ((r = path_in(path, sizeof(path), dir, "attest")) < 0 ||
	    (r = read_all(path, ev->attest, sizeof(ev->attest), &ev->attest_size)) < 0 ||
	    (r = path_in(path, sizeof(path), dir, "signature")) < 0 ||
	    (r = read_all(path, ev->sig, sizeof(ev->sig), &ev->sig_size)) < 0 ||
	    (r = path_in(path, sizeof(path), dir, "pcrs")) < 0 ||
	    (r = read_all(path, buf, sizeof(buf), &n)) < 0)
		return r;
	for (unsigned i = 0; i < PCR_COUNT; i++)
		if (mask & (1u << i)) {
			if (k + bank->size > n)
				return -EBADMSG;
			memcpy(ev->values[i], buf + k, bank->size);
			k += bank->size;
		}
	return k == n ? 0 : -EBADMSG;
}

static int cmd_verify(int argc, char **argv)
{
	uint8_t nonce[64];
	char reason[QUOTE_REASON_MAX];
	struct tpm_pub ak, parent;
	struct evidence ev;
	TPM2B_NAME hier, parent_qn;
	TPMS_ATTEST a;
	struct quote_expect e = { .ak = &ak, .extra_data = nonce };
	int r;

	if ((argc != 6 && argc != 7) || pcrs_arg(argv[3], &e.bank, &e.mask) < 0 ||
	    hex_arg(argv[4], nonce, sizeof(nonce), &e.extra_data_size) < 0)
		return usage();
	if (load_pub(argv[2], &ak) < 0)
		return refuse("%s is not an RSA or ECC TPM2B_PUBLIC", argv[2]);
	if (argc == 7) {
		if (load_pub(argv[6], &parent) < 0)
			return refuse("%s is not an RSA or ECC TPM2B_PUBLIC", argv[6]);
		tpm_name_hierarchy(TPM2_RH_ENDORSEMENT, &hier);
		if (tpm_name_qualify(&hier, &parent.name, &parent_qn) < 0)
			return refuse("cannot qualify the parent's name");
		e.ak_parents = &parent_qn;
		e.n_ak_parents = 1;
	}
	r = load_evidence(argv[5], e.bank, e.mask, &ev);
	if (r < 0)
		return refuse("%s does not hold attest, signature and pcrs: %s", argv[5], strerror(-r));
	e.pcr_values = (const uint8_t(*)[PCR_DIGEST_MAX])ev.values;
	r = quote_verify(&e, ev.attest, ev.attest_size, ev.sig, ev.sig_size, &a, reason);
	if (r < 0)
		return refuse("quote refused: %s", reason);
	printf("quote verified: signed by the AK, nonce and PCRs %s match (resetCount %u, restartCount %u)\n",
	       argv[3], a.clockInfo.resetCount, a.clockInfo.restartCount);
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_bench(int argc, char **argv)
{
	_cleanup_tpm_ struct tpm *t = NULL;
	uint8_t unique[TPM_AK_UNIQUE_SIZE], secret[32] = { 1 }, values[PCR_COUNT][PCR_DIGEST_MAX];
	const struct pcr_bank *bank = pcr_bank_by_name("sha256");
	const uint32_t mask = 1u << 0 | 1u << 7 | 1u << 15;
	char reason[QUOTE_REASON_MAX];
	struct tpm_pub ek, ak;
	struct tpm_quote q;
	TPM2B_PUBLIC ek_pub, ak_pub;
	TPM2B_ENCRYPTED_SECRET seed;
	TPM2B_ID_OBJECT blob;
	enum tpm_ek_kind kind;
	ESYS_TR ekh = ESYS_TR_NONE, akh = ESYS_TR_NONE;
	double t0, secs, per = 0;
	long n;

	if (argc != 5 || tpm_ek_kind_from_name(argv[2], &kind) < 0 || parse_unique(argv[3], unique) < 0 ||
	    (secs = atof(argv[4])) <= 0)
		return usage();
	if (open_tpm(&t) < 0 || tpm_ek_create(t, kind, &ekh, &ek_pub) < 0 ||
	    tpm_ak_create(t, unique, &akh, &ak_pub) < 0 || tpm_pub_from_tss(&ek_pub, &ek) < 0 ||
	    tpm_pub_from_tss(&ak_pub, &ak) < 0)
		return refuse("bench: TPM setup failed");

	for (n = 0, t0 = now(); now() - t0 < secs / 2; n++)
		if (credential_make(&ek, &ak.name, secret, sizeof(secret), &blob, &seed) < 0)
			return refuse("bench: MakeCredential failed");
	printf("MakeCredential (%s EK): %.0f/s\n", argv[2], (double)n / (now() - t0));

	for (int i = 0; i < 5; i++) {
		_cleanup_secbuf_ struct secbuf *got = NULL;

		t0 = now();
		if (tpm_credential_activate(t, akh, ekh, &blob, &seed, &got) < 0)
			return refuse("bench: ActivateCredential failed");
		per += now() - t0;
	}
	printf("ActivateCredential on this TPM: %.1f ms\n", per / 5 * 1e3);
	t0 = now();
	if (tpm_quote(t, akh, bank, mask, secret, sizeof(secret), &q) < 0 || tpm_pcr_read(t, bank, mask, values) < 0)
		return refuse("bench: quote failed");
	printf("Quote + PCR_Read on this TPM: %.1f ms\n", (now() - t0) * 1e3);

	struct quote_expect e = {
		.ak = &ak, .extra_data = secret, .extra_data_size = sizeof(secret),
		.bank = bank, .mask = mask, .pcr_values = (const uint8_t(*)[PCR_DIGEST_MAX])values,
	};
	for (n = 0, t0 = now(); now() - t0 < secs / 2; n++)
		if (quote_verify(&e, q.attest, q.attest_size, q.signature, q.signature_size, NULL, reason) < 0)
			return refuse("bench: quote refused: %s", reason);
	printf("quote verify (ECDSA P-256 AK, parse + checks + signature): %.0f/s\n", (double)n / (now() - t0));
	tpm_flush(t, &akh);
	tpm_flush(t, &ekh);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "ek", cmd_ek },           { "ak", cmd_ak },	      { "makecred", cmd_makecred },
		{ "activate", cmd_activate }, { "quote", cmd_quote },     { "pcrread", cmd_pcrread },
		{ "verify", cmd_verify },   { "bench", cmd_bench },
	};

	log_set_level_from_env();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return usage();
	for (size_t i = 0; i < ELEMENTSOF(cmds); i++)
		if (streq(argv[1], cmds[i].name))
			return cmds[i].fn(argc, argv);
	return usage();
}
