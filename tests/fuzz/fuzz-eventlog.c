/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * eventlog_parse on arbitrary bytes: a firmware log is untrusted input (and a verifier gets it
 * from the network). Besides "no crash": a refusal names an offset; an accepted log is a
 * gapless sequence of events covering every byte but trailing zero padding, each inside the
 * buffer, only EV_NO_ACTION outside PCRs 0-23, and every event can be described. Replayed in
 * one bank alone (as the server replays the quoted bank; the input picks which), the same log
 * parses or is refused the same way (this OpenSSL hashes every bank), with the same events and
 * that bank's values, and every PCR extended in another bank unknown there.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "eventlog.h"

static void must(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Field by field: the structs' padding is not part of what the parser says. */
static int same_event(const struct eventlog_event *a, const struct eventlog_event *b)
{
	if (a->offset != b->offset || a->pcr != b->pcr || a->type != b->type || a->n_digests != b->n_digests ||
	    a->data_offset != b->data_offset || a->data_size != b->data_size)
		return 0;
	for (unsigned i = 0; i < a->n_digests; i++)
		if (a->digests[i].bank != b->digests[i].bank || a->digests[i].offset != b->digests[i].offset)
			return 0;
	return 1;
}

/* One bank per input, picked by the input: a parse per bank would slow the fuzzer fivefold. */
static void one_bank_alike(const uint8_t *data, size_t size, int r, const struct eventlog *all, const char *err)
{
	size_t b = size ? data[size / 2] % PCR_BANKS : 0;
	char err1[EVENTLOG_ERROR_MAX];
	struct eventlog *one = NULL;
	int r1 = eventlog_parse_banks(data, size, 1u << b, &one, err1);

	must(r1 == r);
	if (r1 < 0) {
		must(!one && strcmp(err, err1) == 0);
		return;
	}
	must(one->n_events == all->n_events && one->replay.banks == 1u << b &&
	     memcmp(one->replay.values[b], all->replay.values[b], sizeof(all->replay.values[b])) == 0 &&
	     one->replay.unknown[b] == all->replay.unknown[b]);
	for (size_t i = 0; i < all->n_events; i++)
		must(same_event(&one->events[i], &all->events[i]));
	for (size_t c = 0; c < PCR_BANKS; c++)
		must(one->replay.extended[c] == all->replay.extended[c] &&
		     (c == b || one->replay.unknown[c] == one->replay.extended[c]));
	eventlog_free(one);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[EVENTLOG_ERROR_MAX], desc[512];
	struct eventlog *log = NULL;
	size_t end = 0;
	int r;

	r = eventlog_parse(data, size, &log, err);
	one_bank_alike(data, size, r, log, err);
	if (r < 0) {
		must(r == -EBADMSG && !log && strncmp(err, "offset ", 7) == 0 && memchr(err, 0, sizeof(err)));
		return 0;
	}
	must(log->n_events > 0 && log->banks != 0 && log->n_algs > 0 && log->n_algs <= EVENTLOG_ALGS_MAX);
	for (size_t i = 0; i < log->n_events; i++) {
		const struct eventlog_event *e = &log->events[i];

		must(e->offset == end && (e->pcr < PCR_COUNT || e->type == EV_NO_ACTION) && e->data_offset <= size &&
		     e->data_size <= size - e->data_offset && e->n_digests <= PCR_BANKS);
		for (unsigned j = 0; j < e->n_digests; j++)
			must(e->digests[j].bank && e->digests[j].offset + e->digests[j].bank->size <= e->data_offset);
		end = e->data_offset + e->data_size;
		eventlog_describe(log, e, desc, sizeof(desc));
		must(strlen(desc) < sizeof(desc));
		for (const char *p = desc; *p; p++)
			must(*p >= 0x20 && *p < 0x7f);
	}
	must(end + log->padding == size);
	for (size_t i = end; i < size; i++)
		must(data[i] == 0);
	for (size_t b = 0; b < PCR_BANKS; b++)
		must((log->replay.unknown[b] & ~log->replay.extended[b]) == 0);
	eventlog_free(log);
	return 0;
}
