/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap attest: prove this boot to keystrap-server and receive a node certificate.
 *
 *   start:  EK certificate, EK public, a fresh AK (this boot only)  → session, nonce,
 *           MakeCredential challenge bound to the AK's name, the PCRs to quote
 *   finish: proof of ActivateCredential, TPM2_Quote with extraData = H(nonce || secret ||
 *           CSR key), the PCR values, a CSR for a P-256 key made here → the certificate
 *
 * The server is verified against --ca only (TLS 1.3); every refusal ends the attempt (fails
 * closed). The node key lives in OpenSSL's secure heap; it touches a file only with --out-dir
 * (tests, on a tmpfs).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "attest-msg.h"
#include "attest-node.h"
#include "keystrap.h"
#include "log.h"
#include "ossl.h"
#include "secbuf.h"

#define RESPONSE_MAX 65536
#define ATTEMPTS 5

static const char usage[] = "keystrap attest --server URL --ca FILE [--ek rsa2048|ecc256|ecc384] [--out-dir DIR]";

struct attest_args {
	const char *server, *ca, *out_dir;
	enum tpm_ek_kind kind;
};

struct response {
	char *data;
	size_t size;
	bool too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
	struct response *r = userdata;
	size_t k = size * n;
	char *q;

	if (r->size + k > RESPONSE_MAX) {
		r->too_big = true;
		return 0;
	}
	q = realloc(r->data, r->size + k + 1);
	if (!q)
		return 0;
	memcpy(q + r->size, p, k);
	r->data = q;
	r->size += k;
	r->data[r->size] = 0;
	return k;
}

/* Transport failures worth another try; anything about the server's identity is not. */
static bool transient(CURLcode c, bool sent_may_have_arrived)
{
	switch (c) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		return true;
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		/* A finish the server may have seen consumed its nonce: no point repeating it. */
		return !sent_may_have_arrived;
	default:
		return false;
	}
}

static void backoff(int attempt)
{
	/* 250 ms doubling, capped at 4 s, plus up to half of it again at random. */
	long ms = 250L << (attempt < 4 ? attempt : 4);
	uint16_t jitter = 0;
	struct timespec ts;

	if (getrandom(&jitter, sizeof(jitter), 0) == sizeof(jitter))
		ms += jitter % (ms / 2 + 1);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	nanosleep(&ts, NULL);
}

/*
 * POSTs body to url; on any HTTP answer returns 0 with *ret_status and the body. Retries
 * refused connections, timeouts (only for idempotent steps) and 429/502/503/504.
 */
static int http_post(const char *url, const char *ca, const char *body, bool idempotent, long *ret_status,
		     struct response *ret)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	CURLcode c = CURLE_OK;
	long status = 0;

	if (!h || !hdr) {
		curl_easy_cleanup(h);
		curl_slist_free_all(hdr);
		return log_error_errno(-ENOMEM, "cannot set up an HTTP client");
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)(CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_DEFAULT));
	/* Pinned: the CA file given, nothing from the system store. */
	curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 20000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, ret);

	for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
		if (attempt)
			backoff(attempt - 1);
		free(ret->data);
		*ret = (struct response){};
		c = curl_easy_perform(h);
		if (c == CURLE_OK) {
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
			if ((status == 429 || status == 502 || status == 503 || status == 504) && attempt + 1 < ATTEMPTS)
				continue;
			break;
		}
		if (!transient(c, !idempotent))
			break;
	}
	curl_easy_cleanup(h);
	curl_slist_free_all(hdr);
	if (c != CURLE_OK) {
		if (ret->too_big)
			return log_error_errno(-EMSGSIZE, "the server's answer from %s is larger than %d bytes", url,
					       RESPONSE_MAX);
		return log_error_errno(-EIO, "cannot reach %s: %s", url, curl_easy_strerror(c));
	}
	*ret_status = status;
	return 0;
}

/* A non-200 answer: its {"error": ...} reason, or what was wrong with it. */
static int refused(const char *step, long status, const struct response *resp)
{
	char reason[ATTEST_REASON_MAX];

	if (resp->data && attest_error_parse(resp->data, resp->size, reason) == 0)
		return log_error_errno(-EPERM, "the server refused %s (HTTP %ld): %s", step, status, reason);
	return log_error_errno(-EPROTO, "the server answered %s with HTTP %ld and no reason", step, status);
}

static void response_free(struct response *r)
{
	free(r->data);
}

static int write_file(const char *dir, const char *name, const void *p, size_t n)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -1;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return -ENOMEM;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write(fd, p, n) != (ssize_t)n)
		return log_error_errno(-errno, "cannot write %s: %m", path);
	return 0;
}

/* --out-dir (tests): the certificate, and the key as DER from a secure buffer. */
static int save(const char *dir, EVP_PKEY *key, const char *cert)
{
	_cleanup_secbuf_ struct secbuf *der = NULL;
	uint8_t *p;
	int n = i2d_PrivateKey(key, NULL);

	if (n <= 0 || !(der = secbuf_new((size_t)n)))
		return -ENOMEM;
	p = der->data;
	if (i2d_PrivateKey(key, &p) != n)
		return -EIO;
	int r = write_file(dir, "node.key.der", der->data, der->size);
	return r < 0 ? r : write_file(dir, "node.crt", cert, strlen(cert));
}

/* What a refusal from the TPM side means, for the one line the operator reads. */
static int tpm_step_failed(const char *what, int r, enum tpm_ek_kind kind)
{
	if (r == -ENOENT && streq(what, "reading the EK certificate"))
		return log_error_errno(r, "the TPM holds no %s EK certificate", tpm_ek_kind_name(kind));
	if (r == -EKEYREJECTED)
		return log_error_errno(r, "the server's credential is not for this TPM's EK and AK");
	if (r == -EBADMSG && streq(what, "reading the credential"))
		return log_error_errno(-EPROTO, "the server's credential is not a TPM2B_ID_OBJECT and "
					       "TPM2B_ENCRYPTED_SECRET");
	return log_error_errno(r, "attestation failed %s: %s", what, tpm_failure_reason(r));
}

/* POSTs one step; a 200 answer's body stays in *resp, anything else is a logged refusal. */
static int step(const struct attest_args *a, const char *path, const char *body, bool idempotent,
		struct response *resp)
{
	_cleanup_free_ char *url = NULL;
	long status = 0;
	int r;

	if (asprintf(&url, "%s%s", a->server, path) < 0)
		return -ENOMEM;
	r = http_post(url, a->ca, body, idempotent, &status, resp);
	if (r < 0)
		return r;
	if (status != 200)
		return refused(idempotent ? "the attestation start" : "the attestation", status, resp);
	return 0;
}

static int run(const struct attest_args *a)
{
	_cleanup_tpm_ struct tpm *t = NULL;
	_cleanup_free_ char *start_json = NULL, *finish_json = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	_cleanup_(X509_freep) X509 *cert = NULL;
	struct response resp __attribute__((cleanup(response_free))) = {};
	static struct attest_start st;
	static struct attest_challenge ch;
	static struct attest_finish fin;
	struct attest_result res = {};
	ESYS_TR ek = ESYS_TR_NONE, ak = ESYS_TR_NONE;
	const char *what = NULL;
	char reason[ATTEST_REASON_MAX];
	BIO *bio;
	int r;

	if ((r = tpm_connect(&t)) < 0)
		return r;
	if ((r = attest_node_start(t, a->kind, NULL, &ek, &ak, &st, &what)) < 0)
		return tpm_step_failed(what, r, a->kind);
	if ((r = attest_start_format(&st, &start_json)) < 0 ||
	    (r = step(a, "/v1/attest/start", start_json, true, &resp)) < 0)
		goto out;
	if (attest_challenge_parse(resp.data, resp.size, &ch, reason) < 0) {
		r = log_error_errno(-EPROTO, "the server's challenge is malformed: %s", reason);
		goto out;
	}
	r = attest_node_answer(t, ek, ak, &ch, t, ak, &key, &fin, &what);
	tpm_flush(t, &ek);
	tpm_flush(t, &ak);
	if (r < 0) {
		r = tpm_step_failed(what, r, a->kind);
		goto out;
	}
	r = attest_finish_format(&fin, &finish_json);
	secmem_wipe(fin.proof, sizeof(fin.proof));
	if (r < 0 || (r = step(a, "/v1/attest/finish", finish_json, false, &resp)) < 0)
		goto out;
	if (attest_result_parse(resp.data, resp.size, &res, reason) < 0) {
		r = log_error_errno(-EPROTO, "the server's result is malformed: %s", reason);
		goto out;
	}
	bio = BIO_new_mem_buf(res.certificate, -1);
	cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!cert || EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
		r = log_error_errno(-EPROTO, "the server's certificate is not for this node's key");
		goto out;
	}
	if (a->out_dir)
		r = save(a->out_dir, key, res.certificate);
	else
		fputs(res.certificate, stdout);
	if (r >= 0)
		fprintf(stderr, "keystrap: attested as %s\n", res.node_id);
out:
	free(res.certificate);
	tpm_flush(t, &ek);
	tpm_flush(t, &ak);
	ERR_clear_error();
	return r;
}

int cmd_attest(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' }, { "ca", required_argument, NULL, 'c' },
		{ "ek", required_argument, NULL, 'e' },     { "out-dir", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },         {}
	};
	struct attest_args a = { .kind = TPM_EK_RSA2048 };
	struct stat sb;
	int o, r;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (o) {
		case 's':
			a.server = optarg;
			break;
		case 'c':
			a.ca = optarg;
			break;
		case 'e':
			if (tpm_ek_kind_from_name(optarg, &a.kind) < 0)
				return usage_error(usage, "unknown EK kind '%s'", optarg);
			break;
		case 'o':
			a.out_dir = optarg;
			break;
		case 'h':
			printf("Usage: %s\n", usage);
			return 0;
		default:
			return usage_error(usage, "unknown option");
		}
	if (optind != argc)
		return usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!a.server || !a.ca)
		return usage_error(usage, "--server and --ca are required");
	if (strncmp(a.server, "https://", 8) != 0 || strlen(a.server) > 1024)
		return usage_error(usage, "--server '%s' is not an https:// URL", a.server);
	if (stat(a.ca, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		log_error("--ca '%s' is not a readable file", a.ca);
		return 1;
	}
	if (a.out_dir && (stat(a.out_dir, &sb) < 0 || !S_ISDIR(sb.st_mode))) {
		log_error("--out-dir '%s' is not a directory", a.out_dir);
		return 1;
	}
	/* Private keys OpenSSL makes from here on live in mlocked memory it wipes on free. */
	(void)CRYPTO_secure_malloc_init(65536, 16);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot initialise libcurl");
		return 1;
	}
	r = run(&a);
	curl_global_cleanup();
	return r < 0 ? 1 : 0;
}
