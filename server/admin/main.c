/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "log.h"
#include "admin.h"

#ifndef KEYSTRAP_VERSION
#define KEYSTRAP_VERSION "0"
#endif

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "serve", cmd_serve, "run the attestation server (HTTPS, TLS 1.3)" },
	{ "node", cmd_node, "list the node registry; approve or revoke a node" },
	{ "audit", cmd_audit, "verify the audit log against its signed checkpoints, prove a record, export it" },
	{ "log-key", cmd_log_key, "generate, rotate and retire the key that signs the audit log's checkpoints" },
	{ "policy", cmd_policy, "load a policy signed by k of the n operator keys; show the one in force; draft the next" },
	{ "secret", cmd_secret, "store (from standard input), list, or delete secret payloads; values never shown" },
	{ "kek", cmd_kek, "create, rotate or verify the key-encryption key of the stored secrets" },
	{ "ca", cmd_ca, "rotate the CA that signs node certificates, retire the previous one; show it, print the bundle or the CRL" },
	{ "operator", cmd_operator, "rotate an operator key: the policy in force re-signed by the new key set" },
	{ "probe", cmd_probe, "attest as a probe node, as a node would, and write the result as metrics (synthetic provisioning)" },
};

static void show_usage(FILE *f)
{
	fprintf(f, "Usage: keystrap-server <command> [options]\n\nCommands:\n");
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
	/* The database holds secrets and whatever else is created here is no one else's business either. */
	umask(077);
	log_set_level_from_env();
	if (argc < 2) {
		show_usage(stderr);
		return EXIT_USAGE;
	}
	if (streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
		show_usage(stdout);
		return 0;
	}
	if (streq(argv[1], "--version")) {
		printf("keystrap-server %s\n", KEYSTRAP_VERSION);
		return 0;
	}
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (streq(argv[1], commands[i].name)) {
			int r = commands[i].run(argc - 1, argv + 1);

			return r == EXIT_HELP ? 0 : r;
		}
	fprintf(stderr, "keystrap-server: unknown command '%s'\n", argv[1]);
	show_usage(stderr);
	return EXIT_USAGE;
}
