/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap status: what keystrap handoff provisioned, without a secret byte — names, sizes,
 * owners, expiry, and the attestation facts of the "status" key. Sizes come from a zero-length
 * KEYCTL_READ, which returns the length and copies nothing.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attest-node.h"
#include "encode.h"
#include "handoff-status.h"
#include "keyring.h"
#include "keystrap.h"
#include "log.h"
#include "note.h"

static const char usage[] = "keystrap status [--ek[=KIND]]";

/* "2026-11-22 05:40:00 UTC (in 3600 s)" */
static void print_time(int64_t t, int64_t now)
{
	char buf[UTC_TIME_MAX];

	utc_time_format(t, buf);
	if (t > now)
		printf("%s (in %" PRId64 " s)\n", buf, t - now);
	else
		printf("%s (%" PRId64 " s ago)\n", buf, now - t);
}

static void print_id(const char *what, int64_t id)
{
	if (id < 0)
		printf("%s none", what);
	else
		printf("%s %" PRId64, what, id);
}

/*
 * The EK hash an operator approves (node approve), the very hash the server registers: read
 * from the TPM, so it can be printed before the first attestation, for an inventory.
 */
static int print_ek(enum tpm_ek_kind kind)
{
	_cleanup_tpm_ struct tpm *t = NULL;
	char hash[2 * TPM_EK_ID_SIZE + 1];
	int r;

	if ((r = tpm_open(&t)) < 0) {
		log_error("cannot open the TPM: %s", strerror(-r));
		return 1;
	}
	if ((r = attest_node_ek_hash(t, kind, hash)) < 0) {
		log_error("cannot derive the %s EK: %s", tpm_ek_kind_name(kind), strerror(-r));
		return 1;
	}
	puts(hash);
	return 0;
}

/* The audit log checkpoint the node holds, as its text says it (the signature was checked when it came). */
static void print_checkpoint(const struct handoff_status *s)
{
	_cleanup_free_ char *note = handoff_status_checkpoint(s);
	struct checkpoint c;
	char why[160], b64[64], when[UTC_TIME_MAX];
	const char *end = note ? strstr(note, "\n\n") : NULL;

	if (!end || checkpoint_parse(note, (size_t)(end + 1 - note), &c, why, sizeof(why)) < 0) {
		printf("%-13s%s\n", "log:", "not witnessed (no LogKey=, or a server before the transparency log)");
		return;
	}
	base64_encode(c.root, MERKLE_HASH_SIZE, b64);
	printf("%-13s%s, %" PRIu64 " records, root %s, signed %s\n", "log:", c.origin, c.size, b64,
	       utc_time_format(c.time, when));
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = { { "ek", optional_argument, NULL, 'e' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	enum tpm_ek_kind kind = TPM_EK_RSA2048;
	bool ek = false;
	_cleanup_secbuf_ struct secbuf *b = NULL;
	_cleanup_free_ struct keyring_entry *e = NULL;
	struct handoff_status s;
	int64_t now = (int64_t)time(NULL);
	int32_t ring;
	size_t n = 0;
	int o, r;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (o) {
		case 'e':
			if (optarg && tpm_ek_kind_from_name(optarg, &kind) < 0)
				return usage_error(usage, "unknown EK kind '%s'", optarg);
			ek = true;
			break;
		case 'h':
			printf("Usage: %s\n\n"
			       "Show what keystrap handoff left in the kernel keyring, without secrets:\n"
			       "node, server, policy version, attestation time, expiry, owner, and each\n"
			       "credential's name, size and permissions.\n\n"
			       "  --ek[=KIND]  print only this TPM's EK hash (64 hex digits), what\n"
			       "               keystrap-server node approve takes; KIND rsa2048 (default),\n"
			       "               ecc256 or ecc384, as attest --ek\n", usage);
			return 0;
		default:
			return usage_error(usage, "unknown option");
		}
	if (optind != argc)
		return usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (ek)
		return print_ek(kind);

	r = keyring_find_for_caller(&ring);
	if (r == -ENOKEY) {
		log_error("no credentials: no keystrap keyring %s (never handed off, expired or failed)",
			  geteuid() == 0 ? "is linked" : "is readable by this uid");
		return 1;
	}
	if (r < 0 || (r = keyring_read(ring, "status", &b)) < 0 || (r = keyring_list(ring, &e, &n)) < 0) {
		log_error("cannot read the keystrap keyring: %s", strerror(-r));
		return 1;
	}
	if (handoff_status_parse((const char *)b->data, b->size, &s) < 0) {
		log_error("the keystrap keyring's status key is malformed");
		return 1;
	}
	printf("%-13s%s\n", "node:", s.node_id);
	printf("%-13s%s\n", "server:", s.server);
	printf("%-13s%" PRId64 "\n", "policy:", s.policy_version);
	printf("%-13s%s at ", "attestation:", "attested");
	print_time(s.attested_at, now);
	if (s.revoked_at) {
		printf("%-13sby the server, seen at ", "revoked:");
		print_time(s.revoked_at, now);
	}
	printf("%-13s", "expires:");
	print_time(handoff_status_expiry(&s), now);
	printf("%-13s%" PRId64 " s\n", "remaining:", handoff_status_expiry(&s) > now ? handoff_status_expiry(&s) - now : 0);
	printf("%-13s", "owner:");
	print_id("uid", s.uid);
	print_id(", gid", s.gid);
	printf("\n%-13s%" PRId32 " (\"%s\")\n", "keyring:", ring, KEYRING_NAME);
	if (s.generation[0])
		printf("%-13s%s\n", "generation:", s.generation);
	print_checkpoint(&s);
	printf("credentials:\n");
	for (size_t i = 0; i < n; i++)
		printf("  %-24s %5zu bytes  uid %u  gid %u  perm %08" PRIx32 "\n", e[i].desc, e[i].size,
		       (unsigned)e[i].uid, (unsigned)e[i].gid, e[i].perm);
	return 0;
}
