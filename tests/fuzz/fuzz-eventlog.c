/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * eventlog_parse on arbitrary bytes: a firmware log is untrusted input (and a verifier gets it
 * from the network). Besides "no crash": a refusal names an offset; an accepted log is a
 * gapless sequence of events covering every byte but trailing zero padding, each inside the
 * buffer, only EV_NO_ACTION outside PCRs 0-23, and every event can be described.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[EVENTLOG_ERROR_MAX], desc[512];
	struct eventlog *log = NULL;
	size_t end = 0;
	int r;

	r = eventlog_parse(data, size, &log, err);
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
