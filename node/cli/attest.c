/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap attest: prove this boot to keystrap-server and receive a node certificate.
 *
 *   start:  EK certificate, EK public, a fresh AK (this boot only)  → session, nonce,
 *           MakeCredential challenge bound to the AK's name, the PCRs to quote
 *   finish: proof of ActivateCredential, TPM2_Quote with extraData = H(nonce || proof ||
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
#include <unistd.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "attest-msg.h"
#include "attest-node.h"
#include "encode.h"
#include "fileio.h"
#include "keystrap.h"
#include "log.h"
#include "measure.h"
#include "node-credentials.h"
#include "open.h"
#include "ossl.h"
#include "secbuf.h"

#define RESPONSE_MAX ATTEST_MESSAGE_MAX
#define FIRMWARE_LOG "/sys/kernel/security/tpm0/binary_bios_measurements"

static const char usage[] = "keystrap attest --server URL --ca FILE [--ek rsa2048|ecc256|ecc384] [--event-log FILE]\n"
			    "                       [--log FILE] [--timeout SEC] [--retries N] [--out-dir DIR]";

struct response {
	char *data;
	size_t size;
	bool too_big;
	int64_t date;     /* the server's Date header, Unix seconds; 0: none */
	int64_t received; /* this node's clock when the answer arrived */
};

/* Why the server's TLS certificate did not verify, when it was its validity period. */
struct tls_clock {
	int error; /* X509_V_ERR_CERT_NOT_YET_VALID or _HAS_EXPIRED; 0: not a matter of time */
	int64_t not_before, not_after;
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

static size_t on_header(char *p, size_t size, size_t n, void *userdata)
{
	struct response *r = userdata;
	size_t k = size * n;
	char line[128];

	if (k > 5 && k < sizeof(line) && strncasecmp(p, "Date:", 5) == 0) {
		time_t t;

		memcpy(line, p + 5, k - 5);
		line[k - 5] = 0;
		t = curl_getdate(line, NULL);
		r->date = t > 0 ? (int64_t)t : 0;
	}
	return k;
}

static int64_t asn1_unix(const ASN1_TIME *a)
{
	struct tm tm;

	return a && ASN1_TIME_to_tm(a, &tm) == 1 ? (int64_t)timegm(&tm) : 0;
}

/* This process's slot in each SSL_CTX for the struct tls_clock of the request (libcurl makes the CTX). */
static int tls_clock_index = -1;

/* Records a validity-period failure (the verdict stays OpenSSL's) so the error can name the clock. */
static int on_verify(int ok, X509_STORE_CTX *ctx)
{
	int e = X509_STORE_CTX_get_error(ctx);
	SSL *ssl = X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_clock *tc = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_clock_index) : NULL;
	X509 *x = X509_STORE_CTX_get_current_cert(ctx);

	if (!ok && tc && !tc->error && x && (e == X509_V_ERR_CERT_NOT_YET_VALID || e == X509_V_ERR_CERT_HAS_EXPIRED)) {
		tc->error = e;
		tc->not_before = asn1_unix(X509_get0_notBefore(x));
		tc->not_after = asn1_unix(X509_get0_notAfter(x));
	}
	return ok;
}

static CURLcode on_ssl_ctx(CURL *h, void *sslctx, void *userdata)
{
	SSL_CTX *ctx = sslctx;

	(void)h;
	if (tls_clock_index < 0)
		tls_clock_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (tls_clock_index < 0 || SSL_CTX_set_ex_data(ctx, tls_clock_index, userdata) != 1)
		return CURLE_OUT_OF_MEMORY;
	SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), on_verify);
	return CURLE_OK;
}

/* A TLS failure that this node's clock explains, said as such: both times named. */
static int tls_clock_failed(const char *url, const struct tls_clock *tc)
{
	char now[UTC_TIME_MAX], from[UTC_TIME_MAX], to[UTC_TIME_MAX];

	return log_error_errno(-ETIME,
			       "cannot reach %s: the server's TLS certificate is valid from %s to %s but this "
			       "node's clock says %s: the local clock (RTC) is likely wrong",
			       url, utc_time_format(tc->not_before, from), utc_time_format(tc->not_after, to),
			       utc_time_format((int64_t)time(NULL), now));
}

/*
 * The node's clock against the server's (the Date of its answer): more than ATTEST_CLOCK_SKEW_MAX
 * apart and the attestation stops here, before the finish asks the server to issue anything.
 */
static int clock_check(const struct response *resp)
{
	char node[UTC_TIME_MAX], server[UTC_TIME_MAX];
	int64_t skew = resp->received - resp->date;

	if (!resp->date || (skew <= ATTEST_CLOCK_SKEW_MAX && skew >= -ATTEST_CLOCK_SKEW_MAX))
		return 0;
	return log_error_errno(-ETIME,
			       "this node's clock says %s but the server's says %s (its Date header): %lld s %s, "
			       "more than the %d s keystrap tolerates; the local clock (RTC) is likely wrong, "
			       "so nothing was requested",
			       utc_time_format(resp->received, node), utc_time_format(resp->date, server),
			       (long long)(skew < 0 ? -skew : skew), skew < 0 ? "behind" : "ahead", ATTEST_CLOCK_SKEW_MAX);
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

static void backoff(unsigned attempt)
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
static int http_post(const struct attest_options *o, const char *url, const char *body, bool idempotent,
		     long *ret_status, struct response *ret)
{
	unsigned attempts = o->attempts ? o->attempts : ATTEST_RETRIES_DEFAULT + 1;
	long timeout_ms = 1000L * (o->timeout ? o->timeout : ATTEST_TIMEOUT_DEFAULT);
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	CURLcode c = CURLE_OK;
	struct tls_clock tc = {};
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
	curl_easy_setopt(h, CURLOPT_CAINFO, o->ca);
	curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000 ? timeout_ms : 5000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, ret);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, ret);
	curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, &tc);

	for (unsigned attempt = 0; attempt < attempts; attempt++) {
		if (attempt)
			backoff(attempt - 1);
		free(ret->data);
		*ret = (struct response){};
		tc = (struct tls_clock){};
		c = curl_easy_perform(h);
		ret->received = (int64_t)time(NULL);
		if (c == CURLE_OK) {
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
			if ((status == 429 || status == 502 || status == 503 || status == 504) && attempt + 1 < attempts)
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
		if (c == CURLE_PEER_FAILED_VERIFICATION && tc.error)
			return tls_clock_failed(url, &tc);
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
static int step(const struct attest_options *o, const char *path, const char *body, bool idempotent,
		struct response *resp)
{
	_cleanup_free_ char *url = NULL;
	long status = 0;
	int r;

	if (asprintf(&url, "%s%s", o->server, path) < 0)
		return -ENOMEM;
	r = http_post(o, url, body, idempotent, &status, resp);
	if (r < 0)
		return r;
	if (status != 200)
		return refused(idempotent ? "the attestation start" : "the attestation", status, resp);
	return 0;
}

static X509 *pem_cert(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	return x;
}

/*
 * The certificate is for the key made here and chains to the CA the server names (which came
 * over the TLS connection the pinned CA authenticated), at the server's time (clock_check has
 * bounded how far this node's may be from it); its expiry in Unix seconds.
 */
static int check_certificate(const char *pem, const char *chain, EVP_PKEY *key, int64_t at, int64_t *ret_not_after)
{
	_cleanup_(X509_freep) X509 *cert = pem_cert(pem);
	_cleanup_(X509_freep) X509 *ca = pem_cert(chain);
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	int ok = 0, e = 0;
	char when[UTC_TIME_MAX], from[UTC_TIME_MAX], to[UTC_TIME_MAX];

	if (!cert || EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1)
		return log_error_errno(-EPROTO, "the server's certificate is not for this node's key");
	if (ca && (store = X509_STORE_new()) && X509_STORE_add_cert(store, ca) == 1 && (ctx = X509_STORE_CTX_new()) &&
	    X509_STORE_CTX_init(ctx, store, cert, NULL) == 1) {
		X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
		X509_STORE_CTX_set_time(ctx, 0, (time_t)at);
		ok = X509_verify_cert(ctx) == 1;
		e = X509_STORE_CTX_get_error(ctx);
	}
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	if (!ok && (e == X509_V_ERR_CERT_NOT_YET_VALID || e == X509_V_ERR_CERT_HAS_EXPIRED))
		return log_error_errno(-ETIME, "the server's certificate (valid from %s to %s) or its chain is not "
					       "valid at %s, the server's own time: the server's clock or CA is wrong",
				       utc_time_format(asn1_unix(X509_get0_notBefore(cert)), from),
				       utc_time_format(asn1_unix(X509_get0_notAfter(cert)), to), utc_time_format(at, when));
	if (!ok)
		return log_error_errno(-EPROTO, "the server's certificate does not verify against the chain it sent");
	*ret_not_after = asn1_unix(X509_get0_notAfter(cert));
	if (!*ret_not_after)
		return log_error_errno(-EPROTO, "the server's certificate has no usable expiry");
	return 0;
}

/* A log to send: path's bytes, none when a default path does not exist. */
static int log_read(const char *path, bool given, size_t max, const char *what, uint8_t **ret, size_t *ret_size)
{
	int r = read_file(path, max, ret, ret_size);

	if (r == -ENOENT && !given) {
		*ret = NULL;
		*ret_size = 0;
		return 0;
	}
	if (r == -EFBIG)
		return log_error_errno(r, "the %s '%s' is larger than %zu bytes", what, path, max);
	if (r < 0)
		return log_error_errno(r, "cannot read the %s '%s': %s", what, path, strerror(-r));
	if (*ret_size == 0) {
		free(*ret);
		*ret = NULL;
	}
	return 0;
}

/* The firmware's event log and keystrap's measurement log, read before the quote they explain. */
static int logs_read(const struct attest_options *o, uint8_t **ret_fw, size_t *ret_fw_size, char **ret_cel,
		     size_t *ret_cel_size)
{
	_cleanup_free_ uint8_t *fw = NULL, *cel = NULL;
	size_t fw_size, cel_size;
	int r;

	if (o->measure_log)
		measure_log_use(o->measure_log);
	if ((r = log_read(o->event_log ? o->event_log : FIRMWARE_LOG, o->event_log, ATTEST_EVENTLOG_MAX,
			  "firmware event log", &fw, &fw_size)) < 0 ||
	    (r = log_read(measure_log_path(), o->measure_log, ATTEST_CEL_MAX, "measurement log", &cel, &cel_size)) < 0)
		return r;
	if (cel && memchr(cel, 0, cel_size))
		return log_error_errno(-EBADMSG, "the measurement log '%s' contains a NUL byte", measure_log_path());
	*ret_fw = TAKE_PTR(fw);
	*ret_fw_size = fw_size;
	*ret_cel = (char *)TAKE_PTR(cel);
	*ret_cel_size = cel_size;
	return 0;
}

/* What the server sent for this node: the certificate for our key, its chain, the opened secrets. */
static int accept_result(const struct attest_options *o, struct tpm *t, ESYS_TR ek, ESYS_TR ak,
			 const struct attest_challenge *ch, EVP_PKEY **key, struct attest_result *res,
			 const struct response *resp, struct node_credentials *c)
{
	/* Without a Date header, this node's clock is all there is. */
	int64_t server_now = resp->date ? resp->date : resp->received;
	const char *what = NULL;
	int r;

	if ((r = check_certificate(res->certificate, res->chain, *key, server_now, &c->not_after)) < 0)
		return r;
	r = attest_node_open(t, ek, ak, ch->session, &res->payload, &c->secrets, &c->n_secrets, &what);
	if (r == -EBADMSG && streq(what, "decrypting the payload"))
		return log_error_errno(-EPROTO, "the server's secret payload does not authenticate (tampered with)");
	if (r == -EBADMSG)
		return log_error_errno(-EPROTO, "the server's secret payload is malformed (%s)", what);
	if (r < 0)
		return tpm_step_failed(what, r, o->ek_kind);
	snprintf(c->node_id, sizeof(c->node_id), "%s", res->node_id);
	snprintf(c->server, sizeof(c->server), "%s", o->server);
	c->policy_version = res->policy_version;
	c->clock_skew = resp->received - server_now;
	c->certificate = TAKE_PTR(res->certificate);
	c->chain = TAKE_PTR(res->chain);
	c->key = TAKE_PTR(*key);
	return 0;
}

static int run(const struct attest_options *o, struct tpm *t, struct node_credentials *c)
{
	_cleanup_free_ char *start_json = NULL, *finish_json = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	struct response resp __attribute__((cleanup(response_free))) = {};
	static struct attest_start st;
	static struct attest_challenge ch;
	static struct attest_finish fin;
	struct attest_result res __attribute__((cleanup(attest_result_done))) = {};
	_cleanup_free_ uint8_t *fw = NULL;
	_cleanup_free_ char *cel = NULL;
	size_t fw_size = 0, cel_size = 0;
	ESYS_TR ek = ESYS_TR_NONE, ak = ESYS_TR_NONE;
	const char *what = NULL;
	char reason[ATTEST_REASON_MAX];
	int r;

	if ((r = logs_read(o, &fw, &fw_size, &cel, &cel_size)) < 0)
		return r;
	if ((r = attest_node_start(t, o->ek_kind, NULL, &ek, &ak, &st, &what)) < 0)
		return tpm_step_failed(what, r, o->ek_kind);
	if ((r = attest_start_format(&st, &start_json)) < 0 ||
	    (r = step(o, "/v1/attest/start", start_json, true, &resp)) < 0)
		goto out;
	if (attest_challenge_parse(resp.data, resp.size, &ch, reason) < 0) {
		r = log_error_errno(-EPROTO, "the server's challenge is malformed: %s", reason);
		goto out;
	}
	if ((r = clock_check(&resp)) < 0)
		goto out;
	r = attest_node_answer(t, ek, ak, &ch, t, ak, &key, &fin, &what);
	if (r < 0) {
		r = tpm_step_failed(what, r, o->ek_kind);
		goto out;
	}
	memcpy(fin.ek_pub, st.ek_pub, st.ek_pub_size);
	fin.ek_pub_size = st.ek_pub_size;
	fin.event_log = fw;
	fin.event_log_size = fw_size;
	fin.cel_log = cel;
	fin.cel_log_size = cel_size;
	r = attest_finish_format(&fin, &finish_json);
	fin.event_log = NULL;
	fin.cel_log = NULL;
	secmem_wipe(fin.proof, sizeof(fin.proof));
	if (r < 0 || (r = step(o, "/v1/attest/finish", finish_json, false, &resp)) < 0)
		goto out;
	if (attest_result_parse(resp.data, resp.size, &res, reason) < 0) {
		r = log_error_errno(-EPROTO, "the server's result is malformed: %s", reason);
		goto out;
	}
	r = accept_result(o, t, ek, ak, &ch, &key, &res, &resp, c);
out:
	tpm_flush(t, &ek);
	tpm_flush(t, &ak);
	ERR_clear_error();
	return r;
}

int attest_run(const struct attest_options *o, struct node_credentials **ret)
{
	_cleanup_node_credentials_ struct node_credentials *c = NULL;
	_cleanup_tpm_ struct tpm *t = NULL;
	int r;

	/* Private keys OpenSSL makes from here on live in mlocked memory it wipes on free. */
	if (!CRYPTO_secure_malloc_initialized())
		(void)CRYPTO_secure_malloc_init(65536, 16);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return log_error_errno(-EIO, "cannot initialise libcurl");
	c = calloc(1, sizeof(*c));
	if (!c)
		r = log_error_errno(-ENOMEM, "out of memory");
	else if ((r = tpm_connect(&t)) >= 0 && (r = run(o, t, c)) >= 0) {
		/* Only a verified reply moves PCR 12: a refused or forged one leaves no trace of success. */
		if (o->measure_log)
			measure_log_use(o->measure_log);
		r = measure_phase(t, "attested");
	}
	curl_global_cleanup();
	if (r < 0)
		return r;
	*ret = TAKE_PTR(c);
	return 0;
}

static int write_file(int dir, const char *path, const char *name, const void *p, size_t n)
{
	_cleanup_close_ int fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int r = fd < 0 ? -errno : write_full(fd, p, n);

	if (r < 0)
		return log_error_errno(r, "cannot write %s/%s: %m", path, name);
	return 0;
}

/* After a failed save: none of the set is left, so no half of it is taken for the whole. */
static void discard(int dir, const struct node_credentials *c)
{
	(void)unlinkat(dir, "node.key.der", 0);
	(void)unlinkat(dir, "node.crt", 0);
	(void)unlinkat(dir, "chain.pem", 0);
	for (size_t i = 0; i < c->n_secrets; i++) {
		_cleanup_free_ char *name = NULL;

		if (asprintf(&name, "secrets/%s", c->secrets[i].name) >= 0)
			(void)unlinkat(dir, name, 0);
	}
	(void)unlinkat(dir, "secrets", AT_REMOVEDIR);
}

/* --out-dir (tests, on a tmpfs): the certificate, its chain, the key as DER from a secure buffer, the secrets. */
static int save_files(int dir, const char *path, const struct node_credentials *c)
{
	_cleanup_secbuf_ struct secbuf *der = NULL;
	uint8_t *p;
	int n = i2d_PrivateKey(c->key, NULL), r;

	if (n <= 0 || !(der = secbuf_new((size_t)n)))
		return log_error_errno(-ENOMEM, "out of memory");
	p = der->data;
	if (i2d_PrivateKey(c->key, &p) != n)
		return log_error_errno(-EIO, "cannot encode the node key");
	if ((r = write_file(dir, path, "node.key.der", der->data, der->size)) < 0 ||
	    (r = write_file(dir, path, "node.crt", c->certificate, strlen(c->certificate))) < 0 ||
	    (c->chain && (r = write_file(dir, path, "chain.pem", c->chain, strlen(c->chain))) < 0))
		return r;
	if (c->n_secrets && mkdirat(dir, "secrets", 0700) < 0 && errno != EEXIST)
		return log_error_errno(-errno, "cannot create %s/secrets: %m", path);
	for (size_t i = 0; i < c->n_secrets; i++) {
		_cleanup_free_ char *name = NULL;

		if (asprintf(&name, "secrets/%s", c->secrets[i].name) < 0)
			return log_error_errno(-ENOMEM, "out of memory");
		if ((r = write_file(dir, path, name, c->secrets[i].value->data, c->secrets[i].value->size)) < 0)
			return r;
	}
	return 0;
}

static int save(const char *path, const struct node_credentials *c)
{
	_cleanup_close_ int dir = open(path, O_DIRECTORY | O_CLOEXEC);
	int r;

	if (dir < 0)
		return log_error_errno(-errno, "cannot open --out-dir '%s': %m", path);
	r = save_files(dir, path, c);
	if (r < 0)
		discard(dir, c);
	return r;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

int cmd_attest(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },    { "ca", required_argument, NULL, 'c' },
		{ "ek", required_argument, NULL, 'e' },        { "out-dir", required_argument, NULL, 'o' },
		{ "event-log", required_argument, NULL, 'E' }, { "log", required_argument, NULL, 'l' },
		{ "timeout", required_argument, NULL, 't' },   { "retries", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },            {}
	};
	_cleanup_node_credentials_ struct node_credentials *c = NULL;
	struct attest_options a = { .ek_kind = TPM_EK_RSA2048 };
	const char *out_dir = NULL;
	unsigned retries;
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
			if (tpm_ek_kind_from_name(optarg, &a.ek_kind) < 0)
				return usage_error(usage, "unknown EK kind '%s'", optarg);
			break;
		case 'o':
			out_dir = optarg;
			break;
		case 'E':
			a.event_log = optarg;
			break;
		case 'l':
			a.measure_log = optarg;
			break;
		case 't':
			if (parse_uint(optarg, ATTEST_TIMEOUT_MIN, ATTEST_TIMEOUT_MAX, &a.timeout) < 0)
				return usage_error(usage, "--timeout '%s' is not a number of seconds from %d to %d", optarg,
						   ATTEST_TIMEOUT_MIN, ATTEST_TIMEOUT_MAX);
			break;
		case 'r':
			if (parse_uint(optarg, 0, ATTEST_RETRIES_MAX, &retries) < 0)
				return usage_error(usage, "--retries '%s' is not a number from 0 to %d", optarg,
						   ATTEST_RETRIES_MAX);
			a.attempts = retries + 1;
			break;
		case 'h':
			printf("Usage: %s\n\n"
			       "Prove this boot to keystrap-server and receive a node certificate and secrets.\n"
			       "Without --out-dir the certificate is printed; secrets are not shown.\n\n"
			       "  --server URL      https:// URL of keystrap-server\n"
			       "  --ca FILE         the CA certificate pinned for the server (PEM)\n"
			       "  --ek KIND         which EK: rsa2048 (default), ecc256, ecc384\n"
			       "  --event-log FILE  firmware event log; default the kernel's, none if absent\n"
			       "  --log FILE        keystrap's measurement log; default $KEYSTRAP_MEASURE_LOG or\n"
			       "                    /run/log/keystrap/tpm2-measure.log\n"
			       "  --timeout SEC     per request, %d to %d (default %d; Timeout= in keystrap.conf)\n"
			       "  --retries N       further tries of a request, with backoff and jitter, 0 to %d\n"
			       "                    (default %d; Retries=)\n"
			       "  --out-dir DIR     FOR TESTS ONLY, on a tmpfs: write the certificate, chain, node key\n"
			       "                    and secrets as files (keystrap handoff keeps them in keyrings)\n",
			       usage, ATTEST_TIMEOUT_MIN, ATTEST_TIMEOUT_MAX, ATTEST_TIMEOUT_DEFAULT, ATTEST_RETRIES_MAX,
			       ATTEST_RETRIES_DEFAULT);
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
	if (a.measure_log && a.measure_log[0] != '/')
		return usage_error(usage, "--log '%s' is not an absolute path", a.measure_log);
	if (stat(a.ca, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		log_error("--ca '%s' is not a readable file", a.ca);
		return 1;
	}
	if (a.event_log && (stat(a.event_log, &sb) < 0 || !S_ISREG(sb.st_mode))) {
		log_error("--event-log '%s' is not a readable file", a.event_log);
		return 1;
	}
	if (out_dir && (stat(out_dir, &sb) < 0 || !S_ISDIR(sb.st_mode))) {
		log_error("--out-dir '%s' is not a directory", out_dir);
		return 1;
	}
	r = attest_run(&a, &c);
	if (r >= 0 && out_dir)
		r = save(out_dir, c);
	else if (r >= 0 && (r = write_full(STDOUT_FILENO, c->certificate, strlen(c->certificate))) < 0)
		log_error_errno(r, "cannot write the certificate to stdout: %m");
	if (r < 0)
		return 1;
	fprintf(stderr, "keystrap: attested as %s\n", c->node_id);
	return 0;
}
