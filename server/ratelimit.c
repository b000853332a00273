/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

#include "ratelimit.h"

struct bucket {
	char addr[48];       /* "" : free */
	double tokens;
	int64_t seen_us;     /* last request: refill clock and LRU age */
	int64_t reported_us; /* last refusal reported */
	uint64_t refused;    /* refusals since then */
};

struct ratelimit {
	double rate, burst;
	uint64_t key[2];
	struct bucket b[RATELIMIT_SLOTS];
};

int ratelimit_new(double rate, double burst, struct ratelimit **ret)
{
	struct ratelimit *l;

	if (rate <= 0) {
		*ret = NULL;
		return 0;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	/* Keyed, so nobody can pick addresses that all land in one set. */
	if (RAND_bytes((unsigned char *)l->key, sizeof(l->key)) != 1) {
		free(l);
		return -EIO;
	}
	l->rate = rate;
	l->burst = burst < 1 ? 1 : burst;
	*ret = l;
	return 0;
}

void ratelimit_free(struct ratelimit *l)
{
	free(l);
}

/* FNV-1a over the key and the address: enough to spread sets, the key keeps it unguessable. */
static uint64_t hash(const struct ratelimit *l, const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ l->key[0];

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	h ^= l->key[1];
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	return h ^ (h >> 33);
}

static struct bucket *lookup(struct ratelimit *l, const char *addr, int64_t now_us)
{
	struct bucket *set = l->b + (hash(l, addr) % (RATELIMIT_SLOTS / RATELIMIT_WAYS)) * RATELIMIT_WAYS;
	struct bucket *victim = NULL;

	for (int i = 0; i < RATELIMIT_WAYS; i++) {
		struct bucket *b = set + i;

		if (b->addr[0] && strncmp(b->addr, addr, sizeof(b->addr)) == 0)
			return b;
		/* A free entry first, else the least recently seen. */
		if (!victim || (victim->addr[0] && (!b->addr[0] || b->seen_us < victim->seen_us)))
			victim = b;
	}
	*victim = (struct bucket){ .tokens = l->burst, .seen_us = now_us };
	snprintf(victim->addr, sizeof(victim->addr), "%s", addr);
	return victim;
}

void ratelimit_take(struct ratelimit *l, const char *addr, int64_t now_us, struct ratelimit_verdict *ret)
{
	struct bucket *b;
	double wait;

	*ret = (struct ratelimit_verdict){ .allowed = true };
	if (!l)
		return;
	b = lookup(l, addr, now_us);
	if (now_us > b->seen_us) {
		b->tokens += (double)(now_us - b->seen_us) * l->rate / 1e6;
		if (b->tokens > l->burst)
			b->tokens = l->burst;
	}
	b->seen_us = now_us;
	if (b->tokens >= 1) {
		b->tokens -= 1;
		return;
	}
	b->refused++;
	wait = (1 - b->tokens) / l->rate;
	*ret = (struct ratelimit_verdict){
		.retry_after = (int64_t)wait < wait ? (int64_t)wait + 1 : (int64_t)wait, /* whole seconds, rounded up */
		.refused = b->refused,
	};
	if (ret->retry_after < 1)
		ret->retry_after = 1;
	if (now_us - b->reported_us >= 1000000) {
		ret->report = true;
		b->reported_us = now_us;
		b->refused = 0;
	}
}
