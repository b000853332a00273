/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "macro.h"
#include "payload.h"
#include "secbuf.h"

/*
 * What a successful attestation yields on the node (issue 5 step 5), handed from the attest
 * handshake to the keyring handoff (issue 6) inside one process: nothing here is ever written
 * to a file. The private key lives in OpenSSL's secure heap, secret values in secbufs.
 */

struct node_credentials {
	char node_id[65];
	EVP_PKEY *key;        /* the node key made in this process */
	char *certificate;    /* PEM, the node certificate */
	char *chain;          /* PEM, the issuing CA (and anything above it) */
	int64_t not_after;    /* the certificate's expiry, Unix seconds */
	int64_t clock_skew;   /* this node's clock minus the server's (its Date header), seconds */
	char server[256];     /* where it came from, for keystrap status */
	int64_t policy_version;
	struct node_secret *secrets;
	size_t n_secrets;
	char *checkpoint; /* the audit log checkpoint the reply was proved against (witness.h); NULL: not witnessed */
};

/*
 * Seconds left at now (this node's clock) by the server's clock: a node ahead of the server
 * must not cut the lifetime short, nor one behind stretch it.
 */
static inline int64_t node_credentials_remaining(const struct node_credentials *c, int64_t now)
{
	return c->not_after - (now - c->clock_skew);
}

void node_credentials_free(struct node_credentials *c); /* wipes */
static inline void node_credentials_freep(struct node_credentials **c)
{
	node_credentials_free(*c);
}
#define _cleanup_node_credentials_ _cleanup_(node_credentials_freep)
