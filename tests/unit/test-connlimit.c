/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * server/connlimit.c: the total cap and the per-address cap, each with its twin just under it;
 * a refused attach charges nothing; closing gives room back; IPv4 and its IPv4-mapped IPv6 form
 * are one address; and the table stays exact through many addresses coming and going (deletion
 * must not lose an address whose probe run passed the deleted slot).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../server/connlimit.c"
#include "tap.h"

static void key(uint32_t n, uint8_t a[CONNLIMIT_ADDR_SIZE])
{
	memset(a, 0, CONNLIMIT_ADDR_SIZE);
	a[0] = 0x20;
	a[1] = 0x01;
	memcpy(a + 12, &n, sizeof(n));
}

int main(void)
{
	struct connlimit *l = NULL;
	uint8_t a[CONNLIMIT_ADDR_SIZE], b[CONNLIMIT_ADDR_SIZE], m[CONNLIMIT_ADDR_SIZE];
	struct sockaddr_in v4 = { .sin_family = AF_INET };
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6 };
	static uint32_t count[256];
	bool exact = true, ok = true;
	size_t sum = 0;

	CHECK(connlimit_new(0, 1, &l) == -EINVAL && connlimit_new(1, 0, &l) == -EINVAL, "zero caps are refused");
	CHECK(connlimit_new(4, 2, &l) == 0 && l, "a table");
	key(1, a);
	key(2, b);
	for (int i = 0; i < 3; i++)
		ok &= connlimit_open(l) == 0;
	CHECK(ok && !connlimit_full(l), "three of four: not full");
	CHECK(connlimit_attach(l, a) == 0 && connlimit_attach(l, a) == 0, "two from one address (its cap)");
	CHECK(connlimit_attach(l, a) == -EBUSY && connlimit_of(l, a) == 2, "a third from it is refused, nothing charged");
	CHECK(connlimit_attach(l, b) == 0 && connlimit_of(l, b) == 1, "another address is unaffected");
	CHECK(connlimit_open(l) == 0 && connlimit_full(l) && connlimit_total(l) == 4, "the fourth fills the table");
	CHECK(connlimit_open(l) == -EBUSY && connlimit_total(l) == 4, "a fifth is refused");
	connlimit_close(l, NULL);
	CHECK(!connlimit_full(l) && connlimit_total(l) == 3, "closing an unattached one makes room");
	connlimit_close(l, a);
	CHECK(connlimit_of(l, a) == 1 && connlimit_attach(l, a) == 0, "closing one of an address makes room for it");
	connlimit_close(l, a);
	connlimit_close(l, a);
	connlimit_close(l, b);
	CHECK(connlimit_total(l) == 0 && connlimit_of(l, a) == 0 && connlimit_of(l, b) == 0, "all closed: empty");
	connlimit_free(l);

	inet_pton(AF_INET, "192.0.2.7", &v4.sin_addr);
	inet_pton(AF_INET6, "::ffff:192.0.2.7", &v6.sin6_addr);
	CHECK(connlimit_addr((struct sockaddr *)&v4, sizeof(v4), a) == 0 &&
		      connlimit_addr((struct sockaddr *)&v6, sizeof(v6), m) == 0 && memcmp(a, m, sizeof(a)) == 0,
	      "192.0.2.7 and ::ffff:192.0.2.7 are one address");
	inet_pton(AF_INET6, "2001:db8::7", &v6.sin6_addr);
	CHECK(connlimit_addr((struct sockaddr *)&v6, sizeof(v6), b) == 0 && memcmp(a, b, sizeof(a)) != 0,
	      "2001:db8::7 is another");
	CHECK(connlimit_addr((struct sockaddr *)&v4, sizeof(v4) - 1, a) == -EAFNOSUPPORT,
	      "a short address is refused");

	/* Many addresses, opened and closed in a scrambled order, against a plain count per address. */
	CHECK(connlimit_new(64, 3, &l) == 0, "a table of 128 slots");
	for (uint32_t step = 0, r = 1; step < 1000000; step++) {
		uint32_t n;

		r = r * 1103515245u + 12345u;
		n = (r >> 16) & 255;

		key(n, a);
		if ((r >> 8) % 3 != 2) {
			if (connlimit_open(l) < 0) {
				exact &= sum == 64;
				continue;
			}
			if (connlimit_attach(l, a) == 0) {
				exact &= count[n] < 3;
				count[n]++;
				sum++;
			} else {
				/* Refused: the server closes it, unattached. */
				exact &= count[n] == 3;
				connlimit_close(l, NULL);
			}
		} else if (count[n]) {
			connlimit_close(l, a);
			count[n]--;
			sum--;
		}
	}
	for (uint32_t n = 0; n < 256; n++) {
		key(n, a);
		exact &= connlimit_of(l, a) == count[n];
	}
	exact &= connlimit_total(l) == sum;
	CHECK(exact, "every address's count and the total are exact after 1000000 opens and closes");
	connlimit_free(l);
	return TAP_DONE();
}
