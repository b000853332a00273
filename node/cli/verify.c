/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap verify: re-quote and report drift from the attested state. Two views of it:
 *
 *   local:  the sha256 PCRs 0-15 now against those recorded in the keyring's status key at
 *           handoff (PCRs 12 and 15 excluded: keystrap itself moves them after the handoff —
 *           leave-initrd, the lock, each attestation);
 *   server: a fresh attestation to the same server (new AK, nonce and quote over the policy's
 *           PCRs), which the server checks against the policy's reference values and records
 *           in its audit log either way — a refusal names the PCR. The credentials it yields
 *           are wiped, not stored: renewal is keystrap handoff's job.
 *
 * A server that answers that this node is revoked (403 "node is revoked", over TLS to the pinned
 * CA's server) has the keyring replaced by one holding only the status, marked revoked: keystrap
 * get serves no certificate, key or secret from then on. No other failure touches the keyring.
 *
 * The exit status is keystrap attest's (4 unreachable, 5 refused or revoked, 1 a failure here),
 * with one rule of verify's own: a drift found here is never told as 4, which says only that
 * the server's view is missing and which a monitor may rightly take for a passing network fault.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "encode.h"
#include "handoff-status.h"
#include "handoff.h"
#include "keystrap.h"
#include "log.h"
#include "measure.h"

static const char usage[] = "keystrap verify [--config FILE] [--ek rsa2048|ecc256|ecc384]";

/* PCRs keystrap extends after a handoff by design. */
#define KEYSTRAP_PCRS ((1u << MEASURE_PCR) | (1u << LOCK_PCR))

/* Prints each PCR that differs; returns how many. */
static int drift(const char *then, const char *now)
{
	int n = 0;

	for (unsigned i = 0; i < 16; i++) {
		char a[129], b[129];

		if (KEYSTRAP_PCRS & (1u << i))
			continue;
		if (handoff_pcrs_get(then, i, a) < 0 || handoff_pcrs_get(now, i, b) < 0 || streq(a, b))
			continue;
		printf("drift: PCR %u changed since the handoff (was %s, now %s)\n", i, a, b);
		n++;
	}
	return n;
}

/*
 * The server revoked this node: its credentials leave the keyring now, not when they expire.
 * Returns EXIT_REFUSED, or 1 when they could not be taken out: the node still holds what it
 * should not, and that needs someone on the node, not at the server.
 */
static int revoked(const struct handoff_status *st, const char *server)
{
	char when[UTC_TIME_MAX];
	int r;

	if (st->revoked_at) {
		printf("revoked: still, since %s; the keyring holds no credentials\n", utc_time_format(st->revoked_at, when));
		return EXIT_REFUSED;
	}
	r = handoff_revoke(st, (int64_t)time(NULL));
	if (r == -ESTALE)
		printf("revoked: %s says node %s is revoked; its credentials have expired already\n", server, st->node_id);
	else if (r < 0) {
		log_error("%s says node %s is revoked, but its credentials could not be taken out of the keyring: %s", server,
			  st->node_id, r == -EBADR ? handoff_reason(r) : strerror(-r));
		return 1;
	} else
		printf("revoked: %s says node %s is revoked; its certificate, key and secrets are gone from the keyring\n",
		       server, st->node_id);
	return EXIT_REFUSED;
}

/* The line that says how the attestation failed. Only a revocation's has the word "revoked" in it. */
static const char *failure_line(enum attest_failure f)
{
	switch (f) {
	case ATTEST_FAILED_UNREACHABLE:
		return "no answer from the server in time (unreachable or busy)";
	case ATTEST_FAILED_REFUSED:
		return "refused by the server";
	case ATTEST_FAILED_REVOKED:
		return "refused by the server: this node is revoked";
	default:
		return "failed on this node";
	}
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "ek", required_argument, NULL, 'e' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	_cleanup_config_ struct keystrap_config *cfg = NULL;
	_cleanup_node_credentials_ struct node_credentials *c = NULL;
	static struct handoff_status st;
	_cleanup_free_ char *held = NULL;
	const char *config = CONFIG_PATH;
	enum tpm_ek_kind kind = TPM_EK_RSA2048;
	enum attest_failure failure = ATTEST_FAILED_LOCAL;
	char now[HANDOFF_PCRS_MAX];
	int o, r, changed;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'e':
			if (tpm_ek_kind_from_name(optarg, &kind) < 0)
				return usage_error(usage, "unknown EK kind '%s'", optarg);
			break;
		case 'h':
			printf("Usage: %s\n\n"
			       "Compare the PCRs with those recorded at the handoff (0-15 but keystrap's own 12 and\n"
			       "15) and attest again to the same server, which checks and audits the new quote.\n"
			       "A server that says this node is revoked has its credentials taken out of the\n"
			       "keyring at once (keystrap get then says so); nothing else touches them.\n"
			       "Exit 0: no drift and attested; 1: drift, or a failure here (no handoff to compare\n"
			       "with, the configuration, the TPM, the keyring); %d: usage; %d: no answer from the\n"
			       "server in time (and no drift); %d: refused by the server, or this node is revoked.\n",
			       usage, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_REFUSED);
			return 0;
		default:
			return usage_error(usage, "unknown option");
		}
	if (optind != argc)
		return usage_error(usage, "unexpected argument '%s'", argv[optind]);

	r = handoff_status_read(&st);
	if (r < 0) {
		log_error("nothing to verify: no keystrap keyring with a status (%s)",
			  r == -ENOKEY ? "no handoff, or expired" : strerror(-r));
		return 1;
	}
	if (!st.pcrs[0]) {
		log_error("the handoff recorded no PCR values to compare with");
		return 1;
	}
	if (pcr_snapshot(now, sizeof(now)) < 0)
		return 1;
	changed = drift(st.pcrs, now);
	if (changed == 0)
		printf("no drift: PCRs 0-11, 13, 14 are as at the handoff\n");

	if (handoff_config(config, &cfg) < 0)
		return 1;
	if (!streq(cfg->server, st.server))
		log_warning("[Attest] Server=%s is not the server of the handoff (%s)", cfg->server, st.server);
	/* attest_run logs a refusal with the server's reason (a drifted PCR is named there). */
	held = handoff_status_checkpoint(&st);
	if (handoff_attest(cfg, kind, held, &c, &failure) < 0) {
		printf("attestation to %s: %s\n", cfg->server, failure_line(failure));
		if (failure == ATTEST_FAILED_REVOKED)
			return revoked(&st, cfg->server);
		/* Drift seen here and no server to say more: the drift is the news. */
		if (failure == ATTEST_FAILED_UNREACHABLE && changed)
			return 1;
		return attest_exit_status(failure);
	}
	printf("attestation to %s: accepted, node %s\n", cfg->server, c->node_id);
	/* The checkpoint this attestation was proved against is the one to extend next time. */
	if (c->checkpoint && (handoff_status_set_checkpoint(&st, c->checkpoint) < 0 || (r = handoff_status_write(&st)) < 0))
		log_warning("cannot keep the new audit log checkpoint in the keyring's status: the next attestation "
			    "is checked against the one held before");
	return changed ? 1 : 0;
}
