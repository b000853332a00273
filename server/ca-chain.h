/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <openssl/x509.h>

/*
 * The CA that signs node certificates as a chain file: the issuing CA first, then the CA that
 * issued it, and so on towards the root (intermediate CAs; the root may be left out). What
 * pki.c loads, and what `keystrap-server ca` checks before anything is renamed into place.
 */

#define CA_CHAIN_MAX 8
#define CA_FILE_MAX (CA_CHAIN_MAX * 8192)
#define CA_FINGERPRINT_HEX 64

/* Every PEM certificate of path, in file order. -ENOENT, -EFBIG, or -EBADMSG when it holds none
 * or something other than certificates; why names the file. */
int ca_chain_read(const char *path, STACK_OF(X509) **ret, char *why, size_t why_size);

/* Each a CA certificate (basicConstraints CA:TRUE), each issued and signed by the next: 0, or
 * -EINVAL and why naming the first link that is not (so a chain out of order is named). */
int ca_chain_check(const char *path, STACK_OF(X509) *chain, char *why, size_t why_size);

/* SHA-256 of the certificate's DER, hex: how a CA is named in output and audit records. */
void ca_fingerprint(X509 *x, char ret[CA_FINGERPRINT_HEX + 1]);
/* SHA-256 of the certificate's SubjectPublicKeyInfo, hex: a key in use is a key in use under any name. */
void ca_key_fingerprint(X509 *x, char ret[CA_FINGERPRINT_HEX + 1]);

/* The certificates as concatenated PEM, each once (by fingerprint), appended to *buf (malloc'ed). */
int ca_chain_pem_append(STACK_OF(X509) *chain, char **buf);

/* "CN=keystrap CA": the subject as one line, for messages. */
void ca_subject(X509 *x, char *buf, size_t size);

static inline void ca_chain_freep(STACK_OF(X509) **p)
{
	sk_X509_pop_free(*p, X509_free);
}
#define _cleanup_chain_ _cleanup_(ca_chain_freep)
