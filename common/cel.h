/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcr.h"
#include "replay.h"

/*
 * Userspace measurement logs in the TCG Canonical Event Log JSON form, the way systemd
 * writes /run/log/systemd/tpm2-measure.log: RFC 7464 JSON text sequences (each record is
 * RS, a JSON object, LF), each record {"pcr":N,"digests":[{"hashAlg":"sha256","digest":
 * "HEX"},...],"content_type":"systemd","content":{"string":...,"bootId":...,"timestamp":
 * ...,"eventType":...}}. Like systemd, no "recnum" is written (it would need the firmware
 * log to number); one given is read. Pure code: parses and formats buffers, no I/O.
 */

#define CEL_ERROR_MAX 256
#define CEL_RECORD_MAX 65536 /* bytes of one JSON record */
#define CEL_BOOT_ID_SIZE 33  /* 32 hex digits, NUL */

struct cel_digest {
	const struct pcr_bank *bank;
	uint8_t value[PCR_DIGEST_MAX];
};

struct cel_record {
	size_t offset; /* of the record in its file */
	unsigned file; /* which cel_parse call it came from */
	unsigned pcr;
	unsigned n_digests;
	struct cel_digest digests[PCR_BANKS];
	char *content_type; /* NULL if absent, as are the content fields below */
	char *string;
	char *event_type;
	char boot_id[CEL_BOOT_ID_SIZE]; /* "" if absent or not 32 hex digits */
	bool has_timestamp;
	uint64_t timestamp; /* CLOCK_BOOTTIME, microseconds */
};

struct cel {
	size_t n_records, n_alloc;
	struct cel_record *records;
};

/*
 * Appends the records of one log (text of size bytes, tagged with file) to c. On failure
 * returns -EBADMSG (or -ENOMEM), writes "offset N: record M: reason" to err (CEL_ERROR_MAX
 * bytes) and leaves c as it was.
 */
int cel_parse(struct cel *c, unsigned file, const char *text, size_t size, char *err);
void cel_done(struct cel *c);

/* Orders records from several logs by content.timestamp if every record has one (stable). */
void cel_sort(struct cel *c);

/*
 * Extends r with every record, in order, in the banks r computes; a bank a record has no digest
 * for becomes unknown.
 */
int cel_replay(const struct cel *c, struct pcr_replay *r);

/*
 * One record as systemd writes it: RS, JSON, LF. event_type may be NULL; boot_id is 32 hex
 * digits. *ret is malloc'ed and NUL-terminated.
 */
int cel_format(unsigned pcr, const struct cel_digest *digests, unsigned n, const char *string,
	       const char *event_type, const char *boot_id, uint64_t timestamp, char **ret);
