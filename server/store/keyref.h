/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <openssl/evp.h>

/*
 * The server's private keys (the CA key, the KEK, the log key), named the way the
 * configuration names them, and loaded through OpenSSL:
 *
 *   PATH, file:PATH          a PEM private key file, owner-only (a loose key file is refused);
 *                            a "TSS2 PRIVATE KEY" PEM (tpm2tss-genkey, tpm2-openssl) is a key
 *                            wrapped by this server's TPM and is loaded by the TPM
 *   handle:0x81...           a persistent key in this server's TPM, through the tpm2-openssl
 *                            provider (TCTI from TPM2OPENSSL_TCTI, its default /dev/tpmrm0)
 *   pkcs11:…                 an RFC 7512 URI: a key on a PKCS#11 token, through libp11's engine
 *                            (pin-value= or pin-source=file:…; module-path= or p11-kit's modules)
 *
 * With a key in hardware the EVP_PKEY is a handle: nothing secret of it is in this process.
 * This file is the one place that knows how each is reached; a pkcs11 provider replaces the
 * engine here and nowhere else. The TPM's provider lives in a library context of its own, so
 * that its digests, ciphers and random generator never stand in for the default ones: sign and
 * decrypt with a loaded key through keyref_sign_init and keyref_pkey_ctx, not the NULL context.
 */

/* One line for why: the key's name (a PIN in it shown as "***") and the provider's reason. */
#define KEYREF_WHY_MAX 1024

/* Loads the private key uri names. On failure why names the URI and the reason, as one line. */
int keyref_load_private(const char *uri, EVP_PKEY **ret, char *why, size_t why_size);
/* Its public half only (for encryption and checks that need no token session). */
int keyref_load_public(const char *uri, EVP_PKEY **ret, char *why, size_t why_size);

/* The file uri designates ("PATH", "file:PATH"), or NULL when the key is in hardware or unknown. */
const char *keyref_file(const char *uri);
/* True when uri names a key in a TPM or on a token. */
bool keyref_is_hardware(const char *uri);
/* uri as it may be shown and logged: the value of pin-value= replaced by "***". */
void keyref_display(const char *uri, char *buf, size_t size);

/* EVP_DigestSignInit with SHA-256 in the key's own library context. */
int keyref_sign_init(EVP_MD_CTX *ctx, EVP_PKEY *key);
/* An EVP_PKEY_CTX for the key (encrypt, decrypt) in its own library context; NULL: out of memory. */
EVP_PKEY_CTX *keyref_pkey_ctx(EVP_PKEY *key);
