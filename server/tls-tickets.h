/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <openssl/ssl.h>

/*
 * The keys of the node listener's TLS 1.3 session tickets, so that a node's second connection
 * (the finish after its start, a retry) resumes its first instead of paying a full handshake.
 * Random at start, in secbuf memory only: never in the database, a file or a log line, so a
 * ticket from another instance or from before a restart is refused into a full handshake.
 * The key that encrypts new tickets is replaced every period; tickets under the one before
 * are still accepted (and renewed) for one more period, older ones refused. A ticket also
 * lives at most one period (the SSL_CTX's session timeout). Times are CLOCK_MONOTONIC seconds.
 */
#define TLS_TICKETS_PERIOD 3600

struct tls_tickets;

int tls_tickets_new(int64_t period, int64_t now, struct tls_tickets **ret);
void tls_tickets_free(struct tls_tickets *t);

/*
 * For a new ticket: the current key (rotated first when its period has passed), its 16-byte
 * name, 32-byte AES key and 32-byte HMAC key.
 */
void tls_tickets_current(struct tls_tickets *t, int64_t now, const uint8_t **ret_name, const uint8_t **ret_aes,
			 const uint8_t **ret_hmac);
/*
 * For a ticket presented under name: 1 and its keys when that is the current key, 2 when it is
 * the previous one (the ticket is to be renewed), 0 when no key of that name is held any more.
 */
int tls_tickets_find(struct tls_tickets *t, int64_t now, const uint8_t name[16], const uint8_t **ret_aes,
		     const uint8_t **ret_hmac);

/* The ticket callback, the lifetime and one ticket per handshake on ctx, keys from t. */
int tls_tickets_attach(struct tls_tickets *t, SSL_CTX *ctx);
