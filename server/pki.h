/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <openssl/x509.h>

#include "server.h"

/* The server's X.509 work: EK certificate chains in, node certificates out. */

struct pki;

/* Loads the EK manufacturer CAs and the CA that signs node certificates. Logs why not. */
int pki_load(const struct server_config *c, struct pki **ret);
void pki_free(struct pki *p);

/* 0 when the DER EK certificate chains to a configured manufacturer CA; else a reason. */
int pki_ek_cert_verify(struct pki *p, const uint8_t *der, size_t size, char *reason);

/*
 * Parses a PEM PKCS#10 request, checks its self-signature and that its key is ECC P-256, and
 * returns the key's SubjectPublicKeyInfo DER (malloc'ed) and the key.
 */
int pki_csr_key(const char *pem, EVP_PKEY **ret_key, uint8_t **ret_spki, size_t *ret_spki_size, char *reason);

/* A certificate for key: subject CN=node_id, SAN DNS:node_id, clientAuth, lifetime seconds. PEM. */
int pki_issue(struct pki *p, EVP_PKEY *key, const char *node_id, int64_t lifetime, char **ret_pem,
	      char ret_serial[41]);
/* The CA certificate that signs node certificates, PEM (malloc'ed): the chain a node receives. */
int pki_ca_pem(struct pki *p, char **ret);
/* A PEM certificate's notAfter, Unix seconds. */
int pki_pem_not_after(const char *pem, int64_t *ret);
