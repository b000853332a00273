/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap handoff: attest this boot (the attest handshake, in-process) and put what the
 * server released into the "keystrap" kernel keyring for the configured consumer. The node
 * key and the secrets go from attest_run's secure memory to the kernel and nowhere else.
 *
 * When attestation fails, [Attest] FailurePolicy= decides: "continue" (the default) says so
 * on stderr and the kernel console and exits 1, which the initrd unit treats as success (boot
 * goes on, without credentials); "emergency" exits 3, which the unit turns into
 * emergency.target.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "encode.h"
#include "fileio.h"
#include "handoff-status.h"
#include "handoff.h"
#include "keystrap.h"
#include "log.h"
#include "pcr.h"

static const char usage[] = "keystrap handoff [--config FILE] [--ek rsa2048|ecc256|ecc384] [--renew]";

/* Loud: stderr (the journal) and the kernel console, whatever the unit's output settings. */
static void shout(const char *msg)
{
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC | O_NOCTTY);

	log_error("%s", msg);
	if (fd >= 0) {
		char line[320];
		int n = snprintf(line, sizeof(line), "<2>keystrap: %s\n", msg);

		/* Plain write: dprintf's stream buffer is a leak in LeakSanitizer's eyes. */
		(void)write_full(fd, line, n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0);
		close(fd);
	}
}

/* What the boot does without credentials: [Attest] FailurePolicy=; status is continue's exit status. */
static int without_credentials(const struct keystrap_config *cfg, const char *why, int status)
{
	char msg[256];

	if (cfg->emergency) {
		snprintf(msg, sizeof(msg), "no node credentials: %s; FailurePolicy=emergency stops the boot", why);
		shout(msg);
		return EXIT_EMERGENCY;
	}
	snprintf(msg, sizeof(msg), "*** booting WITHOUT node credentials: %s (FailurePolicy=continue) ***", why);
	shout(msg);
	return status;
}

/*
 * --renew (keystrap-renew.timer): whether less than half of the credentials' lifetime
 * remains, or there are none. Cheap when not due: one keyring read, no TPM, no network.
 */
static bool renewal_due(int64_t now)
{
	struct handoff_status st;

	if (handoff_status_read(&st) < 0)
		return true;
	if (handoff_status_expiry(&st) - now < (handoff_status_expiry(&st) - st.attested_at) / 2)
		return true;
	printf("renewal not due: %lld of %lld s remain\n", (long long)(handoff_status_expiry(&st) - now),
	       (long long)(handoff_status_expiry(&st) - st.attested_at));
	return false;
}

int cmd_handoff(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "ek", required_argument, NULL, 'e' },
					      { "renew", no_argument, NULL, 'r' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	_cleanup_config_ struct keystrap_config *cfg = NULL;
	_cleanup_node_credentials_ struct node_credentials *c = NULL;
	bool renew = false;
	const char *config = CONFIG_PATH;
	enum tpm_ek_kind kind = TPM_EK_RSA2048;
	enum attest_failure failure = ATTEST_FAILED_LOCAL;
	struct keyring_owner own;
	static struct handoff_status st;
	char pcrs[HANDOFF_PCRS_MAX];
	int32_t id;
	int o, r;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'e':
			if (tpm_ek_kind_from_name(optarg, &kind) < 0)
				return usage_error(usage, "unknown EK kind '%s'", optarg);
			break;
		case 'r':
			renew = true;
			break;
		case 'h':
			printf("Usage: %s\n\n"
			       "Attest this boot to [Attest] Server= of keystrap.conf and put the node key, its\n"
			       "certificate and chain and each secret into the \"keystrap\" kernel keyring, readable\n"
			       "by [Handoff] Owner=/Group= only, until the certificate expires.\n"
			       "Exit 0: handed off; 1: failed here (a bad configuration, the TPM, the keyring);\n"
			       "%d: no answer from the server in time; %d: refused by the server (both under\n"
			       "FailurePolicy=continue); %d: attestation failed and FailurePolicy=emergency.\n"
			       "--renew (the runtime timer): only when less than half of the credentials'\n"
			       "lifetime remains; a failure then exits 1, %d or %d and leaves the current ones.\n",
			       usage, EXIT_UNREACHABLE, EXIT_REFUSED, EXIT_EMERGENCY, EXIT_UNREACHABLE, EXIT_REFUSED);
			return 0;
		default:
			return usage_error(usage, "unknown option");
		}
	if (optind != argc)
		return usage_error(usage, "unexpected argument '%s'", argv[optind]);

	if (renew && !renewal_due((int64_t)time(NULL)))
		return 0;
	if (handoff_config(config, &cfg) < 0)
		return 1;
	/* Before attesting: a name this initrd cannot resolve is the configuration's fault. */
	if (handoff_owner(cfg->owner, cfg->group, &own) < 0) {
		log_error("%s: [Handoff] Owner='%s' Group='%s': no such user or group here (use numeric ids)",
			  config, cfg->owner ? cfg->owner : "", cfg->group ? cfg->group : "");
		return 1;
	}
	/* attest_run logs why it failed; the policy decides what the boot does about it. */
	if (handoff_attest(cfg, kind, NULL, &c, &failure) < 0) {
		if (renew && failure == ATTEST_FAILED_REVOKED && handoff_status_read(&st) >= 0) {
			/* As keystrap verify: credentials the revocation could not take out need someone on
			 * the node, so that is 1, not the refusal's code. */
			r = st.revoked_at ? 0 : handoff_revoke(&st, (int64_t)time(NULL));
			if (r < 0 && r != -ESTALE) {
				log_error("renewal refused: the server says this node is revoked, but its credentials could "
					  "not be taken out of the keyring: %s",
					  r == -EBADR ? handoff_reason(r) : strerror(-r));
				return 1;
			}
			log_error(st.revoked_at ? "renewal refused: this node is still revoked; its keyring holds no credentials" :
				  r == -ESTALE ? "renewal refused: the server says this node is revoked; its credentials have "
						 "expired already" :
						 "renewal refused: the server says this node is revoked; its credentials are gone "
						 "from the keyring");
			return attest_exit_status(failure);
		}
		if (renew) {
			log_error("renewal failed; the current credentials stay until they expire");
			return attest_exit_status(failure);
		}
		return without_credentials(cfg, "attestation failed", attest_exit_status(failure));
	}
	if (pcr_snapshot(pcrs, sizeof(pcrs)) < 0)
		pcrs[0] = 0;
	r = handoff_store(c, &own, pcrs, (int64_t)time(NULL), &id);
	if (r < 0) {
		log_error("cannot hand the credentials to the kernel keyring: %s", handoff_reason(r));
		if (renew)
			return 1;
		return without_credentials(cfg, "the kernel keyring refused them", 1);
	}
	fprintf(stderr, "keystrap: node %s: %zu secret(s), certificate and key in keyring %d \"%s\", expiring in %lld s\n",
		c->node_id, c->n_secrets, id, KEYRING_NAME, (long long)node_credentials_remaining(c, (int64_t)time(NULL)));
	return 0;
}
