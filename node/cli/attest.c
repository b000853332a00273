/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap attest: the attestation flow (node/attest.c) from the command line; prints the
 * certificate, or with --out-dir (tests, on a tmpfs) writes what the server released as files.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/x509.h>

#include "attest.h"
#include "fileio.h"
#include "keystrap.h"
#include "log.h"
#include "node-credentials.h"
#include "note.h"
#include "secbuf.h"

static const char usage[] = "keystrap attest --server URL --ca FILE [--ek rsa2048|ecc256|ecc384] [--event-log FILE]\n"
			    "                       [--log FILE] [--timeout SEC] [--retries N] [--log-key VKEY [--checkpoint FILE]]\n"
			    "                       [--out-dir DIR]";

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
	    (c->chain && (r = write_file(dir, path, "chain.pem", c->chain, strlen(c->chain))) < 0) ||
	    (c->checkpoint && (r = write_file(dir, path, "checkpoint", c->checkpoint, strlen(c->checkpoint))) < 0))
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

int cmd_attest(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },    { "ca", required_argument, NULL, 'c' },
		{ "ek", required_argument, NULL, 'e' },        { "out-dir", required_argument, NULL, 'o' },
		{ "event-log", required_argument, NULL, 'E' }, { "log", required_argument, NULL, 'l' },
		{ "timeout", required_argument, NULL, 't' },   { "retries", required_argument, NULL, 'r' },
		{ "log-key", required_argument, NULL, 'k' },   { "checkpoint", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },            {}
	};
	_cleanup_free_ uint8_t *held = NULL;
	const char *checkpoint = NULL;
	_cleanup_node_credentials_ struct node_credentials *c = NULL;
	struct attest_options a = { .ek_kind = TPM_EK_RSA2048 };
	enum attest_failure failure = ATTEST_FAILED_LOCAL;
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
		case 'k':
			a.log_key = optarg;
			break;
		case 'C':
			checkpoint = optarg;
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
			       "  --retries N       further tries in all, after the server's Retry-After or a backoff\n"
			       "                    with jitter, 0 to %d (default %d; Retries=); the whole attestation\n"
			       "                    takes at most the timeout times the tries\n"
			       "  --log-key VKEY    witness the server's audit log (LogKey=): refuse a reply whose\n"
			       "                    checkpoint, inclusion or consistency proof does not verify\n"
			       "  --checkpoint FILE the checkpoint held from before, which the new one must extend\n"
			       "  --out-dir DIR     FOR TESTS ONLY, on a tmpfs: write the certificate, chain, node key\n"
			       "                    and secrets as files (keystrap handoff keeps them in keyrings)\n\n"
			       "Exit 0: attested; 1: failed here (configuration, TPM, clock, a reply that does not\n"
			       "verify); %d: usage; %d: no answer from the server in time; %d: refused by the server.\n",
			       usage, ATTEST_TIMEOUT_MIN, ATTEST_TIMEOUT_MAX, ATTEST_TIMEOUT_DEFAULT, ATTEST_RETRIES_MAX,
			       ATTEST_RETRIES_DEFAULT, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_REFUSED);
			return 0;
		default:
			return usage_error(usage, "unknown option");
		}
	if (optind != argc)
		return usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!a.server || !a.ca)
		return usage_error(usage, "--server and --ca are required");
	if (checkpoint && !a.log_key)
		return usage_error(usage, "--checkpoint goes with --log-key");
	if (checkpoint) {
		size_t n;

		if ((r = read_file(checkpoint, NOTE_MAX, &held, &n)) < 0) {
			log_error("cannot read --checkpoint '%s': %s", checkpoint, strerror(-r));
			return 1;
		}
		a.checkpoint = (const char *)held;
	}
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
	r = attest_run(&a, &c, &failure);
	if (r < 0)
		return attest_exit_status(failure);
	if (out_dir)
		r = save(out_dir, c);
	else if ((r = write_full(STDOUT_FILENO, c->certificate, strlen(c->certificate))) < 0)
		log_error_errno(r, "cannot write the certificate to stdout: %m");
	if (r < 0)
		return 1;
	fprintf(stderr, "keystrap: attested as %s\n", c->node_id);
	return 0;
}
