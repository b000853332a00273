/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keystrap measure: a phase or the configuration, by hand or from an initrd unit. */
#include <getopt.h>
#include <stdio.h>

#include "keystrap.h"
#include "measure.h"

static const char usage[] = "keystrap measure (--phase NAME | --config FILE [--check]) [--log FILE]";

static void show_help(void)
{
	printf("Usage: %s\n\n"
	       "Extend a PCR in every active bank with what keystrap is about to act on, and append the\n"
	       "event to the measurement log (TCG Canonical Event Log JSON, as systemd writes\n"
	       "tpm2-measure.log), so that 'keystrap eventlog --verify --cel LOG' and a remote verifier\n"
	       "can replay PCRs 8-15.\n\n"
	       "  --phase NAME   enter-initrd, attested, leave-initrd (PCR 12) or volumes-unlocked\n"
	       "                 (PCR 15: what 'keystrap lock' does); the event is \"keystrap:NAME\"\n"
	       "  --config FILE  parse FILE strictly, then measure it as\n"
	       "                 \"keystrap:config:SHA256-OF-FILE\" into PCR 12, once per boot\n"
	       "  --check        with --config: only validate (strict parse, no secrets); no TPM\n"
	       "  --log FILE     the measurement log; default $KEYSTRAP_MEASURE_LOG or\n"
	       "                 " MEASURE_LOG_DEFAULT "\n\n"
	       "The TPM is reached through KEYSTRAP_TCTI (default " TPM_TCTI_DEFAULT ").\n",
	       usage);
}

int cmd_measure(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "phase", required_argument, NULL, 'p' },
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'C' },
		{ "log", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	_cleanup_config_ struct keystrap_config *c = NULL;
	const char *phase = NULL, *config = NULL, *log = NULL;
	bool check = false;
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (opt) {
		case 'p': phase = optarg; break;
		case 'c': config = optarg; break;
		case 'C': check = true; break;
		case 'l': log = optarg; break;
		case 'h': show_help(); return 0;
		default: return usage_error(usage, "invalid option");
		}
	}
	if (optind < argc)
		return usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (!phase == !config)
		return usage_error(usage, "give either --phase or --config");
	if (check && !config)
		return usage_error(usage, "--check goes with --config");
	if (phase && measure_phase_pcr(phase) < 0)
		return usage_error(usage, "unknown phase '%s' (enter-initrd, volumes-unlocked, attested, "
				   "leave-initrd)", phase);
	if (log && log[0] != '/')
		return usage_error(usage, "--log '%s' is not an absolute path", log);
	measure_log_use(log);

	if (check) {
		if (config_check(config, NULL) < 0)
			return 1;
		printf("%s: valid, and nothing in it looks like a secret\n", config);
		return 0;
	}
	if (config)
		return config_load(NULL, config, &c) < 0 ? 1 : 0;
	r = measure_phase(NULL, phase);
	if (r < 0)
		return 1;
	printf("PCR %d extended with keystrap:%s, logged in %s\n", measure_phase_pcr(phase), phase, measure_log_path());
	return 0;
}
