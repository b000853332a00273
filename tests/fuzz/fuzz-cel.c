/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cel_parse on arbitrary bytes: a verifier reads measurement logs it did not write. Besides
 * "no crash": a refusal names an offset and leaves nothing behind; every accepted record
 * replays, and formats back into a record that parses to the same PCR, digests and content.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cel.h"

static void must(int cond)
{
	if (!cond)
		abort();
}

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cel c = { 0 };
	struct pcr_replay r;
	char err[CEL_ERROR_MAX];
	int k;

	k = cel_parse(&c, 0, (const char *)data, size, err);
	if (k < 0) {
		must(k == -EBADMSG && c.n_records == 0 && strncmp(err, "offset ", 7) == 0 && memchr(err, 0, sizeof(err)));
		cel_done(&c);
		return 0;
	}
	pcr_replay_init(&r, PCR_BANKS_ALL, 0);
	must(cel_replay(&c, &r) == 0);
	for (size_t i = 0; i < c.n_records; i++) {
		const struct cel_record *a = &c.records[i];
		struct cel back = { 0 };
		char *rec = NULL;

		must(a->pcr < PCR_COUNT && a->n_digests >= 1 && a->n_digests <= PCR_BANKS && a->offset < size);
		if (!a->string)
			continue;
		must(cel_format(a->pcr, a->digests, a->n_digests, a->string, a->event_type, a->boot_id, a->timestamp,
				&rec) == 0);
		must(cel_parse(&back, 0, rec, strlen(rec), err) == 0 && back.n_records == 1);
		must(back.records[0].pcr == a->pcr && back.records[0].n_digests == a->n_digests &&
		     same(back.records[0].string, a->string) && same(back.records[0].event_type, a->event_type) &&
		     strcmp(back.records[0].boot_id, a->boot_id) == 0 && back.records[0].timestamp == a->timestamp);
		for (unsigned j = 0; j < a->n_digests; j++)
			must(back.records[0].digests[j].bank == a->digests[j].bank &&
			     memcmp(back.records[0].digests[j].value, a->digests[j].value, a->digests[j].bank->size) == 0);
		cel_done(&back);
		free(rec);
	}
	cel_sort(&c);
	cel_done(&c);
	return 0;
}
