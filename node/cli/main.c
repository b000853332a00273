/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keystrap.h"
#include "log.h"

#ifndef KEYSTRAP_VERSION
#define KEYSTRAP_VERSION "0"
#endif

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "enroll", cmd_enroll, "seal a new disk key in the TPM and add it to a LUKS2 volume" },
	{ "unlock", cmd_unlock, "unseal the disk key and open LUKS2 volumes, then lock" },
	{ "wipe", cmd_wipe, "remove a TPM token and its keyslot, never the last one a person can use" },
	{ "lock", cmd_lock, "extend PCR 15 so no disk key can be unsealed again this boot" },
	{ "eventlog", cmd_eventlog, "parse and replay the firmware event log; --verify against the TPM" },
	{ "predict", cmd_predict, "the PCRs the next boot measures with a new kernel, initrd or command line" },
	{ "measure", cmd_measure, "measure a boot phase or the configuration into a PCR and its log" },
	{ "attest", cmd_attest, "prove this boot to keystrap-server and receive a node certificate" },
	{ "handoff", cmd_handoff, "attest, then put the node credentials into the kernel keyring" },
	{ "get", cmd_get, "print one credential from the kernel keyring (for the consumer service)" },
	{ "verify", cmd_verify, "re-quote: report PCR drift since the handoff, attest again to the server" },
	{ "status", cmd_status, "show what was handed off to the kernel keyring, without secrets" },
	{ "config", cmd_config, "print one value of keystrap.conf, strictly parsed (for hooks and scripts)" },
};

static void show_usage(FILE *f)
{
	fprintf(f, "Usage: keystrap <command> [options]\n\nCommands:\n");
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'keystrap <command> --help' describes each; so does keystrap-<command>(8).\n");
}

int main(int argc, char **argv)
{
	log_set_level_from_env();
	/* tpm2-tss logs every TPM error itself; keystrap says one clear line instead. */
	if (log_get_level() < LOG_LVL_DEBUG)
		setenv("TSS2_LOG", "all+none", 0);

	if (argc < 2) {
		show_usage(stderr);
		return EXIT_USAGE;
	}
	if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
		show_usage(stdout);
		return 0;
	}
	if (streq(argv[1], "--version")) {
		printf("keystrap %s\n", KEYSTRAP_VERSION);
		return 0;
	}
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (streq(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "keystrap: unknown command '%s'\n", argv[1]);
	show_usage(stderr);
	return EXIT_USAGE;
}
