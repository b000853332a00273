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
 *               [--storm] [--approve-batch]
 *               [--event-log FILE] [--measure-log FILE] [--mode LABEL] [--summary FILE]
 *
 * Phases: every node asks to enrol (403), CMD is run once per node with the EK hash and a node
 * id appended (the operator's approval; with --approve-batch once, as CMD --file FILE), then load at each fixed offered rate (--rate, open loop:
 * latency counts from each handshake's scheduled start, so queueing shows) and/or at maximum
 * throughput (--max, closed loop: C handshakes always in flight). With --kill the server gets
 * SIGKILL after --kill-after seconds of the --max run, and every certificate received is
 * written to --serials (serial in hex, as the audit record names it).
 *
 * --storm instead: a fleet rebooting at once. Every node attests once, C of them at a time from
 * the first instant, each request on a new connection as a booting node's; a busy answer
 * (429, 502, 503, 504) or a lost connection sends the node back to wait as keystrap attest does
 * (retry_wait_ms: its Retry-After, then full jitter) and start again, until --duration ends.
 * It prints how long the fleet took to converge and how many busy answers it met; --kill
 * works here too, at --kill-after or once half the nodes attested, whichever is first (the
 * caller restarts the server, and the nodes find it again).
 *
 * Every node's finish carries --event-log (a TCG firmware event log) and --measure-log
 * (keystrap's CEL-JSON measurement log) when given, and quotes what they replay to; without
 * them no log and PCRs of zeros. Before the load the crypto floor is measured
 * (bench/crypto-floor.c) or read from --floor (what build/bench/crypto-floor FILE wrote), and
 * every run prints the server's CPU per handshake as a multiple of it, then split between its
 * event loop's thread and the others (the workers, /proc/PID/task), beside the load
 * generator's own CPU per handshake (the two share this machine's cores) and the capacity
 * these imply; --summary appends one line per run for the bench's side-by-side table: mode
 * (--mode), run, handshakes/s, p50 and p99 in ms, server CPU and floor per handshake in ms,
 * then the loop thread's, the workers' and the load generator's CPU per handshake in ms.
 */
#include <dirent.h>
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
#include "deadline.h"
#include "crypto-floor.h"
#include "eventlog.h"
#include "cel.h"
#include "fileio.h"
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
	size_t idx; /* --storm: which node */
};

struct stats {
	bool measure;    /* false: enrollment, nothing timed */
	double *hs, *rq; /* handshake and request latencies, seconds */
	size_t n_hs, n_rq, hs_cap, rq_cap;
	size_t errors, transport;
	size_t dropped; /* open loop: scheduled handshakes never started, the backlog being full */
	size_t connects; /* TLS connections opened (each a full handshake) */
	double bytes;    /* request and response bytes, headers and bodies */
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
	struct crypto_floor floor;
	double extends; /* PCR extends (quoted bank) replaying one finish's logs */
	const char *mode;
	FILE *summary;
	CURLM *multi;
	struct slot slots[MAX_SLOTS];
	int n_slots;
	bool storm;
	bool approve_batch; /* --approve-batch: CMD --file FILE once, for every node */
} G;

/* --storm: each node's state, and what the storm met. */
struct storm_node {
	double not_before;
	unsigned retried;
	bool done, failed, busy;
};
static struct {
	struct storm_node *n;
	size_t left, attested, failed, busy_answers[600], transport, tries, cursor;
	double deadline, last_done;
	bool enrolling; /* the first boot: a start answered 403 (enrollment requested) is the end */
	double *ok_s, *busy_s; /* how long each answer took: 200s, and busy ones */
	size_t n_ok, ok_cap, n_busy, busy_cap;
	char last_error[256], last_transport[256];
} S;

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

/* The logs every node sends (read once), and the PCR extends their replay costs in sha256. */
static struct {
	uint8_t *fw, *cel;
	size_t fw_size, cel_size;
} logs;

static void logs_load(const char *event_log, const char *measure_log)
{
	_cleanup_eventlog_ struct eventlog *log = NULL;
	struct cel c = {};
	char err[EVENTLOG_ERROR_MAX > CEL_ERROR_MAX ? EVENTLOG_ERROR_MAX : CEL_ERROR_MAX];
	const struct pcr_bank *sha256 = pcr_bank_by_name("sha256");

	if (event_log && read_file(event_log, ATTEST_EVENTLOG_MAX, &logs.fw, &logs.fw_size) < 0)
		die("reading --event-log");
	if (measure_log && read_file(measure_log, ATTEST_CEL_MAX, &logs.cel, &logs.cel_size) < 0)
		die("reading --measure-log");
	if (logs.fw && eventlog_parse(logs.fw, logs.fw_size, &log, err) < 0)
		die("--event-log does not parse");
	for (size_t i = 0; log && i < log->n_events; i++)
		for (unsigned j = 0; log->events[i].type != EV_NO_ACTION && j < log->events[i].n_digests; j++)
			G.extends += log->events[i].digests[j].bank == sha256;
	if (logs.cel && cel_parse(&c, 0, (const char *)logs.cel, logs.cel_size, err) < 0)
		die("--measure-log does not parse");
	G.extends += (double)c.n_records;
	cel_done(&c);
	if (event_log || measure_log)
		printf("logs           every finish sends %s (%zu bytes) and %s (%zu bytes); %.0f events to replay in "
		       "sha256\n",
		       event_log ? event_log : "no event log", logs.fw_size, measure_log ? measure_log : "no measurement log",
		       logs.cel_size, G.extends);
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
	if (st->measure) {
		curl_off_t up = 0, down = 0;
		long connects = 0, header = 0, request = 0;

		push(&st->rq, &st->n_rq, &st->rq_cap, t - s->sent);
		curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &connects);
		curl_easy_getinfo(s->easy, CURLINFO_SIZE_UPLOAD_T, &up);
		curl_easy_getinfo(s->easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
		curl_easy_getinfo(s->easy, CURLINFO_HEADER_SIZE, &header);
		curl_easy_getinfo(s->easy, CURLINFO_REQUEST_SIZE, &request);
		st->connects += (size_t)connects;
		/* The request's size counts the body too when curl sent them in one piece. */
		st->bytes += (double)up + (double)down + (double)header + (double)(request > up ? request - up : request);
	}
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

static void storm_done(struct slot *s, CURLcode rc);

static void pump(struct stats *st, int timeout_ms)
{
	CURLMsg *m;
	int running, left;

	curl_multi_perform(G.multi, &running);
	while ((m = curl_multi_info_read(G.multi, &left)))
		if (m->msg == CURLMSG_DONE) {
			struct slot *s = NULL;

			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			if (G.storm)
				storm_done(s, m->data.result);
			else
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

/* The CPU time (user + system) a /proc stat file gives, seconds; -1 when it cannot be read (a
 * thread gone meanwhile). */
static double stat_cpu(const char *path)
{
	unsigned long long ut = 0, st = 0;
	char buf[1024], *p;
	size_t n;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* Fields 14 and 15. The command name (2) is in parentheses and a thread may have named
	 * itself with spaces or parentheses: field 3 on follows the last ')'. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The server's CPU time so far (every thread, those gone included), seconds; 0 when unknown. */
static pid_t server_pid;
static double server_cpu(void)
{
	char path[64];
	double cpu;

	if (server_pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)server_pid);
	cpu = stat_cpu(path);
	return cpu > 0 ? cpu : 0;
}

/* Room for the server's event loop and its workers (at most 256, server-config.h) and then some. */
#define MAX_THREADS 1024

/* One instant's CPU times, seconds: the server's as a whole and each of its threads' (tid ==
 * pid: the event loop's), and the load generator's own, which shares this machine's cores. */
struct cpu_sample {
	double server, self;
	size_t n;
	pid_t tid[MAX_THREADS];
	double thread[MAX_THREADS];
};

/* What a measured interval cost, seconds: server 0 when unknown. */
struct cpu_use {
	double server, loop, workers, self;
	size_t n_workers; /* threads other than the loop's that could be read at the end */
};

static void cpu_sample(struct cpu_sample *c)
{
	char path[64];
	struct dirent *de;
	DIR *d;

	c->server = server_cpu();
	c->self = stat_cpu("/proc/self/stat");
	c->n = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)server_pid);
	d = server_pid > 0 ? opendir(path) : NULL;
	while (d && (de = readdir(d)) && c->n < MAX_THREADS) {
		int tid = atoi(de->d_name);
		double cpu;

		if (tid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)server_pid, tid);
		if ((cpu = stat_cpu(path)) < 0)
			continue; /* gone since the directory was read */
		c->tid[c->n] = tid;
		c->thread[c->n++] = cpu;
	}
	if (d)
		closedir(d);
}

/* From a to b. A thread read at b alone counts from 0 (it started meanwhile); one read at a
 * alone is left out of the split (it ended meanwhile), though the server's total has it. */
static struct cpu_use cpu_between(const struct cpu_sample *a, const struct cpu_sample *b)
{
	struct cpu_use u = { .server = b->server - a->server, .self = b->self - a->self };

	for (size_t i = 0; i < b->n; i++) {
		double cpu = b->thread[i];

		for (size_t j = 0; j < a->n; j++)
			if (a->tid[j] == b->tid[i]) {
				cpu -= a->thread[j];
				break;
			}
		if (b->tid[i] == server_pid)
			u.loop += cpu;
		else {
			u.workers += cpu;
			u.n_workers++;
		}
	}
	return u;
}

/* u: what the run cost the CPUs; its server 0 when unknown (no --server-pid, or the server killed). */
static void report(const char *label, struct stats *st, double elapsed, const struct cpu_use *u, double goal_rate,
		   double goal_p99_ms)
{
	double rate = (double)st->n_hs / elapsed, cpu = u->server;

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
	if (st->n_hs) {
		double per = (double)st->n_hs, floor = crypto_floor_handshake(&G.floor, 0, G.extends, st->bytes / per,
									      (double)st->connects / per);

		if (cpu > 0) {
			/* Where it goes, and what the load generator takes of the same cores: the loop's thread
			 * is one core at most, and the server and the generator share every core there is. */
			long cores = sysconf(_SC_NPROCESSORS_ONLN);
			double by_loop = u->loop > 0 ? per / u->loop : 0,
			       by_cores = (double)(cores > 0 ? cores : 1) * per / (cpu + u->self),
			       derived = by_loop > 0 && by_loop < by_cores ? by_loop : by_cores;

			printf("               server CPU %.2f ms per handshake (%.0f%% of one core), i.e. at most %.0f "
			       "handshakes/s per core; %.1fx the crypto floor of %.3f ms\n",
			       1e3 * cpu / per, 100 * cpu / elapsed, per / cpu, cpu / per / floor, 1e3 * floor);
			printf("               loop thread %.2f ms, workers %.2f ms per handshake (%zu threads); load "
			       "generator %.2f ms; capacity derived from these: %.0f/s (the lower of 1000/loop ms = %.0f "
			       "and %ld cores x 1000/(server + generator ms) = %.0f; derived, not measured)\n",
			       1e3 * u->loop / per, 1e3 * u->workers / per, u->n_workers, 1e3 * u->self / per, derived,
			       by_loop, cores, by_cores);
		}
		printf("               %.0f bytes and %.3f TLS handshakes per attestation, %.0f PCR extends to replay\n",
		       st->bytes / per, (double)st->connects / per, G.extends);
		if (G.summary)
			fprintf(G.summary, "%s\t%s\t%.1f\t%.2f\t%.2f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\n", G.mode, label,
				(double)st->n_hs / elapsed, 1e3 * pct(st->hs, st->n_hs, 0.5), 1e3 * pct(st->hs, st->n_hs, 0.99),
				cpu > 0 ? 1e3 * cpu / per : 0, 1e3 * floor, cpu > 0 ? 1e3 * u->loop / per : 0,
				cpu > 0 ? 1e3 * u->workers / per : 0, cpu > 0 ? 1e3 * u->self / per : 0);
	}
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
	struct cpu_sample c0, c1;
	struct stats st = { .measure = true };
	struct cpu_use u = {};
	double t0, next, end, backlog_t[4096];
	size_t backlog = 0, bhead = 0;

	cpu_sample(&c0);
	t0 = next = now();
	end = t0 + duration;

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
	if (kill_pid <= 0) {
		cpu_sample(&c1);
		u = cpu_between(&c0, &c1);
	}
	report(label, &st, now() - t0, &u, goal_rate, goal_p99);
	free(st.hs);
	free(st.rq);
}

/* --storm: the node of slot s waits as keystrap attest would, then starts again; or gives up. */
static void storm_wait(struct slot *s, long retry_after)
{
	struct storm_node *n = &S.n[s->idx];
	uint32_t r = (uint32_t)random();
	int64_t w = retry_wait_ms(n->retried++, retry_after, r, (int64_t)((S.deadline - now()) * 1000));

	s->state = IDLE;
	n->busy = false;
	if (w < 0) {
		n->failed = true;
		S.failed++;
		S.left--;
		snprintf(S.last_error, sizeof(S.last_error), "no time left for another try");
		return;
	}
	n->not_before = now() + (double)w / 1000;
}

static void storm_done(struct slot *s, CURLcode rc)
{
	struct storm_node *n = &S.n[s->idx];
	long status = 0;
	curl_off_t ra = -1;
	char *fin = NULL, serial[41];

	curl_multi_remove_handle(G.multi, s->easy);
	if (rc != CURLE_OK) {
		S.transport++;
		snprintf(S.last_transport, sizeof(S.last_transport), "%s", curl_easy_strerror(rc));
		storm_wait(s, -1);
		return;
	}
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status == 429 || status == 502 || status == 503 || status == 504)
		push(&S.busy_s, &S.n_busy, &S.busy_cap, now() - s->sent);
	else
		push(&S.ok_s, &S.n_ok, &S.ok_cap, now() - s->sent);
	if (S.enrolling && status == 403 && s->state == STARTING)
		status = 200; /* the enrollment request is recorded: what the first boot is for */
	else if (status == 429 || status == 502 || status == 503 || status == 504) {
		if (curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra <= 0)
			ra = -1;
		S.busy_answers[status]++;
		storm_wait(s, (long)ra);
		return;
	}
	if (status == 200 && s->state == STARTING && !S.enrolling) {
		if (soft_node_answer(s->node, s->resp, s->resp_size, false, 0, &fin) < 0) {
			status = 0;
		} else {
			s->state = FINISHING;
			S.tries++;
			post(s, "/v1/attest/finish", fin);
			return;
		}
	}
	s->state = IDLE;
	n->busy = false;
	S.left--;
	if (status != 200) {
		n->failed = true;
		S.failed++;
		snprintf(S.last_error, sizeof(S.last_error), "HTTP %ld %.200s", status, s->resp ? s->resp : "");
		return;
	}
	n->done = true;
	S.attested++;
	S.last_done = now();
	if (G.serials && cert_serial(s->resp, s->resp_size, serial) == 0) {
		fprintf(G.serials, "%s\n", serial);
		fflush(G.serials);
	}
}

/* The next node whose wait is over, round robin; SIZE_MAX when none is. */
static size_t storm_next(double t)
{
	for (size_t k = 0; k < G.n_nodes; k++) {
		size_t i = (S.cursor + k) % G.n_nodes;
		struct storm_node *n = &S.n[i];

		if (!n->done && !n->failed && !n->busy && n->not_before <= t) {
			S.cursor = i + 1;
			return i;
		}
	}
	return SIZE_MAX;
}

static void storm(double duration, pid_t kill_pid, double kill_after, bool enrolling)
{
	double t0 = now(), cpu0 = server_cpu();
	bool killed = false;

	free(S.n);
	free(S.ok_s);
	free(S.busy_s);
	memset(&S, 0, sizeof(S));
	S.n = calloc(G.n_nodes, sizeof(*S.n));
	if (!S.n)
		die("out of memory");
	S.enrolling = enrolling;
	S.left = G.n_nodes;
	S.deadline = t0 + duration;
	srandom((unsigned)getpid());
	G.storm = true;
	for (int i = 0; i < G.n_slots; i++) {
		curl_easy_setopt(G.slots[i].easy, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(G.slots[i].easy, CURLOPT_FORBID_REUSE, 1L);
	}
	while (S.left > 0) {
		double t = now();
		bool busy = false;

		/* Mid-storm whatever the server's speed: at kill_after, or once half the nodes attested. */
		if (kill_pid > 0 && !enrolling && !killed && (t - t0 >= kill_after || S.attested >= G.n_nodes / 2)) {
			kill(kill_pid, SIGKILL);
			killed = true;
			printf("               server (pid %d) killed with SIGKILL after %.1f s, %zu nodes attested\n",
			       (int)kill_pid, t - t0, S.attested);
			fflush(stdout);
		}
		for (int i = 0; i < G.n_slots; i++) {
			struct slot *s = &G.slots[i];
			size_t k;

			busy |= s->state != IDLE;
			if (s->state != IDLE || (k = storm_next(t)) == SIZE_MAX)
				continue;
			S.n[k].busy = true;
			s->idx = k;
			s->node = G.nodes[k];
			s->sched = t;
			s->state = STARTING;
			S.tries++;
			busy = true;
			post(s, "/v1/attest/start", strdup(s->node->start_json));
		}
		pump(NULL, busy ? 2 : 5);
		if (!busy)
			usleep(2000);
	}
	if (enrolling) {
		if (S.failed)
			die("the enrollment requests were not all answered 403");
		printf("enrolled       %zu simulated nodes in a storm of their own (%zu busy answers) in %.1f s\n", G.n_nodes,
		       S.busy_answers[429] + S.busy_answers[502] + S.busy_answers[503] + S.busy_answers[504], now() - t0);
		return;
	}
	printf("storm          %zu nodes, %d at a time, new connections: %zu attested in %.1f s (the last at %.1f s), "
	       "%zu failed%s%s; %zu requests, %zu busy answers (503: %zu, 429: %zu), %zu lost connections%s%s",
	       G.n_nodes, G.n_slots, S.attested, now() - t0, S.attested ? S.last_done - t0 : 0.0, S.failed,
	       S.failed ? " (last: " : "", S.failed ? S.last_error : "", S.tries,
	       S.busy_answers[429] + S.busy_answers[502] + S.busy_answers[503] + S.busy_answers[504], S.busy_answers[503],
	       S.busy_answers[429], S.transport, S.transport ? ", the last: " : "", S.last_transport);
	if (S.failed)
		putchar(')');
	putchar('\n');
	qsort(S.ok_s, S.n_ok, sizeof(double), cmp);
	qsort(S.busy_s, S.n_busy, sizeof(double), cmp);
	printf("               answers other than busy: p50 %.1f ms, p99 %.1f ms, max %.1f ms; busy answers: p50 %.1f ms, "
	       "p99 %.1f ms, max %.1f ms\n",
	       1e3 * pct(S.ok_s, S.n_ok, 0.5), 1e3 * pct(S.ok_s, S.n_ok, 0.99), S.n_ok ? 1e3 * S.ok_s[S.n_ok - 1] : 0.0,
	       1e3 * pct(S.busy_s, S.n_busy, 0.5), 1e3 * pct(S.busy_s, S.n_busy, 0.99),
	       S.n_busy ? 1e3 * S.busy_s[S.n_busy - 1] : 0.0);
	if (!kill_pid && server_cpu() > 0)
		printf("               server CPU %.2f s, %.2f ms per attested node\n", server_cpu() - cpu0,
		       1e3 * (server_cpu() - cpu0) / (double)(S.attested ? S.attested : 1));
	fflush(stdout);
}

/* The operator approves every node's enrollment request. */
static void approve_all(const char *approve)
{
	if (G.approve_batch) {
		/* One operator command for the whole fleet: CMD --file FILE (node approve --file). */
		char path[] = "/tmp/server-load-ek.XXXXXX", cmd[1024];
		int fd = mkstemp(path);
		FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

		if (!f)
			die("making the list of EK hashes");
		for (size_t i = 0; i < G.n_nodes; i++)
			fprintf(f, "%s\n", G.nodes[i]->ek_hash);
		if (fclose(f) != 0)
			die("writing the list of EK hashes");
		snprintf(cmd, sizeof(cmd), "%s --file %s >/dev/null", approve, path);
		if (system(cmd) != 0)
			die("approving the nodes failed");
		unlink(path);
	}
	for (size_t i = 0; i < G.n_nodes && !G.approve_batch; i++) {
		char cmd[1024];

		snprintf(cmd, sizeof(cmd), "%s %s --id node%zu-%d.bench >/dev/null", approve, G.nodes[i]->ek_hash, i, (int)getpid());
		if (system(cmd) != 0)
			die("approving a node failed");
	}
	printf("enrolled       %zu simulated nodes (software EK/AK), each approved by the operator command\n", G.n_nodes);
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
	approve_all(approve);
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
		{ "witness", no_argument, NULL, 'w' },	 { "storm", no_argument, NULL, 'S' },
		{ "approve-batch", no_argument, NULL, 'B' },	 { "event-log", required_argument, NULL, 'e' },
		{ "measure-log", required_argument, NULL, 'l' }, { "mode", required_argument, NULL, 'M' },
		{ "summary", required_argument, NULL, 'Y' },	 { "floor", required_argument, NULL, 'F' },
		{}
	};
	const char *ek_ca_cert = NULL, *ek_ca_key = NULL, *approve = NULL, *serials = NULL, *event_log = NULL,
		   *measure_log = NULL, *summary = NULL, *floor_file = NULL;
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
		case 'S': G.storm = true; break;
		case 'B': G.approve_batch = true; break;
		case 'e': event_log = optarg; break;
		case 'l': measure_log = optarg; break;
		case 'M': G.mode = optarg; break;
		case 'Y': summary = optarg; break;
		case 'F': floor_file = optarg; break;
		default: return 2;
		}
	if (!G.url || !G.ca || !ek_ca_cert || !ek_ca_key || !approve || G.n_nodes == 0 || G.n_slots < 1 ||
	    G.n_slots > MAX_SLOTS) {
		fprintf(stderr, "usage: server-load --url URL --ca FILE --ek-ca-cert FILE --ek-ca-key FILE --approve CMD "
				"[--nodes N] [--concurrency C] [--duration S] [--rate R] [--max] [--kill PID --kill-after S "
				"--serials FILE] [--storm] [--approve-batch] [--event-log FILE] [--measure-log FILE] "
				"[--mode NAME] [--summary FILE] [--floor FILE] [--witness]\n");
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
	if (summary && !(G.summary = fopen(summary, "ae")))
		die("opening --summary");
	if (!G.mode)
		G.mode = event_log || measure_log ? "real evidence" : "zero-log";

	G.nodes = calloc(G.n_nodes, sizeof(*G.nodes));
	if (!G.nodes)
		die("out of memory");
	logs_load(event_log, measure_log);
	for (size_t i = 0; i < G.n_nodes; i++) {
		node_make(&G.nodes[i], ca, ca_key);
		if (soft_node_set_logs(G.nodes[i], logs.fw, logs.fw_size, (const char *)logs.cel, logs.cel_size) < 0)
			die("the logs do not parse as the server parses them");
	}
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
	if (G.storm) {
		G.storm = false;
		storm(duration, 0, 0, true);
		approve_all(approve);
		storm(duration, kill_pid, kill_after, false);
		if (G.serials && fclose(G.serials) != 0)
			die("writing --serials");
		return S.failed ? 1 : 0;
	}
	/* Not for a storm: there what counts is convergence, not the CPU per handshake. */
	if (!floor_file)
		crypto_floor_measure(&G.floor);
	else if (crypto_floor_load(&G.floor, floor_file) < 0)
		die("--floor holds no crypto floor (build/bench/crypto-floor FILE writes one)");
	printf("crypto floor   ECDSA P-256 verify %.3f ms, sign %.3f ms; MakeCredential %.3f ms (ECDH %.3f, KDFs, AES, "
	       "HMAC %.3f); TLS 1.3 full handshake %.3f ms; SHA-256 extend %.2f us; AES-256-GCM %.2f ns/byte (OpenSSL %s, "
	       "thread CPU, %s)\n",
	       1e3 * G.floor.verify, 1e3 * G.floor.sign, 1e3 * (G.floor.ecdh + G.floor.cred_sym), 1e3 * G.floor.ecdh,
	       1e3 * G.floor.cred_sym, 1e3 * G.floor.tls, 1e6 * G.floor.extend, 1e9 * G.floor.gcm_byte,
	       OpenSSL_version(OPENSSL_VERSION_STRING), floor_file ? floor_file : "measured now");
	/* The EK certificates were verified at enrolment, and the server keeps each verdict (pki.c). */
	printf("               one attestation: 2 verifications (quote, CSR), 2 MakeCredentials (challenge, payload), "
	       "1 certificate signature, the logs' extends in the quoted bank, TLS records; a TLS handshake per new "
	       "connection; the EK certificate's verification once per EK, at enrolment here: %.3f ms with no log\n",
	       1e3 * crypto_floor_handshake(&G.floor, 0, 0, 0, 0));
	enroll(approve);
	for (size_t i = 0; i < n_rates; i++) {
		char label[32];

		snprintf(label, sizeof(label), "at %.0f/s", rates[i]);
		run(label, rates[i], duration, 0, 0, 0, rates[i] >= 1000 ? 20 : rates[i] >= 500 ? 50 : 0);
	}
	if (max)
		run(kill_pid ? "max + SIGKILL" : "max", 0, duration, kill_pid, kill_after, kill_pid ? 0 : 2000, 0);
	if (G.serials && fclose(G.serials) != 0)
		die("writing --serials");
	return 0;
}
