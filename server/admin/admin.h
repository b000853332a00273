/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "server-config.h"
#include "store.h"

#define EXIT_USAGE 2
/* A policy document is small: anything larger is refused before it is parsed. */
#define POLICY_FILE_MAX 65536
/* A command printed its --help: main exits 0 without running it. */
#define EXIT_HELP (-1)

/* keystrap-server's commands, one file each (main.c's table): the service and the operator's. */
int cmd_serve(int argc, char **argv);
int cmd_node(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_secret(int argc, char **argv);
int cmd_kek(int argc, char **argv);
int cmd_ca(int argc, char **argv);
int cmd_operator(int argc, char **argv);
int cmd_log_key(int argc, char **argv);
int cmd_probe(int argc, char **argv);

/* The options an admin command takes besides --config: a NULL member refuses its option. */
struct admin_options {
	const char **id;    /* --id ID */
	const char **group; /* --group GROUP */
	bool *json;         /* --json */
	const char **file;  /* --file FILE */
	bool *full;         /* --full */
	bool *reinstate;    /* --reinstate */
	bool *probe;        /* --probe */
};

/*
 * The admin commands' command line: VERB [ARG] --config FILE and what o allows (o NULL:
 * nothing else). Opens the store the configuration names. Returns 0, or the exit code after
 * saying what was wrong. ret_arg NULL: the command takes no ARG.
 */
int admin_open(int argc, char **argv, const char *usage, const struct admin_options *o, const char **ret_verb,
	       const char **ret_arg, struct store **ret);

/* --json output: o as one line on stdout (owned by the caller). */
void admin_json_print(json_object *o);

/* policy diff A B: each a version in the store or a policy file; 0, or 1 after one line. */
int admin_policy_diff(const struct server_config *c, struct store *s, const char *a, const char *b, bool json);

/* Loads the configuration and opens its store: 0, or exit code 1 after saying why. */
int admin_load(const char *config, struct server_config **ret_config, struct store **ret);

/* Who did it, for audit records: "operator:LOGIN" (or "operator:uid=N"). */
void admin_operator(char *buf, size_t size);

/* "keystrap-server: WHY" on stderr; returns exit code 1. */
int admin_refuse(const char *fmt, ...) _printf_(1, 2);
/* An audit record of an operator's step, "WHAT; by WHO", in the caller's transaction. */
int admin_audit(struct store *s, const char *action, const char *decision, const char *what);
/* A refused step: said as admin_refuse says it, and recorded (deny) in a transaction of its own. */
int admin_denied(struct store *s, const char *action, const char *fmt, ...) _printf_(3, 4);

/* A self-signed ECDSA P-256 CA (ca rotate's, probe init's), valid from the allowed clock skew ago for days. */
int admin_ca_generate(const char *cn, int64_t days, EVP_PKEY **ret_key, STACK_OF(X509) **ret_chain);
/* A private key as PKCS#8 PEM, written to a new owner-only file (write_file_new). */
int admin_key_write(EVP_PKEY *k, const char *path);
/* Certificates as PEM, written to a new file readable by all. */
int admin_chain_write(STACK_OF(X509) *chain, const char *path);
