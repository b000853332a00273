/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server probe: synthetic provisioning. A probe node (a software TPM, server/soft-node.c,
 * whose EK the operator approved once with node approve --probe) attests to the server over
 * the nodes' own HTTPS protocol, start and finish, exactly as a node would; the result and its
 * latency go to a Prometheus textfile (node_exporter's textfile collector) by write-and-rename.
 * The server never releases a secret to a probe node, and the probe checks that it got none.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "admin.h"
#include "attest-msg.h"
#include "ca-chain.h"
#include "fileio.h"
#include "handshake.h"
#include "https.h"
#include "macro.h"
#include "ossl.h"
#include "payload.h"
#include "server-config.h"
#include "soft-node.h"
#include "store.h"

static const char usage[] = "keystrap-server probe --config FILE [--identity DIR] [--event-log FILE] [--measure-log FILE] [--url URL] [--ca FILE] [--textfile FILE] [--timeout SECONDS]\n"
			    "       keystrap-server probe init DIR [--days DAYS]";

#define PROBE_IDENTITY_DEFAULT "/var/lib/keystrap-server/probe"
#define PROBE_TIMEOUT_DEFAULT 10
#define PROBE_DAYS_DEFAULT 3650
/* What keystrap attest exits with (keystrap-attest(8)): the probe tells its failures alike. */
#define EXIT_LOCAL 1
#define EXIT_UNREACHABLE 4
#define EXIT_REFUSED 5

OSSL_DEFINE_FREEP(BIO, BIO_free)

static void chain_freep(STACK_OF(X509) **c)
{
	sk_X509_pop_free(*c, X509_free);
}

/* probe init DIR: the probe's EK (owner-only), its certificate and the one-off CA that signed it. */
static int probe_init(const char *dir, int64_t days)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ek = EVP_EC_gen("P-256"), *ca_key = NULL;
	_cleanup_(chain_freep) STACK_OF(X509) *ca = NULL;
	_cleanup_(chain_freep) STACK_OF(X509) *cert = sk_X509_new_null();
	_cleanup_(soft_node_freep) struct soft_node *n = NULL;
	_cleanup_free_ char *key_path = NULL, *cert_path = NULL, *ca_path = NULL;
	uint8_t der[ATTEST_CERT_MAX];
	const uint8_t *p = der;
	size_t size = 0;
	X509 *x;
	int r;

	if (asprintf(&key_path, "%s/ek.key", dir) < 0 || asprintf(&cert_path, "%s/ek.crt", dir) < 0 ||
	    asprintf(&ca_path, "%s/ek-ca.crt", dir) < 0)
		return admin_refuse("probe init: out of memory");
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return admin_refuse("probe init: cannot make %s: %s", dir, strerror(errno));
	if (access(key_path, F_OK) == 0)
		return admin_refuse("probe init: %s exists: %s holds a probe identity already", key_path, dir);
	/* The CA's key signs this one certificate and is never written: nothing else can be signed by it. */
	if (!ek || !cert || admin_ca_generate("keystrap-server probe EK CA", days, &ca_key, &ca) < 0 ||
	    soft_node_ek_cert(ek, sk_X509_value(ca, 0), ca_key, (int)days, der, sizeof(der), &size) < 0 ||
	    !(x = d2i_X509(NULL, &p, (long)size)) || sk_X509_push(cert, x) <= 0 ||
	    soft_node_new(ek, der, size, &n) < 0) {
		ERR_clear_error();
		return admin_refuse("probe init: cannot make the probe's EK and its certificate");
	}
	if ((r = admin_key_write(ek, key_path)) < 0)
		return admin_refuse("probe init: cannot write %s: %s", key_path, strerror(-r));
	if ((r = admin_chain_write(cert, cert_path)) < 0 || (r = admin_chain_write(ca, ca_path)) < 0) {
		(void)unlink(key_path);
		(void)unlink(cert_path);
		return admin_refuse("probe init: cannot write the certificates in %s: %s", dir, strerror(-r));
	}
	printf("probe identity in %s: EK %s\n"
	       "Next: add %s to ek_ca in the server's configuration (then SIGHUP it), and approve it as a probe:\n"
	       "  keystrap-server node approve %s --id probe-1 --probe --config FILE\n",
	       dir, n->ek_hash, ca_path, n->ek_hash);
	return 0;
}

/* The probe's node: its EK key (owner-only, as every private key the server reads) and certificate. */
static int identity_load(const char *dir, struct soft_node **ret)
{
	_cleanup_free_ char *key_path = NULL, *cert_path = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *ek = NULL;
	_cleanup_(X509_freep) X509 *x = NULL;
	_cleanup_(BIO_freep) BIO *b = NULL;
	_cleanup_free_ uint8_t *der = NULL;
	char why[256];
	FILE *f;
	int n;

	if (asprintf(&key_path, "%s/ek.key", dir) < 0 || asprintf(&cert_path, "%s/ek.crt", dir) < 0)
		return admin_refuse("probe: out of memory");
	if (file_check_private(key_path, why, sizeof(why)) < 0)
		return admin_refuse("probe identity: %s (make one with keystrap-server probe init %s)", why, dir);
	if (!(f = fopen(key_path, "re")))
		return admin_refuse("probe identity: cannot open %s: %s", key_path, strerror(errno));
	ek = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!ek || !EVP_PKEY_is_a(ek, "EC")) {
		ERR_clear_error();
		return admin_refuse("probe identity: %s is not an EC P-256 private key in PEM", key_path);
	}
	if (!(f = fopen(cert_path, "re")))
		return admin_refuse("probe identity: cannot open %s: %s", cert_path, strerror(errno));
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x || (n = i2d_X509(x, &der)) <= 0) {
		ERR_clear_error();
		return admin_refuse("probe identity: %s is not a certificate in PEM", cert_path);
	}
	if (X509_check_private_key(x, ek) != 1) {
		ERR_clear_error();
		return admin_refuse("probe identity: %s is not the certificate of %s", cert_path, key_path);
	}
	if (soft_node_new(ek, der, (size_t)n, ret) < 0)
		return admin_refuse("probe identity: %s is not a P-256 EK", key_path);
	return 0;
}

/*
 * The logs the probe's finishes carry, so that it quotes what a real machine's boot replays to:
 * FILE given, or DIR/event-log and DIR/measure-log when they exist (a golden machine's firmware
 * event log and keystrap measurement log); neither: no logs, and PCRs of zeros.
 */
static int logs_load(struct soft_node *n, const char *dir, const char *event_log, const char *measure_log)
{
	_cleanup_free_ char *ev_default = NULL, *cel_default = NULL;
	_cleanup_free_ uint8_t *ev = NULL, *cel = NULL;
	size_t ev_size = 0, cel_size = 0;
	int r;

	if (asprintf(&ev_default, "%s/event-log", dir) < 0 || asprintf(&cel_default, "%s/measure-log", dir) < 0)
		return admin_refuse("probe: out of memory");
	if (!event_log && access(ev_default, F_OK) == 0)
		event_log = ev_default;
	if (!measure_log && access(cel_default, F_OK) == 0)
		measure_log = cel_default;
	if (event_log && (r = read_file(event_log, ATTEST_EVENTLOG_MAX, &ev, &ev_size)) < 0)
		return admin_refuse("probe: cannot read the event log %s: %s", event_log,
				    r == -EFBIG ? "larger than a node may send" : strerror(-r));
	if (measure_log && (r = read_file(measure_log, ATTEST_CEL_MAX, &cel, &cel_size)) < 0)
		return admin_refuse("probe: cannot read the measurement log %s: %s", measure_log,
				    r == -EFBIG ? "larger than a node may send" : strerror(-r));
	if ((r = soft_node_set_logs(n, ev, ev_size, (const char *)cel, cel_size)) < 0)
		return admin_refuse("probe: %s or %s does not parse as a firmware event log and a CEL-JSON measurement log",
				    event_log ? event_log : "(no event log)", measure_log ? measure_log : "(no measurement log)");
	return 0;
}

/*
 * The registry's word on the probe before it asks the server anything: a node approved into the
 * probe group. Anything else is said in one line (exit 1): unknown, pending, revoked, not a probe.
 */
static int registry_check(const struct server_config *c, const char *ek_hash, char ret_id[NODE_ID_MAX + 1])
{
	_cleanup_store_ struct store *s = NULL;
	struct node_rec n;
	int r;

	if (store_open(c->database, c->kek, &s) < 0)
		return EXIT_LOCAL;
	r = store_node_get(s, ek_hash, &n);
	if (r == -ENOENT)
		return admin_refuse("probe: EK %s is unknown to the registry: approve it with node approve %s --id probe-1 --probe",
				    ek_hash, ek_hash);
	if (r < 0)
		return admin_refuse("probe: cannot read the registry: %s", strerror(-r));
	if (n.state != NODE_APPROVED)
		return admin_refuse("probe: node %s (EK %s) is %s, not approved", n.node_id[0] ? n.node_id : "-", ek_hash,
				    node_state_name(n.state));
	if (!streq(n.group, NODE_GROUP_PROBE))
		return admin_refuse("probe: node %s (EK %s) is in group '%s', not a probe: approve it with --probe",
				    n.node_id, ek_hash, n.group);
	snprintf(ret_id, NODE_ID_MAX + 1, "%s", n.node_id);
	return 0;
}

/* https://LISTEN, a wildcard address as the loopback one. */
static int url_default(const char *listen, char **ret)
{
	const char *colon = strrchr(listen, ':');
	const char *host;
	int hl;

	if (!colon)
		return -EINVAL;
	host = listen;
	hl = (int)(colon - listen);
	if (hl == 0 || (hl == 7 && strncmp(listen, "0.0.0.0", 7) == 0))
		host = "127.0.0.1", hl = 9;
	else if (hl == 4 && strncmp(listen, "[::]", 4) == 0)
		host = "[::1]", hl = 5;
	return asprintf(ret, "https://%.*s%s", hl, host, colon) < 0 ? -ENOMEM : 0;
}

struct outcome {
	int exit;
	char error[ATTEST_REASON_MAX + 256];
};

static int outcome_set(struct outcome *o, int exit, const char *fmt, ...) _printf_(3, 4);
static int outcome_set(struct outcome *o, int exit, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o->error, sizeof(o->error), fmt, ap);
	va_end(ap);
	o->exit = exit;
	return -1;
}

/*
 * Not an answer about the pipeline but about load: a timeout, the rate limit, a proxy's. A 503
 * is the server saying why it admits no node now (no policy in force, an expired or untrusted
 * one, a store that cannot record): a refusal, whose reason the probe quotes. It tries once.
 */
static bool busy(int status)
{
	return status == 408 || status == 429 || status == 502 || status == 504;
}

/* One request of the handshake: 0 with the 200 answer, or the outcome set as keystrap attest would exit. */
static int request(const char *base, const char *ca, int timeout, const char *path, const char *body,
		   struct https_reply *ret, struct outcome *o)
{
	struct https_options h = { .ca_file = ca, .timeout_ms = timeout * 1000, .max_response = ATTEST_MESSAGE_MAX };
	struct https_reply a = {};
	_cleanup_free_ char *url = NULL;
	char why[512] = "", reason[ATTEST_REASON_MAX];
	int r;

	if (asprintf(&url, "%s%s", base, path) < 0)
		return outcome_set(o, EXIT_LOCAL, "out of memory");
	r = https_post_json(&h, url, body, &a, NULL, why, sizeof(why));
	switch (-r) {
	case 0:
		break;
	case EINVAL:
	case ENOENT:
	case EIO:
	case ENOMEM:
	case EKEYREJECTED:
		return outcome_set(o, EXIT_LOCAL, "cannot attest to %s: %s", url, why);
	default:
		return outcome_set(o, EXIT_UNREACHABLE, "cannot reach %s: %s", url, why);
	}
	if (a.status == 200) {
		*ret = a;
		return 0;
	}
	if (attest_error_parse(a.body, a.body_len, reason) < 0)
		snprintf(reason, sizeof(reason), "(no reason given)");
	r = busy(a.status) ? outcome_set(o, EXIT_UNREACHABLE, "%s answered %d, busy: '%s'", url, a.status, reason) :
		       outcome_set(o, EXIT_REFUSED, "refused by the server at %s (%d): '%s'", path, a.status, reason);
	https_reply_done(&a);
	return r;
}

/* The result as the probe checks it: a certificate for its own key, and no secret at all. */
static int result_check(const struct soft_node *n, const char *session, const struct https_reply *a,
			char *ret_serial, size_t serial_size, int64_t *ret_policy, struct outcome *o)
{
	struct attest_result res __attribute__((cleanup(attest_result_done))) = { 0 };
	_cleanup_(X509_freep) X509 *x = NULL;
	_cleanup_(BIO_freep) BIO *b = NULL;
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	struct node_secret *secrets = NULL;
	size_t n_secrets = 0;
	char reason[ATTEST_REASON_MAX], *hex;
	int r;

	if (attest_result_parse(a->body, a->body_len, &res, reason) < 0)
		return outcome_set(o, EXIT_LOCAL, "the server's result does not parse: %s", reason);
	b = BIO_new_mem_buf(res.certificate, -1);
	x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	if (!x || X509_check_private_key(x, n->key) != 1) {
		ERR_clear_error();
		return outcome_set(o, EXIT_LOCAL, "the certificate the server issued is not for the probe's key");
	}
	r = soft_node_open(n, session, &res.payload, &secrets, &n_secrets);
	if (r < 0)
		return outcome_set(o, EXIT_LOCAL, "the payload does not open with the probe's EK: %s", strerror(-r));
	node_secrets_free(secrets, n_secrets);
	if (n_secrets > 0)
		return outcome_set(o, EXIT_LOCAL, "the server released %zu secret(s) to the probe node: it must release none",
				   n_secrets);
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	hex = bn ? BN_bn2hex(bn) : NULL;
	snprintf(ret_serial, serial_size, "%s", hex ? hex : "?");
	OPENSSL_free(hex);
	*ret_policy = res.policy_version;
	return 0;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* node_exporter's textfile format, written beside and renamed, so a scrape never reads half of it. */
static int textfile_write(const char *path, bool success, double duration, time_t when)
{
	_cleanup_free_ char *tmp = NULL, *text = NULL;
	int r;

	if (asprintf(&tmp, "%s.%d.tmp", path, (int)getpid()) < 0 ||
	    asprintf(&text,
		     "# HELP keystrap_probe_success Whether the last synthetic attestation (keystrap-server probe) succeeded.\n"
		     "# TYPE keystrap_probe_success gauge\n"
		     "keystrap_probe_success %d\n"
		     "# HELP keystrap_probe_duration_seconds How long the last synthetic attestation took, start to result.\n"
		     "# TYPE keystrap_probe_duration_seconds gauge\n"
		     "keystrap_probe_duration_seconds %.6f\n"
		     "# HELP keystrap_probe_last_run_timestamp_seconds When the last synthetic attestation ran.\n"
		     "# TYPE keystrap_probe_last_run_timestamp_seconds gauge\n"
		     "keystrap_probe_last_run_timestamp_seconds %lld\n",
		     success ? 1 : 0, duration, (long long)when) < 0) {
		tmp = text = NULL;
		return -ENOMEM;
	}
	(void)unlink(tmp);
	if ((r = write_file_new(tmp, text, strlen(text), 0644)) < 0)
		return r;
	if (rename(tmp, path) < 0) {
		r = -errno;
		(void)unlink(tmp);
		return r;
	}
	return fsync_parent_dir(path);
}

struct probe_args {
	const char *identity, *event_log, *measure_log, *url, *ca, *textfile;
	long timeout, days;
};

static int probe_run(const struct server_config *c, const struct probe_args *a)
{
	_cleanup_(soft_node_freep) struct soft_node *n = NULL;
	_cleanup_free_ char *url = NULL, *finish = NULL;
	struct https_reply start = {}, fin = {};
	struct attest_challenge ch;
	struct outcome o = { .exit = 0 };
	char node_id[NODE_ID_MAX + 1], serial[64] = "", reason[ATTEST_REASON_MAX];
	int64_t policy = 0;
	double t0, took;
	time_t when;
	int r, k;

	const char *identity = a->identity ? a->identity : PROBE_IDENTITY_DEFAULT;
	const char *ca = a->ca ? a->ca : c->ca_certificate, *textfile = a->textfile;
	int timeout = a->timeout ? (int)a->timeout : PROBE_TIMEOUT_DEFAULT;

	if (a->url && !(url = strdup(a->url)))
		return admin_refuse("probe: out of memory");
	if (!url && url_default(c->listen, &url) < 0)
		return admin_refuse("probe: no URL from listen '%s': give --url", c->listen);
	when = time(NULL);
	/* A probe that cannot even start (its identity, its logs, the registry) failed too: the metric says so. */
	if ((r = identity_load(identity, &n)) != 0 || (r = logs_load(n, identity, a->event_log, a->measure_log)) != 0 ||
	    (r = registry_check(c, n->ek_hash, node_id)) != 0) {
		if (textfile && (k = textfile_write(textfile, false, 0, when)) < 0)
			fprintf(stderr, "keystrap-server: probe: cannot write the textfile %s: %s\n", textfile, strerror(-k));
		return r;
	}
	t0 = mono_s();
	if (request(url, ca, timeout, "/v1/attest/start", n->start_json, &start, &o) == 0) {
		if (attest_challenge_parse(start.body, start.body_len, &ch, reason) < 0)
			outcome_set(&o, EXIT_LOCAL, "the server's challenge does not parse: %s", reason);
		else if ((r = soft_node_answer(n, start.body, start.body_len, false, 0, &finish)) < 0)
			outcome_set(&o, EXIT_LOCAL, "cannot answer the server's challenge: %s",
				    r == -EKEYREJECTED ? "its credential is not for the probe's EK" : strerror(-r));
		else if (request(url, ca, timeout, "/v1/attest/finish", finish, &fin, &o) == 0)
			(void)result_check(n, ch.session, &fin, serial, sizeof(serial), &policy, &o);
	}
	took = mono_s() - t0;
	https_reply_done(&start);
	https_reply_done(&fin);
	if (textfile && (r = textfile_write(textfile, o.exit == 0, took, when)) < 0) {
		if (o.exit == 0)
			outcome_set(&o, EXIT_LOCAL, "attested, but cannot write the textfile %s: %s", textfile, strerror(-r));
		else
			fprintf(stderr, "keystrap-server: probe: cannot write the textfile %s: %s\n", textfile, strerror(-r));
	}
	if (o.exit != 0) {
		fprintf(stderr, "keystrap-server: probe %s: %s\n", node_id, o.error);
		return o.exit;
	}
	printf("probe %s attested in %.3f s: certificate %s under policy %lld, no secrets\n", node_id, took, serial,
	       (long long)policy);
	return 0;
}

int cmd_probe(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "identity", required_argument, NULL, 'i' },
					      { "event-log", required_argument, NULL, 'e' },
					      { "measure-log", required_argument, NULL, 'm' },
					      { "url", required_argument, NULL, 'u' },
					      { "ca", required_argument, NULL, 'a' },
					      { "textfile", required_argument, NULL, 't' },
					      { "timeout", required_argument, NULL, 'T' },
					      { "days", required_argument, NULL, 'd' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	_cleanup_server_config_ struct server_config *c = NULL;
	const char *config = NULL;
	struct probe_args a = {};
	char *end;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (opt) {
		case 'c': config = optarg; break;
		case 'i': a.identity = optarg; break;
		case 'e': a.event_log = optarg; break;
		case 'm': a.measure_log = optarg; break;
		case 'u': a.url = optarg; break;
		case 'a': a.ca = optarg; break;
		case 't': a.textfile = optarg; break;
		case 'T':
		case 'd':
			errno = 0;
			*(opt == 'T' ? &a.timeout : &a.days) = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || (opt == 'T' ? a.timeout < 1 || a.timeout > 600 :
									    a.days < 1 || a.days > 36500))
				return admin_refuse("--%s '%s' is not a number of %s", opt == 'T' ? "timeout" : "days", optarg,
						    opt == 'T' ? "seconds from 1 to 600" : "days from 1 to 36500");
			break;
		case 'h':
			printf("Usage: %s\n", usage);
			return EXIT_HELP;
		default:
			goto bad;
		}
	if (optind < argc && streq(argv[optind], "init")) {
		if (argc - optind != 2 || config || a.identity || a.event_log || a.measure_log || a.url || a.ca ||
		    a.textfile || a.timeout)
			goto bad;
		return probe_init(argv[optind + 1], a.days ? a.days : PROBE_DAYS_DEFAULT);
	}
	if (optind != argc || !config || a.days)
		goto bad;
	if (server_config_load(config, &c) < 0)
		return EXIT_LOCAL;
	return probe_run(c, &a);
bad:
	fprintf(stderr, "Usage: %s\n", usage);
	return EXIT_USAGE;
}
