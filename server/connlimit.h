/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * How many connections the server holds, in all and per peer address, so that idle
 * connections from one address cannot take every descriptor (issue 10, item 16). Pure: serve.c
 * opens a connection here before it keeps it, attaches its address once it knows it, and
 * closes it when the socket is gone. The per-address table is sized for max_total addresses,
 * so it never grows and never evicts.
 */
#define CONNLIMIT_ADDR_SIZE 16

struct connlimit;

int connlimit_new(size_t max_total, size_t max_per_address, struct connlimit **ret);
void connlimit_free(struct connlimit *l);

/* At max_total: the server stops accepting until a connection closes. */
bool connlimit_full(const struct connlimit *l);
size_t connlimit_total(const struct connlimit *l);
size_t connlimit_of(const struct connlimit *l, const uint8_t addr[CONNLIMIT_ADDR_SIZE]);

/* Counts a connection just accepted (the caller accepts only while not full): -EBUSY if full. */
int connlimit_open(struct connlimit *l);
/* Charges an open connection to its peer address: -EBUSY (nothing charged) when that address
 * already holds max_per_address; the connection stays counted until connlimit_close. */
int connlimit_attach(struct connlimit *l, const uint8_t addr[CONNLIMIT_ADDR_SIZE]);
/* addr: what connlimit_attach charged, or NULL when it was never attached. */
void connlimit_close(struct connlimit *l, const uint8_t *addr);

/* The peer's address as a key: IPv4 as IPv4-mapped IPv6, so one host is one key. */
int connlimit_addr(const struct sockaddr *sa, socklen_t len, uint8_t ret[CONNLIMIT_ADDR_SIZE]);
