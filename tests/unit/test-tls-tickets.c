/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * server/tls-tickets.c: the key of new tickets is replaced every period; a ticket under the
 * key before is still accepted (to be renewed) for one more period, then refused; a name no
 * key of this instance has, or another instance's, is refused; after a long idle gap neither
 * old key is kept. Each check's twin is the same name a moment before its key's end.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../server/tls-tickets.c"
#include "tap.h"

int main(void)
{
	struct tls_tickets *t = NULL, *other = NULL;
	const uint8_t *name, *aes, *hmac, *aes2, *hmac2, *n2;
	uint8_t first[16], second[16], first_aes[32];

	CHECK(tls_tickets_new(0, 1000, &t) == -EINVAL, "a period of 0 is refused");
	CHECK(tls_tickets_new(10, 1000, &t) == 0 && tls_tickets_new(10, 1000, &other) == 0, "two instances");
	tls_tickets_current(t, 1000, &name, &aes, &hmac);
	CHECK(name && aes == name + 16 && hmac == aes + 32, "a current key: name, AES key, HMAC key");
	memcpy(first, name, 16);
	memcpy(first_aes, aes, 32);
	CHECK(tls_tickets_find(t, 1005, first, &aes2, &hmac2) == 1 && memcmp(aes2, first_aes, 32) == 0,
	      "its tickets are accepted under the same keys within the period");
	tls_tickets_current(other, 1000, &n2, &aes2, &hmac2);
	CHECK(memcmp(n2, first, 16) != 0 && memcmp(aes2, first_aes, 32) != 0, "another instance has other keys");
	CHECK(tls_tickets_find(other, 1005, first, &aes2, &hmac2) == 0, "and refuses this one's tickets");
	tls_tickets_current(t, 1009, &name, &aes, &hmac);
	CHECK(memcmp(name, first, 16) == 0, "9 s on: still the first key for new tickets");
	tls_tickets_current(t, 1010, &name, &aes, &hmac);
	CHECK(memcmp(name, first, 16) != 0, "10 s on: new tickets under a new key");
	memcpy(second, name, 16);
	CHECK(tls_tickets_find(t, 1010, second, &aes2, &hmac2) == 1, "the new key's tickets are current");
	CHECK(tls_tickets_find(t, 1019, first, &aes2, &hmac2) == 2 && memcmp(aes2, first_aes, 32) == 0,
	      "the first key's tickets: accepted for renewal until 19 s");
	CHECK(tls_tickets_find(t, 1020, first, &aes2, &hmac2) == 0, "and refused at 20 s (two periods)");
	CHECK(tls_tickets_find(t, 1020, second, &aes2, &hmac2) == 2, "the second key is now the previous one");
	tls_tickets_current(t, 1020, &name, &aes, &hmac);
	CHECK(memcmp(name, second, 16) != 0 && memcmp(name, first, 16) != 0, "and a third encrypts");
	CHECK(tls_tickets_find(t, 1029, second, &aes2, &hmac2) == 2, "the second: accepted until 29 s");
	CHECK(tls_tickets_find(t, 1100, second, &aes2, &hmac2) == 0, "after a long idle gap: refused");
	tls_tickets_current(t, 1100, &name, &aes, &hmac);
	CHECK(name && memcmp(name, second, 16) != 0, "and new tickets get a fresh key");
	tls_tickets_free(t);
	tls_tickets_free(other);
	return TAP_DONE();
}
