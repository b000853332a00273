/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/x509.h>

#include "server-config.h"
#include "store.h"
#include "tpmpub.h"

/* The server's X.509 work: EK certificate chains in, node certificates out. */

struct pki;

/* Loads the EK manufacturer CAs and the CA that signs node certificates. Logs why not. */
int pki_load(const struct server_config *c, struct pki **ret);
void pki_free(struct pki *p);

/*
 * 0 when the DER EK certificate chains to a configured manufacturer CA and certifies ek; else
 * -EKEYREJECTED and a reason. A pass is remembered for that certificate and that EK's public
 * area (see pki.c), so a node's next boot skips the chain and key checks.
 */
int pki_ek_cert_check(struct pki *p, const uint8_t *der, size_t size, const struct tpm_pub *ek, char *reason);

/*
 * Parses a PEM PKCS#10 request (server/verify/csr.h: ECC P-256 key, ecdsa-with-SHA256), checks its
 * self-signature, and returns the key's SubjectPublicKeyInfo DER (malloc'ed).
 */
int pki_csr_key(struct pki *p, const char *pem, uint8_t **ret_spki, size_t *ret_spki_size, char *reason);

/*
 * A certificate for the key in spki (as pki_csr_key returned it): subject CN=node_id, SAN
 * DNS:node_id, clientAuth, lifetime seconds, valid from ATTEST_CLOCK_SKEW_MAX seconds ago (for
 * nodes whose clock is behind). PEM, the serial in hex, and its notBefore and notAfter (Unix
 * seconds). -ETIME when this server's clock is outside the CA certificate's validity.
 */
int pki_issue(struct pki *p, const uint8_t *spki, size_t spki_size, const char *node_id, int64_t lifetime,
	      char **ret_pem, char ret_serial[41], int64_t *ret_not_before, int64_t *ret_not_after);
/*
 * The bundle a node receives as its chain (malloc'ed PEM): the issuing CA and its issuers, then
 * the CAs of a rotation not yet retired, so consumers pinning it accept either CA's certificates.
 */
int pki_ca_pem(struct pki *p, char **ret);
/* What a CRL pki_crl returned holds. */
struct pki_crl_info {
	int64_t number;      /* its cRLNumber */
	int64_t entries;     /* certificates it lists */
	int64_t this_update; /* Unix seconds */
	int64_t next_update;
};

/*
 * The CRL of the CA in force, signed with its key: every certificate of a revoked node that has
 * not expired (store_revoked_foreach), revoked when its node was, under a cRLNumber from
 * store_crl_number_next and the CA's key identifier; thisUpdate ATTEST_CLOCK_SKEW_MAX seconds
 * ago (consumers' clocks behind), nextUpdate lifetime seconds after now. DER, or PEM with pem.
 * Kept and handed out again while the store's revoked set is the version it was made from and
 * less than half its lifetime has passed: a revocation by any process shows at the next call.
 * *ret is p's until the next call or pki_free. -EKEYREJECTED (why: one line) when the CA's
 * keyUsage leaves out cRLSign, so consumers would refuse its CRLs; store errors as they come.
 */
int pki_crl(struct pki *p, struct store *s, int64_t lifetime, bool pem, const uint8_t **ret, size_t *ret_size,
	    struct pki_crl_info *ret_info, char *why, size_t why_size);

/* The chain it issues from, borrowed: the issuing CA first, then its issuers. */
STACK_OF(X509) *pki_chain(struct pki *p);
/* "CA 0123456789abcdef (CN = ...), chain of 2, 1 previous": what a start or reload logs. */
void pki_describe(struct pki *p, char *buf, size_t size);
