/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The attestation flow (node/attest.h). The server is verified against the pinned CA only (TLS
 * 1.3, common/https.c); every refusal ends the attempt (fails closed). The node key lives in
 * OpenSSL's secure heap.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "attest-msg.h"
#include "attest-node.h"
#include "attest.h"
#include "config.h"
#include "deadline.h"
#include "encode.h"
#include "fileio.h"
#include "https.h"
#include "log.h"
#include "measure.h"
#include "open.h"
#include "ossl.h"
#include "secbuf.h"
#include "tpmpub.h"
#include "witness.h"

#define FIRMWARE_LOG "/sys/kernel/security/tpm0/binary_bios_measurements"

/* One attestation's budget: its end, and the tries left. */
struct exchange {
	const struct attest_options *o;
	int64_t deadline;       /* CLOCK_MONOTONIC ms */
	long long budget_s;     /* the budget's length, for messages */
	unsigned retries_left;
	unsigned retried;       /* the backoff's exponent */
	enum attest_failure failure;
	/* The server's TLS session, resumed by the next request of this run (memory only). */
	struct https_session *tls;
};

/* An HTTP answer and this node's clock when it arrived. */
struct answer {
	struct https_reply reply;
	int64_t received;
};

static void answer_done(struct answer *a)
{
	https_reply_done(&a->reply);
}

/* The server is busy or a gateway in front of it is: the same request may pass later. */
static bool busy(int status)
{
	return status == 429 || status == 502 || status == 503 || status == 504;
}

/*
 * Failures of a request worth another try; anything about the server's identity is not. A
 * request that may have arrived (idempotent false) is only repeated when it surely did not.
 */
static bool transient(int r, bool idempotent)
{
	switch (-r) {
	case ECONNREFUSED:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EADDRNOTAVAIL:
		return true;
	case ETIMEDOUT:
	case ECONNRESET:
		return idempotent;
	default:
		return false;
	}
}

/*
 * Before another try: waits the server's Retry-After (seconds, -1: none) and a random part of
 * the doubling backoff (retry_wait_ms: full jitter, so a fleet sent away at once comes back
 * spread out). 1 after waiting; 0 when no try is left; -ETIMEDOUT when the Retry-After would
 * end past the budget.
 */
static int pause_for_retry(struct exchange *x, long retry_after)
{
	uint32_t random = 0;
	int64_t ms;
	struct timespec ts;

	if (!x->retries_left)
		return 0;
	if (getrandom(&random, sizeof(random), 0) != sizeof(random))
		random = (uint32_t)mono_ms();
	ms = retry_wait_ms(x->retried, retry_after, random, x->deadline - mono_ms());
	if (ms < 0)
		return -ETIMEDOUT;
	ts = (struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	x->retries_left--;
	x->retried++;
	return 1;
}

/* A non-200 answer's {"error": ...} reason, or that it gave none. */
static const char *reason_of(const struct answer *a, char reason[ATTEST_REASON_MAX])
{
	if (a->reply.body && attest_error_parse(a->reply.body, a->reply.body_len, reason) == 0)
		return reason;
	return "no reason given";
}

/* A non-200 answer that ends the attempt, with the reason; suffix says why no retry followed. */
static int refused(struct exchange *x, const char *step, const struct answer *a, const char *suffix)
{
	char reason[ATTEST_REASON_MAX];
	const char *why = reason_of(a, reason);

	/* Only this answer, over TLS to the pinned CA's server, says revoked: nothing else ever does. */
	x->failure = busy(a->reply.status)                                        ? ATTEST_FAILED_UNREACHABLE :
		     a->reply.status == 403 && streq(why, ATTEST_REVOKED_REASON) ? ATTEST_FAILED_REVOKED :
										    ATTEST_FAILED_REFUSED;
	return log_error_errno(-EPERM, "the server refused %s (HTTP %d): %s%s", step, a->reply.status, why, suffix);
}

/* A TLS failure that this node's clock explains, said as such: both times named. */
static int tls_clock_failed(const char *url, const struct https_cert_failure *cf)
{
	char now[UTC_TIME_MAX], from[UTC_TIME_MAX], to[UTC_TIME_MAX];

	return log_error_errno(-ETIME,
			       "cannot reach %s: the server's TLS certificate is valid from %s to %s but this "
			       "node's clock says %s: the local clock (RTC) is likely wrong",
			       url, utc_time_format(cf->not_before, from), utc_time_format(cf->not_after, to),
			       utc_time_format((int64_t)time(NULL), now));
}

/* A request that got no usable answer, said once. */
static int unreachable(struct exchange *x, const char *url, int r, const struct https_cert_failure *cf,
		       const char *why, const char *suffix)
{
	switch (-r) {
	case EKEYREJECTED:
		x->failure = ATTEST_FAILED_LOCAL;
		if (cf->error == X509_V_ERR_CERT_NOT_YET_VALID || cf->error == X509_V_ERR_CERT_HAS_EXPIRED)
			return tls_clock_failed(url, cf);
		break;
	case EINVAL:
	case ENOENT:
	case EIO:
	case ENOMEM:
		x->failure = ATTEST_FAILED_LOCAL;
		break;
	default:
		x->failure = ATTEST_FAILED_UNREACHABLE;
	}
	if (r == -EMSGSIZE)
		return log_error_errno(r, "the server's answer from %s is larger than %u bytes", url, ATTEST_MESSAGE_MAX);
	return log_error_errno(r, "cannot reach %s: %s%s", url, why, suffix);
}

#define NO_TIME_LEFT "; another try would end past the %lld s this attestation may take"

/*
 * POSTs body to the server's path within the budget: 0 with a 200 answer in *ret; any other is
 * a refusal, logged with its reason.
 * The start (finish false) is tried again after a failure worth it, and after a busy answer.
 * For the finish, whose nonce such a failure may have taken, -EAGAIN after the pause says to
 * start again from a new challenge. Any other failure is logged and sets x->failure.
 */
static int post(struct exchange *x, const char *path, const char *body, bool finish, struct answer *ret)
{
	const char *step = finish ? "the attestation" : "the attestation start";
	struct https_options h = { .ca_file = x->o->ca, .max_response = ATTEST_MESSAGE_MAX, .session = &x->tls };
	int64_t per_request = 1000LL * (x->o->timeout ? x->o->timeout : ATTEST_TIMEOUT_DEFAULT);
	_cleanup_free_ char *url = NULL;
	char suffix[96], why[512];

	if (asprintf(&url, "%s%s", x->o->server, path) < 0) {
		url = NULL;
		return log_error_errno(-ENOMEM, "out of memory");
	}
	snprintf(suffix, sizeof(suffix), NO_TIME_LEFT, x->budget_s);
	for (;;) {
		struct answer a __attribute__((cleanup(answer_done))) = {};
		struct https_cert_failure cf = {};
		int64_t left = x->deadline - mono_ms();
		int r, p;

		if (left <= 0) {
			x->failure = ATTEST_FAILED_UNREACHABLE;
			return log_error_errno(-ETIMEDOUT, "cannot reach %s: no answer within the %lld s this attestation may take",
					       url, x->budget_s);
		}
		h.timeout_ms = (int)(per_request < left ? per_request : left);
		why[0] = 0;
		r = https_post_json(&h, url, body, &a.reply, &cf, why, sizeof(why));
		a.received = (int64_t)time(NULL);
		if (r == 0)
			log_debug("%s answered %d over a %s TLS handshake", url, a.reply.status,
				  a.reply.resumed ? "resumed" : "full");
		if (r == 0 && a.reply.status == 200) {
			*ret = a;
			a = (struct answer){};
			return 0;
		}
		if (r == 0 && !busy(a.reply.status))
			return refused(x, step, &a, "");
		if (r < 0 && !transient(r, !finish))
			return unreachable(x, url, r, &cf, why, "");
		p = pause_for_retry(x, r == 0 ? a.reply.retry_after : -1);
		if (p > 0 && finish)
			return -EAGAIN;
		if (p > 0) {
			log_debug("trying %s again: %s", url, r < 0 ? why : "the server is busy");
			continue;
		}
		if (p < 0 && r == 0 && a.reply.retry_after >= 0)
			snprintf(suffix, sizeof(suffix), "; its Retry-After of %ld s ends past the %lld s this attestation may take",
				 a.reply.retry_after, x->budget_s);
		if (r == 0)
			return refused(x, step, &a, p < 0 ? suffix : "");
		return unreachable(x, url, r, &cf, why, p < 0 ? suffix : "");
	}
}

/*
 * The node's clock against the server's (the Date of its answer): more than ATTEST_CLOCK_SKEW_MAX
 * apart and the attestation stops here, before the finish asks the server to issue anything.
 */
static int clock_check(const struct answer *a)
{
	char node[UTC_TIME_MAX], server[UTC_TIME_MAX];
	int64_t date = (int64_t)a->reply.date, skew = a->received - date;

	if (!date || (skew <= ATTEST_CLOCK_SKEW_MAX && skew >= -ATTEST_CLOCK_SKEW_MAX))
		return 0;
	return log_error_errno(-ETIME,
			       "this node's clock says %s but the server's says %s (its Date header): %lld s %s, "
			       "more than the %d s keystrap tolerates; the local clock (RTC) is likely wrong, "
			       "so nothing was requested",
			       utc_time_format(a->received, node), utc_time_format(date, server),
			       (long long)(skew < 0 ? -skew : skew), skew < 0 ? "behind" : "ahead", ATTEST_CLOCK_SKEW_MAX);
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
	int64_t not_after;
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
				       utc_time_format(cert_time_unix(X509_get0_notBefore(cert)), from),
				       utc_time_format(cert_time_unix(X509_get0_notAfter(cert)), to), utc_time_format(at, when));
	if (!ok)
		return log_error_errno(-EPROTO, "the server's certificate does not verify against the chain it sent");
	not_after = cert_time_unix(X509_get0_notAfter(cert));
	if (!not_after)
		return log_error_errno(-EPROTO, "the server's certificate has no usable expiry");
	*ret_not_after = not_after;
	return 0;
}

/* A log to send: path's bytes, none when a default path does not exist. */
static int log_read(const char *path, bool given, size_t max, const char *what, uint8_t **ret, size_t *ret_size)
{
	_cleanup_free_ uint8_t *p = NULL;
	size_t n = 0;
	int r = read_file(path, max, &p, &n);

	if (r == -ENOENT && !given) {
		*ret = NULL;
		*ret_size = 0;
		return 0;
	}
	if (r == -EFBIG)
		return log_error_errno(r, "the %s '%s' is larger than %zu bytes", what, path, max);
	if (r < 0)
		return log_error_errno(r, "cannot read the %s '%s': %s", what, path, strerror(-r));
	*ret = n ? TAKE_PTR(p) : NULL;
	*ret_size = n;
	return 0;
}

/* The firmware's event log and keystrap's measurement log, read before the quote they explain. */
static int logs_read(const struct attest_options *o, uint8_t **ret_fw, size_t *ret_fw_size, char **ret_cel,
		     size_t *ret_cel_size)
{
	_cleanup_free_ uint8_t *fw = NULL, *cel = NULL;
	size_t fw_size = 0, cel_size = 0;
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
			 const struct answer *a, struct node_credentials *c)
{
	/* Without a Date header, this node's clock is all there is. */
	int64_t server_now = a->reply.date ? (int64_t)a->reply.date : a->received;
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
	c->clock_skew = a->received - server_now;
	c->certificate = TAKE_PTR(res->certificate);
	c->chain = TAKE_PTR(res->chain);
	c->key = TAKE_PTR(*key);
	return 0;
}

/* One challenge answered: the finish for it, formatted (the proof wiped from fin once copied out). */
static int answer_challenge(const struct attest_options *o, struct tpm *t, ESYS_TR ek, ESYS_TR ak,
			    const struct attest_start *st, const struct attest_challenge *ch, uint8_t *fw,
			    size_t fw_size, char *cel, size_t cel_size, EVP_PKEY **key, char **ret_json)
{
	static struct attest_finish fin;
	const char *what = NULL;
	int r;

	EVP_PKEY_free(*key);
	*key = NULL;
	fin = (struct attest_finish){};
	r = attest_node_answer(t, ek, ak, ch, t, ak, key, &fin, &what);
	if (r < 0)
		return tpm_step_failed(what, r, o->ek_kind);
	memcpy(fin.ek_pub, st->ek_pub, st->ek_pub_size);
	fin.ek_pub_size = st->ek_pub_size;
	fin.event_log = fw;
	fin.event_log_size = fw_size;
	fin.cel_log = cel;
	fin.cel_log_size = cel_size;
	if (o->log_key && (r = witness_request_size(o->log_key, o->checkpoint, &fin.log_size)) < 0)
		return r;
	fin.witness = o->log_key != NULL;
	if (o->share) {
		if (o->share->size != sizeof(fin.share) || strlen(o->share_volume) > ATTEST_VOLUME_LEN)
			return log_error_errno(-EINVAL, "the disk share is not %zu bytes for one volume", sizeof(fin.share));
		fin.has_share_put = true;
		memcpy(fin.share_volume, o->share_volume, strlen(o->share_volume) + 1);
		memcpy(fin.share, o->share->data, sizeof(fin.share));
	}
	for (size_t i = 0; i < o->n_shares_get && i < ATTEST_DISK_SHARES_MAX; i++)
		snprintf(fin.shares_get[fin.n_shares_get++], sizeof(fin.shares_get[0]), "%s", o->shares_get[i]);
	r = attest_finish_format(&fin, ret_json);
	fin.event_log = NULL;
	fin.cel_log = NULL;
	secmem_wipe(fin.proof, sizeof(fin.proof));
	secmem_wipe(fin.share, sizeof(fin.share));
	return r;
}

/* The EK's identity as the server names it (its hash in the registry and audit records). */
static int ek_hash_of(const struct attest_start *st, char ret[2 * TPM_EK_ID_SIZE + 1])
{
	char reason[TPM_PUB_REASON_MAX];
	uint8_t id[TPM_EK_ID_SIZE];
	struct tpm_pub p;

	if (tpm_pub_parse(st->ek_pub, st->ek_pub_size, &p) < 0 || tpm_ek_identity(&p, id, reason) < 0)
		return log_error_errno(-EPROTO, "cannot name this node's EK as the server does");
	hex_encode(id, sizeof(id), ret);
	return 0;
}

static void wipe_freep(char **p)
{
	if (*p)
		secmem_wipe(*p, strlen(*p));
	free(*p);
}

static int run(struct exchange *x, struct tpm *t, struct node_credentials *c)
{
	const struct attest_options *o = x->o;
	_cleanup_free_ char *start_json = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
	static struct attest_start st;
	static struct attest_challenge ch;
	struct attest_result res __attribute__((cleanup(attest_result_done))) = {};
	struct answer a __attribute__((cleanup(answer_done))) = {};
	_cleanup_free_ uint8_t *fw = NULL;
	_cleanup_free_ char *cel = NULL;
	size_t fw_size = 0, cel_size = 0;
	ESYS_TR ek = ESYS_TR_NONE, ak = ESYS_TR_NONE;
	const char *what = NULL;
	char reason[ATTEST_REASON_MAX], ek_hash[2 * TPM_EK_ID_SIZE + 1];
	int r;

	if ((r = logs_read(o, &fw, &fw_size, &cel, &cel_size)) < 0)
		return r;
	if ((r = attest_node_start(t, o->ek_kind, NULL, &ek, &ak, &st, &what)) < 0)
		return tpm_step_failed(what, r, o->ek_kind);
	if ((r = attest_start_format(&st, &start_json)) < 0)
		goto out;
	/* A finish answered busy starts again here: the server may have dropped its nonce. */
	do {
		/* It carries the disk share (base64) when there is one: wiped, not only freed. */
		_cleanup_(wipe_freep) char *finish_json = NULL;

		answer_done(&a);
		if ((r = post(x, "/v1/attest/start", start_json, false, &a)) < 0)
			goto out;
		if (attest_challenge_parse(a.reply.body, a.reply.body_len, &ch, reason) < 0) {
			r = log_error_errno(-EPROTO, "the server's challenge is malformed: %s", reason);
			goto out;
		}
		if ((r = clock_check(&a)) < 0 ||
		    (r = answer_challenge(o, t, ek, ak, &st, &ch, fw, fw_size, cel, cel_size, &key, &finish_json)) < 0)
			goto out;
		answer_done(&a);
		r = post(x, "/v1/attest/finish", finish_json, true, &a);
		if (r == -EAGAIN)
			log_debug("the finish was answered busy: starting again from a new challenge");
	} while (r == -EAGAIN);
	if (r < 0)
		goto out;
	if (attest_result_parse(a.reply.body, a.reply.body_len, &res, reason) < 0) {
		r = log_error_errno(-EPROTO, "the server's result is malformed: %s", reason);
		goto out;
	}
	/* The log first: nothing of a reply the log does not vouch for is used. */
	if (o->log_key && ((r = ek_hash_of(&st, ek_hash)) < 0 ||
			   (r = witness_check(o->log_key, o->checkpoint, ek_hash, &res, &c->checkpoint)) < 0))
		goto out;
	r = accept_result(o, t, ek, ak, &ch, &key, &res, &a, c);
out:
	tpm_flush(t, &ek);
	tpm_flush(t, &ak);
	ERR_clear_error();
	return r;
}

void attest_options_from_config(const struct keystrap_config *cfg, enum tpm_ek_kind kind, struct attest_options *ret)
{
	*ret = (struct attest_options){
		.server = cfg->server,
		.ca = cfg->ca,
		.ek_kind = kind,
		.timeout = cfg->timeout,
		.attempts = cfg->retries + 1,
		.log_key = cfg->log_key,
	};
}

int attest_run(const struct attest_options *o, struct node_credentials **ret, enum attest_failure *failure)
{
	_cleanup_node_credentials_ struct node_credentials *c = NULL;
	_cleanup_tpm_ struct tpm *own = NULL;
	struct tpm *t = o->tpm;
	unsigned attempts = o->attempts ? o->attempts : ATTEST_RETRIES_DEFAULT + 1;
	long long per_request = o->timeout ? o->timeout : ATTEST_TIMEOUT_DEFAULT;
	struct exchange x = {
		.o = o,
		.budget_s = per_request * attempts,
		.deadline = mono_ms() + 1000 * per_request * attempts,
		.retries_left = attempts - 1,
		/* Anything not about the server is this node's. */
		.failure = ATTEST_FAILED_LOCAL,
	};
	int r;

	/* Private keys OpenSSL makes from here on live in mlocked memory it wipes on free. */
	if (!CRYPTO_secure_malloc_initialized())
		(void)CRYPTO_secure_malloc_init(65536, 16);
	c = calloc(1, sizeof(*c));
	if (!c)
		r = log_error_errno(-ENOMEM, "out of memory");
	else if ((t || (r = tpm_connect(&own)) >= 0) && (r = run(&x, t ?: own, c)) >= 0) {
		/* Only a verified reply moves PCR 12: a refused or forged one leaves no trace of success. */
		if (o->measure_log)
			measure_log_use(o->measure_log);
		r = measure_phase(t ?: own, "attested");
	}
	https_session_free(x.tls);
	if (r < 0) {
		if (failure)
			*failure = x.failure;
		return r;
	}
	*ret = TAKE_PTR(c);
	return 0;
}
