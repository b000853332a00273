/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "attest-msg.h"
#include "macro.h"
#include "pcr.h"

#define EK_CA_MAX 8
#define OPERATOR_KEYS_CONFIG_MAX 16
#define CONNECTIONS_MAX 1048576

struct operator_keys;

/*
 * keystrap-server's configuration: one JSON object, parsed strictly (unknown keys, wrong
 * types and out-of-range numbers are refused, naming the key). What nodes must boot is not
 * here: it is the signed policy in the store (policy.h), trusted only when policy_threshold
 * of the operator keys named here signed it.
 */
struct server_config {
	char *listen;           /* "ADDRESS:PORT" */
	char *admin_listen;     /* the dashboard's "unix:PATH"; NULL: none (dashboard.h) */
	char *tls_certificate;  /* the server's TLS certificate (PEM, chain allowed) */
	char *tls_key;
	char *database;         /* "PATH", "sqlite:PATH" or "postgresql://..." (see store_open) */
	char *kek;              /* the key-encryption key of the store's secrets: "PATH" or "file:PATH" (kek_load) */
	char *ek_ca[EK_CA_MAX]; /* manufacturer CA certificates the EK certificate must chain to */
	size_t n_ek_ca;
	char *ca_certificate;   /* signs node certificates: the issuing CA, then its issuers (PEM chain) */
	char *ca_key;
	char *log_key;          /* signs the audit log's checkpoints (log-key.h); NULL: the log is unsigned */
	char *log_key_next;     /* the next log key, which signs every checkpoint too while its file exists (a
				 * rotation, log-key rotate), a key in hardware while it is named; default
				 * LOG_KEY.next for a log key file, none for one in hardware */
	char *log_name;         /* the log's name (its checkpoints' origin): required with a log key that is not
				 * a note signer key file (an ECDSA key in a TPM, on a token) */
	char *checkpoint_file;  /* where the newest checkpoint is also written (replaced atomically); NULL: none */
	char *ca_previous;      /* the CAs a rotation replaced, trusted until ca retire; default CA_CERTIFICATE.previous */
	int64_t certificate_lifetime; /* seconds */
	int64_t nonce_lifetime;       /* seconds */
	int64_t max_body;             /* bytes; larger requests get 413 */
	double rate_limit;            /* requests/s per peer address; 0: no limit */
	int64_t rate_burst;           /* requests a peer may send at once before the limit applies */
	int64_t max_pending_enrollments; /* new EKs beyond this many pending requests get 503 */
	int64_t max_connections;         /* open at once; at the cap the server stops accepting */
	int64_t max_connections_per_address; /* beyond it, a new connection is closed at once */
	int64_t request_timeout;         /* seconds from accept (or the last reply) to a whole request */
	int64_t max_queue_delay;         /* ms the event loop may be behind before starts get 503 (overload) */
	int64_t retry_after;             /* seconds: an overload 503's Retry-After is 1 to 2 times this */
	int64_t crl_lifetime;            /* seconds from a CRL's making to its nextUpdate */
	int64_t workers;                 /* verification threads (workers.h); 0: on the event loop; default the CPUs */
	struct operator_keys *operators; /* n: who may sign policies (PEM public keys) */
	int64_t policy_threshold;        /* k: how many of them must (default 2) */
};

#define WORKERS_MAX 256

int server_config_load(const char *path, struct server_config **ret);
void server_config_free(struct server_config *c);
static inline void server_config_freep(struct server_config **c)
{
	server_config_free(*c);
}
#define _cleanup_server_config_ _cleanup_(server_config_freep)

/* CLOCK_REALTIME in microseconds: what records and policies are timed by. */
int64_t now_usec(void);
