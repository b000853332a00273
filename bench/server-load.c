/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * server-load: many simulated nodes against one keystrap-server, for `make bench-server`.
 *
 * Each node is a software TPM as far as the server can tell (server/soft-node.c, what
 * keystrap-server probe attests with): its EK certificate signed by the bench's own EK CA, its
 * messages carried by libcurl over kept-alive TLS 1.3 connections.
 *
 *   server-load --url URL --ca FILE --ek-ca-cert FILE --ek-ca-key FILE --nodes N
 *               --approve "CMD" [--concurrency C] [--duration S] [--rate R]... [--max]
 *               [--server-pid PID] [--kill PID --kill-after S --serials FILE] [--witness]
 *
 * Phases: every node asks to enrol (403), CMD is run once per node with the EK hash and a node
 * id appended (the operator's approval), then load at each fixed offered rate (--rate, open loop:
 * latency counts from each handshake's scheduled start, so queueing shows) and/or at maximum
 * throughput (--max, closed loop: C handshakes always in flight). With --kill the server gets
 * SIGKILL after --kill-after seconds of the --max run, and every certificate received is
 * written to --serials (serial in hex, as the audit record names it).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include "attest-msg.h"
#include "encode.h"
#include "macro.h"
#include "ossl.h"
#include "pcr.h"
#include "soft-node.h"
#include "tpmpub.h"

#define MAX_SLOTS 512


enum slot_state { IDLE, STARTING, FINISHING };

struct slot {
	CURL *easy;
	enum slot_state state;
	struct soft_node *node;
	char *body; /* what is being sent */
	char *resp;
	size_t resp_size;
	double sched, sent;
};

struct stats {
	bool measure;    /* false: enrollment, nothing timed */
	double *hs, *rq; /* handshake and request latencies, seconds */
	size_t n_hs, n_rq, hs_cap, rq_cap;
	size_t errors, transport;
	size_t dropped; /* open loop: scheduled handshakes never started, the backlog being full */
	int last_status;
	char last_error[256];
};

static struct {
	const char *url, *ca;
	struct soft_node **nodes;
	size_t n_nodes, next_node;
	const struct pcr_bank *bank;
	FILE *serials;
	bool witness;          /* --witness: every finish asks for the log's proofs */
	size_t result_bytes, results; /* finish replies (200) received, and their bytes */
	CURLM *multi;
	struct slot slots[MAX_SLOTS];
	int n_slots;
} G;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) __attribute__((noreturn));
static void die(const char *what)
{
	fprintf(stderr, "server-load: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* A simulated node (server/soft-node.c) whose EK certificate the bench's EK CA signs. */
static void node_make(struct soft_node **n, X509 *ca, EVP_PKEY *ca_key)
{
	EVP_PKEY *ek = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	uint8_t der[ATTEST_CERT_MAX];
	size_t size = 0;

	if (!ek || soft_node_ek_cert(ek, ca, ca_key, 1, der, sizeof(der), &size) < 0 ||
	    soft_node_new(ek, der, size, n) < 0)
		die("making a simulated node");
	EVP_PKEY_free(ek);
}

/* The issued certificate's serial, hex, as the server's audit record names it. */
static int cert_serial(const char *json, size_t size, char serial[41])
{
	static struct attest_result res;
	char why[ATTEST_REASON_MAX];
	uint8_t b[20];
	BIO *bio;
	X509 *x;
	BIGNUM *bn;
	int r = -EBADMSG;

	if (attest_result_parse(json, size, &res, why) < 0)
		return r;
	bio = BIO_new_mem_buf(res.certificate, -1);
	x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	bn = x ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL) : NULL;
	if (bn && BN_bn2binpad(bn, b, sizeof(b)) == sizeof(b)) {
		hex_encode(b, sizeof(b), serial);
		r = 0;
	}
	BN_free(bn);
	X509_free(x);
	BIO_free(bio);
	attest_result_done(&res);
	return r;
}

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
	struct slot *s = userdata;
	char *b = realloc(s->resp, s->resp_size + size * n + 1);

	if (!b)
		return 0;
	memcpy(b + s->resp_size, p, size * n);
	s->resp = b;
	s->resp_size += size * n;
	b[s->resp_size] = 0;
	return size * n;
}

static void post(struct slot *s, const char *path, char *body)
{
	char url[512];

	snprintf(url, sizeof(url), "%s%s", G.url, path);
	free(s->body);
	s->body = body;
	s->resp_size = 0;
	curl_easy_setopt(s->easy, CURLOPT_URL, url);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	s->sent = now();
	curl_multi_add_handle(G.multi, s->easy);
}

static void slot_start(struct slot *s, double sched)
{
	s->node = G.nodes[G.next_node++ % G.n_nodes];
	s->sched = sched;
	s->state = STARTING;
	post(s, "/v1/attest/start", strdup(s->node->start_json));
}

static void push(double **a, size_t *n, size_t *cap, double v)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 65536;
		*a = realloc(*a, *cap * sizeof(double));
		if (!*a)
			die("out of memory");
	}
	(*a)[(*n)++] = v;
}

static void fail(struct stats *st, struct slot *s, int status, const char *why)
{
	st->errors++;
	st->last_status = status;
	snprintf(st->last_error, sizeof(st->last_error), "%s", why);
	s->state = IDLE;
}

/* A transfer ended: the next step of its handshake, or the handshake's end. */
static void on_done(struct stats *st, struct slot *s, CURLcode rc)
{
	double t = now();
	long status = 0;
	char *fin = NULL, serial[41];

	curl_multi_remove_handle(G.multi, s->easy);
	if (rc != CURLE_OK) {
		st->transport++;
		fail(st, s, 0, curl_easy_strerror(rc));
		return;
	}
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	if (st->measure)
		push(&st->rq, &st->n_rq, &st->rq_cap, t - s->sent);
	if (s->state == STARTING) {
		if (status != 200) {
			fail(st, s, (int)status, s->resp ? s->resp : "");
			return;
		}
		/* A witness holding the log's first checkpoint: the longest consistency proof there is. */
		if (soft_node_answer(s->node, s->resp, s->resp_size, G.witness, G.witness ? 1 : 0, &fin) < 0) {
			fail(st, s, 0, "cannot answer the challenge");
			return;
		}
		s->state = FINISHING;
		post(s, "/v1/attest/finish", fin);
		return;
	}
	s->state = IDLE;
	if (status != 200) {
		fail(st, s, (int)status, s->resp ? s->resp : "");
		return;
	}
	if (st->measure)
		push(&st->hs, &st->n_hs, &st->hs_cap, t - s->sched);
	if (G.serials && cert_serial(s->resp, s->resp_size, serial) == 0)
		fprintf(G.serials, "%s\n", serial);
	if (s->resp && strstr(s->resp, "\"certificate\"")) {
		G.result_bytes += s->resp_size;
		G.results++;
	}
}

static void pump(struct stats *st, int timeout_ms)
{
	CURLMsg *m;
	int running, left;

	curl_multi_perform(G.multi, &running);
	while ((m = curl_multi_info_read(G.multi, &left)))
		if (m->msg == CURLMSG_DONE) {
			struct slot *s = NULL;

			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			on_done(st, s, m->data.result);
		}
	if (timeout_ms > 0)
		curl_multi_poll(G.multi, NULL, 0, timeout_ms, NULL);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

/* The server's CPU time so far (user + system), seconds; 0 when unknown. */
static pid_t server_pid;
static double server_cpu(void)
{
	char path[64];
	unsigned long long ut = 0, st = 0;
	FILE *f;
	int n;

	if (server_pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)server_pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	/* Fields 14 and 15; the command name (2) is in parentheses without spaces here. */
	n = fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
	fclose(f);
	return n == 2 ? (double)(ut + st) / (double)sysconf(_SC_CLK_TCK) : 0;
}

static void report(const char *label, struct stats *st, double elapsed, double cpu, double goal_rate,
		   double goal_p99_ms)
{
	double rate = (double)st->n_hs / elapsed;

	qsort(st->hs, st->n_hs, sizeof(double), cmp);
	qsort(st->rq, st->n_rq, sizeof(double), cmp);
	printf("%-14s %7zu handshakes in %5.1f s = %7.1f/s; handshake p50 %6.1f ms p99 %7.1f ms; request p50 %5.1f ms "
	       "p99 %6.1f ms; %zu failed",
	       label, st->n_hs, elapsed, rate, 1e3 * pct(st->hs, st->n_hs, 0.5), 1e3 * pct(st->hs, st->n_hs, 0.99),
	       1e3 * pct(st->rq, st->n_rq, 0.5), 1e3 * pct(st->rq, st->n_rq, 0.99), st->errors);
	if (st->errors)
		printf(" (last: HTTP %d %.120s)", st->last_status, st->last_error);
	if (st->dropped)
		printf("; %zu not started (the offered rate outran the server by a backlog of 4096)", st->dropped);
	putchar('\n');
	if (cpu > 0 && st->n_hs)
		printf("               server CPU %.2f ms per handshake (%.0f%% of one core), i.e. at most %.0f handshakes/s "
		       "per core\n",
		       1e3 * cpu / (double)st->n_hs, 100 * cpu / elapsed, (double)st->n_hs / cpu);
	if (G.results)
		printf("               finish replies %.0f bytes on average%s\n", (double)G.result_bytes / (double)G.results,
		       G.witness ? " (with the log's checkpoint and proofs)" : "");
	G.result_bytes = G.results = 0;
	if (goal_rate > 0)
		printf("               goal >= %.0f handshakes/s: %.2fx of goal\n", goal_rate, rate / goal_rate);
	if (goal_p99_ms > 0)
		printf("               goal handshake p99 < %.0f ms: %.2fx of the budget used\n", goal_p99_ms,
		       1e3 * pct(st->hs, st->n_hs, 0.99) / goal_p99_ms);
	fflush(stdout);
}

static void drain(struct stats *st)
{
	for (bool busy = true; busy;) {
		busy = false;
		for (int i = 0; i < G.n_slots; i++)
			busy |= G.slots[i].state != IDLE;
		if (busy)
			pump(st, 5);
	}
}

/* Open loop at rate/s (rate 0: closed loop, every slot always busy) for duration seconds. */
static void run(const char *label, double rate, double duration, pid_t kill_pid, double kill_after, double goal_rate,
		double goal_p99)
{
	struct stats st = { .measure = true };
	double t0 = now(), cpu0 = server_cpu(), next = t0, end = t0 + duration, backlog_t[4096];
	size_t backlog = 0, bhead = 0;

	while (now() < end) {
		double t = now();

		if (kill_pid > 0 && t - t0 >= kill_after) {
			kill(kill_pid, SIGKILL);
			printf("               server (pid %d) killed with SIGKILL after %.1f s, %zu handshakes in flight\n",
			       (int)kill_pid, t - t0, (size_t)G.n_slots);
			break; /* what was in flight ends in errors below; nothing new starts */
		}
		if (rate > 0)
			for (; next <= t; next += 1.0 / rate) {
				if (backlog < ELEMENTSOF(backlog_t))
					backlog_t[(bhead + backlog++) % ELEMENTSOF(backlog_t)] = next;
				else
					st.dropped++;
			}
		for (int i = 0; i < G.n_slots; i++) {
			struct slot *s = &G.slots[i];

			if (s->state != IDLE)
				continue;
			if (rate <= 0)
				slot_start(s, now());
			else if (backlog) {
				slot_start(s, backlog_t[bhead]);
				bhead = (bhead + 1) % ELEMENTSOF(backlog_t);
				backlog--;
			}
		}
		pump(&st, rate > 0 ? 1 : 2);
	}
	drain(&st);
	report(label, &st, now() - t0, kill_pid > 0 ? 0 : server_cpu() - cpu0, goal_rate, goal_p99);
	free(st.hs);
	free(st.rq);
}

static void enroll(const char *approve)
{
	struct stats st = { 0 };
	size_t refused = 0;

	for (size_t i = 0; i < G.n_nodes; i += (size_t)G.n_slots) {
		for (int k = 0; k < G.n_slots && i + (size_t)k < G.n_nodes; k++)
			slot_start(&G.slots[k], now());
		drain(&st);
	}
	refused = st.errors;
	if (refused != G.n_nodes || st.last_status != 403)
		die("the enrollment requests were not all answered 403");
	for (size_t i = 0; i < G.n_nodes; i++) {
		char cmd[1024];

		snprintf(cmd, sizeof(cmd), "%s %s --id node%zu-%d.bench >/dev/null", approve, G.nodes[i]->ek_hash, i, (int)getpid());
		if (system(cmd) != 0)
			die("approving a node failed");
	}
	printf("enrolled       %zu simulated nodes (software EK/AK), each approved by the operator command\n", G.n_nodes);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },	 { "ca", required_argument, NULL, 'c' },
		{ "ek-ca-cert", required_argument, NULL, 'E' }, { "ek-ca-key", required_argument, NULL, 'K' },
		{ "nodes", required_argument, NULL, 'n' },	 { "approve", required_argument, NULL, 'a' },
		{ "concurrency", required_argument, NULL, 'C' }, { "duration", required_argument, NULL, 'd' },
		{ "rate", required_argument, NULL, 'r' },	 { "max", no_argument, NULL, 'm' },
		{ "kill", required_argument, NULL, 'k' },	 { "kill-after", required_argument, NULL, 'A' },
		{ "serials", required_argument, NULL, 's' },	 { "server-pid", required_argument, NULL, 'p' },
		{ "witness", no_argument, NULL, 'w' },
		{}
	};
	const char *ek_ca_cert = NULL, *ek_ca_key = NULL, *approve = NULL, *serials = NULL;
	double duration = 10, rates[4], kill_after = 0;
	size_t n_rates = 0;
	bool max = false;
	pid_t kill_pid = 0;
	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL;
	FILE *f;
	int o;

	G.n_slots = 32;
	G.n_nodes = 256;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) >= 0)
		switch (o) {
		case 'u': G.url = optarg; break;
		case 'c': G.ca = optarg; break;
		case 'E': ek_ca_cert = optarg; break;
		case 'K': ek_ca_key = optarg; break;
		case 'n': G.n_nodes = strtoul(optarg, NULL, 10); break;
		case 'a': approve = optarg; break;
		case 'C': G.n_slots = atoi(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'r':
			if (n_rates == ELEMENTSOF(rates))
				return 2;
			rates[n_rates++] = atof(optarg);
			break;
		case 'm': max = true; break;
		case 'k': kill_pid = atoi(optarg); break;
		case 'A': kill_after = atof(optarg); break;
		case 's': serials = optarg; break;
		case 'p': server_pid = atoi(optarg); break;
		case 'w': G.witness = true; break;
		default: return 2;
		}
	if (!G.url || !G.ca || !ek_ca_cert || !ek_ca_key || !approve || G.n_nodes == 0 || G.n_slots < 1 ||
	    G.n_slots > MAX_SLOTS) {
		fprintf(stderr, "usage: server-load --url URL --ca FILE --ek-ca-cert FILE --ek-ca-key FILE --approve CMD "
				"[--nodes N] [--concurrency C] [--duration S] [--rate R] [--max] [--kill PID --kill-after S "
				"--serials FILE]\n");
		return 2;
	}
	if (!(f = fopen(ek_ca_cert, "re")) || !(ca = PEM_read_X509(f, NULL, NULL, NULL)))
		die("reading the EK CA certificate");
	fclose(f);
	if (!(f = fopen(ek_ca_key, "re")) || !(ca_key = PEM_read_PrivateKey(f, NULL, NULL, NULL)))
		die("reading the EK CA key");
	fclose(f);
	if (serials && !(G.serials = fopen(serials, "we")))
		die("opening --serials");

	G.nodes = calloc(G.n_nodes, sizeof(*G.nodes));
	if (!G.nodes)
		die("out of memory");
	for (size_t i = 0; i < G.n_nodes; i++)
		node_make(&G.nodes[i], ca, ca_key);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	G.multi = curl_multi_init();
	curl_multi_setopt(G.multi, CURLMOPT_MAXCONNECTS, (long)G.n_slots);
	for (int i = 0; i < G.n_slots; i++) {
		static struct curl_slist *h;
		CURL *e = curl_easy_init();

		if (!h)
			h = curl_slist_append(curl_slist_append(NULL, "Content-Type: application/json"), "Expect:");
		if (!e)
			die("curl");
		G.slots[i].easy = e;
		curl_easy_setopt(e, CURLOPT_CAINFO, G.ca);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &G.slots[i]);
		curl_easy_setopt(e, CURLOPT_PRIVATE, &G.slots[i]);
		curl_easy_setopt(e, CURLOPT_TIMEOUT, 15L);
		curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
		G.slots[i].state = IDLE;
	}
	enroll(approve);
	for (size_t i = 0; i < n_rates; i++) {
		char label[32];

		snprintf(label, sizeof(label), "at %.0f/s", rates[i]);
		run(label, rates[i], duration, 0, 0, 0, rates[i] >= 500 ? 50 : 0);
	}
	if (max)
		run(kill_pid ? "max + SIGKILL" : "max", 0, duration, kill_pid, kill_after, kill_pid ? 0 : 2000, 0);
	if (G.serials && fclose(G.serials) != 0)
		die("writing --serials");
	return 0;
}
