/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

#include "connlimit.h"

struct entry {
	uint8_t addr[CONNLIMIT_ADDR_SIZE];
	uint32_t count; /* 0: free */
};

/* Open addressing with linear probing, at most half full: every open connection is at most
 * one address, and the table has twice as many slots as max_total. */
struct connlimit {
	size_t max_total, max_per_address, total, mask;
	uint64_t key[2];
	struct entry *e;
};

int connlimit_new(size_t max_total, size_t max_per_address, struct connlimit **ret)
{
	struct connlimit *l;
	size_t slots = 16;

	if (max_total == 0 || max_per_address == 0 || max_total > SIZE_MAX / 4 / sizeof(struct entry))
		return -EINVAL;
	while (slots < 2 * max_total)
		slots *= 2;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->e = calloc(slots, sizeof(*l->e));
	/* Keyed, so nobody can choose addresses that all probe the same run. */
	if (!l->e) {
		connlimit_free(l);
		return -ENOMEM;
	}
	if (RAND_bytes((unsigned char *)l->key, sizeof(l->key)) != 1) {
		connlimit_free(l);
		return -EIO;
	}
	l->max_total = max_total;
	l->max_per_address = max_per_address;
	l->mask = slots - 1;
	*ret = l;
	return 0;
}

void connlimit_free(struct connlimit *l)
{
	if (!l)
		return;
	free(l->e);
	free(l);
}

bool connlimit_full(const struct connlimit *l)
{
	return l->total >= l->max_total;
}

size_t connlimit_total(const struct connlimit *l)
{
	return l->total;
}

static size_t home(const struct connlimit *l, const uint8_t *addr)
{
	uint64_t a, b, h;

	memcpy(&a, addr, 8);
	memcpy(&b, addr + 8, 8);
	h = (a ^ l->key[0]) * 0x9e3779b97f4a7c15ULL;
	h = (h ^ (h >> 29) ^ b ^ l->key[1]) * 0xbf58476d1ce4e5b9ULL;
	return (size_t)(h ^ (h >> 32)) & l->mask;
}

/* The slot holding addr, or the free slot where it would go. */
static size_t find(const struct connlimit *l, const uint8_t *addr)
{
	size_t i = home(l, addr);

	while (l->e[i].count && memcmp(l->e[i].addr, addr, CONNLIMIT_ADDR_SIZE) != 0)
		i = (i + 1) & l->mask;
	return i;
}

size_t connlimit_of(const struct connlimit *l, const uint8_t addr[CONNLIMIT_ADDR_SIZE])
{
	return l->e[find(l, addr)].count;
}

int connlimit_open(struct connlimit *l)
{
	if (connlimit_full(l))
		return -EBUSY;
	l->total++;
	return 0;
}

int connlimit_attach(struct connlimit *l, const uint8_t addr[CONNLIMIT_ADDR_SIZE])
{
	struct entry *e = l->e + find(l, addr);

	if (e->count >= l->max_per_address)
		return -EBUSY;
	if (!e->count)
		memcpy(e->addr, addr, CONNLIMIT_ADDR_SIZE);
	e->count++;
	return 0;
}

/* Deletion without tombstones: later entries of the probe run move back into the hole, unless
 * their home lies cyclically in (hole, j], where they are still found. */
static void erase(struct connlimit *l, size_t hole)
{
	for (size_t j = (hole + 1) & l->mask; l->e[j].count; j = (j + 1) & l->mask) {
		size_t k = home(l, l->e[j].addr);

		if (hole <= j ? hole < k && k <= j : hole < k || k <= j)
			continue;
		l->e[hole] = l->e[j];
		hole = j;
	}
	l->e[hole].count = 0;
}

void connlimit_close(struct connlimit *l, const uint8_t *addr)
{
	if (l->total)
		l->total--;
	if (addr) {
		size_t i = find(l, addr);

		if (l->e[i].count && --l->e[i].count == 0)
			erase(l, i);
	}
}

int connlimit_addr(const struct sockaddr *sa, socklen_t len, uint8_t ret[CONNLIMIT_ADDR_SIZE])
{
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		memcpy(ret, &((const struct sockaddr_in6 *)sa)->sin6_addr, CONNLIMIT_ADDR_SIZE);
		return 0;
	}
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

		memcpy(ret, mapped, sizeof(mapped));
		memcpy(ret + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 0;
	}
	return -EAFNOSUPPORT;
}
