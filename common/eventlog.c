/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventlog.h"
#include "unaligned.h"

#define LEGACY_HEADER 32u /* pcrIndex, eventType, SHA-1 digest, eventDataSize */
#define AGILE_HEADER 12u  /* pcrIndex, eventType, digest count */
#define SIGNATURE_SIZE 16u
#define SPEC_ID_SIGNATURE "Spec ID Event03"
#define SPEC_ID_FIXED 28u /* signature, platformClass, 4 version bytes, numberOfAlgorithms */
#define STARTUP_LOCALITY_SIGNATURE "StartupLocality"
#define UEFI_VARIABLE_HEADER 32u /* GUID, UnicodeNameLength, VariableDataLength */
#define FIRMWARE_BLOB_SIZE 16u   /* base, length */
#define HCRTM_DATA "HCRTM"

struct parser {
	struct eventlog *log;
	char *err;
	bool pcr0_extended;
	bool locality_seen;
	struct pcr_hashes hashes; /* the replay's, fetched once for all its events */
};

/* Whether n bytes starting at off lie within size, without overflowing. */
static bool fits(size_t size, size_t off, uint64_t n)
{
	return off <= size && n <= size - off;
}

static _printf_(3, 4) int fail(struct parser *ps, size_t offset, const char *fmt, ...)
{
	va_list ap;
	int k;

	k = snprintf(ps->err, EVENTLOG_ERROR_MAX, "offset %zu: event %zu: ", offset, ps->log->n_events);
	if (k < 0 || k >= (int)EVENTLOG_ERROR_MAX)
		return -EBADMSG;
	va_start(ap, fmt);
	(void)vsnprintf(ps->err + k, EVENTLOG_ERROR_MAX - (size_t)k, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static bool has_signature(const struct eventlog *log, const struct eventlog_event *e, const char *s)
{
	/* The signature is 16 bytes including its NUL. */
	return e->data_size >= SIGNATURE_SIZE &&
	       memcmp(log->data + e->data_offset, s, strlen(s) + 1) == 0;
}

static int check_pcr(struct parser *ps, size_t off, uint32_t pcr, uint32_t type)
{
	/*
	 * EV_NO_ACTION is never extended (PFP 10.4.3), so its index names no PCR: Windows' boot
	 * manager writes 0xFFFFFFFF there. The events whose meaning depends on it check it.
	 */
	if (type == EV_NO_ACTION)
		return 0;
	if (pcr >= PCR_COUNT)
		return fail(ps, off, "PCR index %" PRIu32 " is out of range (0-23)", pcr);
	/* PCRs 17-22 belong to dynamic launch: firmware at locality 0 cannot extend them. */
	if (pcr >= 17 && pcr <= 22)
		return fail(ps, off, "PCR %" PRIu32 " is a dynamic-launch PCR, which firmware cannot extend", pcr);
	return 0;
}

static int append_event(struct parser *ps, const struct eventlog_event *e)
{
	struct eventlog *log = ps->log;

	if (log->n_events == log->n_alloc) {
		/* Bounded by the log: every event takes at least LEGACY_HEADER bytes of it. */
		size_t n = log->n_alloc ? 2 * log->n_alloc : 64;
		struct eventlog_event *p = reallocarray(log->events, n, sizeof(*p));

		if (!p)
			return -ENOMEM;
		log->events = p;
		log->n_alloc = n;
	}
	log->events[log->n_events++] = *e;
	return 0;
}

static int check_no_action(struct parser *ps, const struct eventlog_event *e)
{
	const struct eventlog *log = ps->log;
	uint8_t locality;

	/* A legacy log may open with a TPM 1.2 "Spec ID Event00"; no other place fits one. */
	if (e->data_size >= 13 && memcmp(log->data + e->data_offset, "Spec ID Event", 13) == 0 &&
	    !(log->n_events == 0 && !log->agile))
		return fail(ps, e->offset, "a Spec ID event may only be the first event");
	if (!has_signature(log, e, STARTUP_LOCALITY_SIGNATURE))
		return 0;
	if (e->pcr != 0)
		return fail(ps, e->offset, "StartupLocality event on PCR %" PRIu32 ", not 0", e->pcr);
	if (e->data_size != SIGNATURE_SIZE + 1)
		return fail(ps, e->offset, "StartupLocality event has %" PRIu32 " bytes of data, not 17",
			    e->data_size);
	if (ps->locality_seen)
		return fail(ps, e->offset, "a second StartupLocality event");
	if (ps->pcr0_extended)
		return fail(ps, e->offset, "StartupLocality event after PCR 0 was extended");
	locality = log->data[e->data_offset + SIGNATURE_SIZE];
	if (locality != 0 && locality != 3 && locality != 4)
		return fail(ps, e->offset, "StartupLocality %u is not 0, 3 or 4", locality);
	ps->locality_seen = true;
	ps->log->locality = locality;
	pcr_replay_set_locality(&ps->log->replay, locality);
	return 0;
}

static int check_hcrtm(struct parser *ps, const struct eventlog_event *e)
{
	if (e->data_size != strlen(HCRTM_DATA) ||
	    memcmp(ps->log->data + e->data_offset, HCRTM_DATA, strlen(HCRTM_DATA)) != 0)
		return fail(ps, e->offset, "H-CRTM event data is not \"HCRTM\"");
	if (e->pcr != 0)
		return 0;
	/* The H-CRTM measures at locality 4 before the TPM resets PCR 0 to 0...04 (Part 1, 34.3). */
	if (ps->pcr0_extended)
		return fail(ps, e->offset, "H-CRTM event after PCR 0 was extended");
	if (ps->locality_seen && ps->log->locality != 4)
		return fail(ps, e->offset, "H-CRTM event contradicts StartupLocality %u", ps->log->locality);
	ps->locality_seen = true;
	ps->log->locality = 4;
	pcr_replay_set_locality(&ps->log->replay, 4);
	return 0;
}

/* The layouts the spec fixes and eventlog_describe relies on; the rest is opaque bytes. */
static int check_data(struct parser *ps, const struct eventlog_event *e)
{
	const uint8_t *d = ps->log->data + e->data_offset;
	uint64_t name_len, var_len, uintn = ps->log->uintn_size == 1 ? 4 : 8;

	switch (e->type) {
	case EV_NO_ACTION:
		return check_no_action(ps, e);
	case EV_EFI_HCRTM_EVENT:
		return check_hcrtm(ps, e);
	case EV_EFI_VARIABLE_DRIVER_CONFIG:
	case EV_EFI_VARIABLE_BOOT:
	case EV_EFI_VARIABLE_BOOT2:
	case EV_EFI_VARIABLE_AUTHORITY:
		if (e->data_size < UEFI_VARIABLE_HEADER)
			return fail(ps, e->offset, "UEFI variable event has %" PRIu32 " bytes of data, "
				    "less than its 32-byte header", e->data_size);
		name_len = le64(d + 16);
		var_len = le64(d + 24);
		if (name_len > (e->data_size - UEFI_VARIABLE_HEADER) / 2 ||
		    var_len > e->data_size - UEFI_VARIABLE_HEADER - 2 * name_len)
			return fail(ps, e->offset, "UEFI variable name (%" PRIu64 " characters) and data (%"
				    PRIu64 " bytes) overrun the event's %" PRIu32 " bytes",
				    name_len, var_len, e->data_size);
		return 0;
	case EV_EFI_BOOT_SERVICES_APPLICATION:
	case EV_EFI_BOOT_SERVICES_DRIVER:
	case EV_EFI_RUNTIME_SERVICES_DRIVER:
		if (e->data_size < 8 + 3 * uintn)
			return fail(ps, e->offset, "UEFI image load event has %" PRIu32 " bytes of data, "
				    "less than its %" PRIu64 "-byte header", e->data_size, 8 + 3 * uintn);
		return 0;
	case EV_S_CRTM_CONTENTS:
	case EV_EFI_PLATFORM_FIRMWARE_BLOB:
		if (e->data_size < FIRMWARE_BLOB_SIZE)
			return fail(ps, e->offset, "firmware blob event has %" PRIu32 " bytes of data, not 16",
				    e->data_size);
		return 0;
	default:
		return 0;
	}
}

static int record_event(struct parser *ps, const struct eventlog_event *e)
{
	struct eventlog *log = ps->log;
	const struct pcr_bank *banks[PCR_BANKS], *bad = NULL;
	const uint8_t *digests[PCR_BANKS];
	int r;

	r = check_data(ps, e);
	if (r < 0)
		return r;
	r = append_event(ps, e);
	if (r < 0)
		return r;
	if (e->type == EV_NO_ACTION)
		return 0;
	for (unsigned i = 0; i < e->n_digests; i++) {
		banks[i] = e->digests[i].bank;
		digests[i] = log->data + e->digests[i].offset;
	}
	r = pcr_replay_event(&log->replay, &ps->hashes, e->pcr, e->offset, e->n_digests, banks, digests, &bad);
	if (r < 0)
		return fail(ps, e->offset, "cannot compute %s: %s", bad->name, strerror(-r));
	if (e->pcr == 0)
		ps->pcr0_extended = true;
	return 0;
}

static int parse_legacy_event(struct parser *ps, size_t off, size_t *ret_next)
{
	const uint8_t *p = ps->log->data + off;
	size_t size = ps->log->size;
	struct eventlog_event e = { .offset = off };
	int r;

	if (!fits(size, off, LEGACY_HEADER))
		return fail(ps, off, "truncated event header (%zu bytes left, %u needed)", size - off,
			    LEGACY_HEADER);
	e.pcr = le32(p);
	e.type = le32(p + 4);
	e.n_digests = 1;
	e.digests[0] = (struct eventlog_digest){ pcr_bank_by_alg(TPM2_ALG_SHA1), off + 8 };
	e.data_size = le32(p + 28);
	e.data_offset = off + LEGACY_HEADER;
	r = check_pcr(ps, off, e.pcr, e.type);
	if (r < 0)
		return r;
	if (!fits(size, e.data_offset, e.data_size))
		return fail(ps, off, "event size %" PRIu32 " runs past end of log (%zu bytes)", e.data_size,
			    size);
	*ret_next = e.data_offset + e.data_size;
	return record_event(ps, &e);
}

/* "sha256", or "0x0027" for an algorithm keystrap has no bank for. */
static const char *alg_name(uint16_t id, const struct pcr_bank *bank, char buf[static 8])
{
	if (bank)
		return bank->name;
	snprintf(buf, 8, "0x%04x", id);
	return buf;
}

static int declared_alg(const struct eventlog *log, uint16_t id)
{
	for (unsigned i = 0; i < log->n_algs; i++)
		if (log->algs[i].id == id)
			return (int)i;
	return -1;
}

/*
 * Where the log's trailing run of zero bytes starts. A log copied from a fixed-size area (the
 * ACPI TPM2/TCPA table's, a firmware buffer) ends in zeros; the kernel's reader stops at the
 * first event of type 0 and size 0, so such zeros are no event (EV_PREBOOT_CERT is unused).
 */
static size_t zero_tail(const struct eventlog *log)
{
	size_t n = log->size;

	while (n > 0 && log->data[n - 1] == 0)
		n--;
	return n;
}

static int parse_agile_event(struct parser *ps, size_t off, size_t *ret_next)
{
	const uint8_t *d = ps->log->data;
	size_t size = ps->log->size, o;
	struct eventlog_event e = { .offset = off };
	uint32_t count, seen = 0;
	int r;

	if (!fits(size, off, AGILE_HEADER))
		return fail(ps, off, "truncated event header (%zu bytes left, at least %u needed)",
			    size - off, AGILE_HEADER);
	e.pcr = le32(d + off);
	e.type = le32(d + off + 4);
	count = le32(d + off + 8);
	r = check_pcr(ps, off, e.pcr, e.type);
	if (r < 0)
		return r;
	if (count == 0)
		return fail(ps, off, "event has no digests");
	if (count > ps->log->n_algs)
		return fail(ps, off, "digest count %" PRIu32 " exceeds the %u algorithms the Spec ID "
			    "event declares", count, ps->log->n_algs);
	o = off + AGILE_HEADER;
	for (unsigned i = 0; i < count; i++) {
		const struct eventlog_alg *a;
		char name[8];
		int k;

		if (!fits(size, o, 2))
			return fail(ps, off, "digest %u runs past end of log (%zu bytes)", i, size);
		k = declared_alg(ps->log, le16(d + o));
		if (k < 0)
			return fail(ps, off, "digest %u: algorithm 0x%04x is not one the Spec ID event "
				    "declares", i, le16(d + o));
		a = &ps->log->algs[k];
		if (seen & (1u << k))
			return fail(ps, off, "digest %u: a second %s digest", i, alg_name(a->id, a->bank, name));
		seen |= 1u << k;
		if (!fits(size, o + 2, a->size))
			return fail(ps, off, "digest %u (%s) runs past end of log (%zu bytes)", i,
				    alg_name(a->id, a->bank, name), size);
		/* The declared size steps over a digest keystrap cannot replay. */
		if (a->bank)
			e.digests[e.n_digests++] = (struct eventlog_digest){ a->bank, o + 2 };
		o += 2 + a->size;
	}
	if (!fits(size, o, 4))
		return fail(ps, off, "event size field runs past end of log (%zu bytes)", size);
	e.data_size = le32(d + o);
	e.data_offset = o + 4;
	if (!fits(size, e.data_offset, e.data_size))
		return fail(ps, off, "event size %" PRIu32 " runs past end of log (%zu bytes)", e.data_size,
			    size);
	*ret_next = e.data_offset + e.data_size;
	return record_event(ps, &e);
}

/* TCG_EfiSpecIDEvent: which banks every following event carries, and their digest sizes. */
static int parse_spec_id(struct parser *ps, const struct eventlog_event *e)
{
	struct eventlog *log = ps->log;
	const uint8_t *d = log->data + e->data_offset;
	uint32_t n, vendor;
	size_t need;

	if (e->pcr != 0 || e->type != EV_NO_ACTION)
		return fail(ps, 0, "the Spec ID event must be EV_NO_ACTION on PCR 0");
	for (unsigned i = 0; i < 20; i++)
		if (log->data[8 + i] != 0)
			return fail(ps, 0, "the Spec ID event's digest is not zero");
	if (e->data_size < SPEC_ID_FIXED)
		return fail(ps, 0, "Spec ID event has %" PRIu32 " bytes of data, less than its %u-byte "
			    "header", e->data_size, SPEC_ID_FIXED);
	log->uintn_size = d[23];
	n = le32(d + 24);
	if (n == 0)
		return fail(ps, 0, "the Spec ID event declares no algorithms");
	if (n > EVENTLOG_ALGS_MAX)
		return fail(ps, 0, "the Spec ID event declares %" PRIu32 " algorithms; at most %u are "
			    "accepted", n, EVENTLOG_ALGS_MAX);
	need = SPEC_ID_FIXED + 4 * (size_t)n + 1;
	if (e->data_size < need)
		return fail(ps, 0, "Spec ID event has %" PRIu32 " bytes of data, too few for %" PRIu32
			    " algorithms", e->data_size, n);
	for (uint32_t i = 0; i < n; i++) {
		uint16_t alg = le16(d + SPEC_ID_FIXED + 4 * i), size = le16(d + SPEC_ID_FIXED + 4 * i + 2);
		const struct pcr_bank *bank = pcr_bank_by_alg(alg);
		char name[8];

		if (declared_alg(log, alg) >= 0)
			return fail(ps, 0, "the Spec ID event declares %s twice", alg_name(alg, bank, name));
		/*
		 * An algorithm keystrap has no bank for (SHA3 on a newer TPM) is declared with its
		 * digest size so that a parser can step over its digests; it is not replayed.
		 */
		if (!bank && (size == 0 || size > PCR_DIGEST_MAX))
			return fail(ps, 0, "the Spec ID event gives algorithm 0x%04x a digest size of %u "
				    "(1-%u)", alg, size, PCR_DIGEST_MAX);
		if (bank && size != bank->size)
			return fail(ps, 0, "the Spec ID event gives %s a digest size of %u, not %u",
				    bank->name, size, bank->size);
		log->algs[log->n_algs++] = (struct eventlog_alg){ alg, size, bank };
		if (bank)
			log->banks |= 1u << pcr_bank_index(bank);
	}
	if (log->banks == 0)
		return fail(ps, 0, "the Spec ID event declares no algorithm keystrap can replay");
	vendor = d[need - 1];
	if (e->data_size != need + vendor)
		return fail(ps, 0, "Spec ID event size %" PRIu32 " disagrees with its contents (%zu bytes)",
			    e->data_size, need + vendor);
	return append_event(ps, e);
}

static bool is_spec_id(const struct eventlog *log)
{
	return log->size >= LEGACY_HEADER + SIGNATURE_SIZE &&
	       memcmp(log->data + LEGACY_HEADER, SPEC_ID_SIGNATURE, sizeof(SPEC_ID_SIGNATURE)) == 0;
}

/* Whether the log opens with what looks like a TCG_PCR_EVENT2, i.e. lost its Spec ID event. */
static bool looks_agile(const struct eventlog *log)
{
	const uint8_t *d = log->data;
	uint32_t count;
	size_t o = AGILE_HEADER;

	if (log->size < AGILE_HEADER)
		return false;
	count = le32(d + 8);
	if (count == 0 || count > PCR_BANKS)
		return false;
	for (uint32_t i = 0; i < count; i++) {
		const struct pcr_bank *bank;

		if (!fits(log->size, o, 2) || !(bank = pcr_bank_by_alg(le16(d + o))))
			return false;
		o += 2 + bank->size;
	}
	return fits(log->size, o, 4) && fits(log->size, o + 4, le32(d + o));
}

static void parser_done(struct parser *ps)
{
	pcr_hashes_done(&ps->hashes);
}

int eventlog_parse(const uint8_t *data, size_t size, struct eventlog **ret, char *err)
{
	return eventlog_parse_banks(data, size, PCR_BANKS_ALL, ret, err);
}

int eventlog_parse_banks(const uint8_t *data, size_t size, uint32_t banks, struct eventlog **ret, char *err)
{
	_cleanup_eventlog_ struct eventlog *log = calloc(1, sizeof(*log));
	_cleanup_(parser_done) struct parser ps = { .log = log, .err = err };
	size_t off = 0, next = 0, zeros;
	int r;

	err[0] = 0;
	if (!log)
		return -ENOMEM;
	log->data = data;
	log->size = size;
	pcr_replay_init(&log->replay, banks, 0);
	if (size == 0)
		return fail(&ps, 0, "the log is empty");
	zeros = zero_tail(log);
	if (zeros == 0)
		return fail(&ps, 0, "the log is empty (%zu zero bytes)", size);

	if (is_spec_id(log)) {
		struct eventlog_event e = {
			.pcr = le32(data),
			.type = le32(data + 4),
			.n_digests = 1,
			.digests[0] = { pcr_bank_by_alg(TPM2_ALG_SHA1), 8 },
			.data_size = le32(data + 28),
			.data_offset = LEGACY_HEADER,
		};

		if (!fits(size, LEGACY_HEADER, e.data_size))
			return fail(&ps, 0, "event size %" PRIu32 " runs past end of log (%zu bytes)",
				    e.data_size, size);
		r = parse_spec_id(&ps, &e);
		if (r < 0)
			return r;
		log->agile = true;
		for (off = LEGACY_HEADER + e.data_size; off < zeros; off = next) {
			r = parse_agile_event(&ps, off, &next);
			if (r < 0)
				return r;
		}
	} else {
		log->algs[0] = (struct eventlog_alg){ TPM2_ALG_SHA1, 20, pcr_bank_by_alg(TPM2_ALG_SHA1) };
		log->n_algs = 1;
		log->banks = 1u << pcr_bank_index(log->algs[0].bank);
		for (off = 0; off < zeros; off = next) {
			r = parse_legacy_event(&ps, off, &next);
			if (r == -EBADMSG && log->n_events == 0 && looks_agile(log)) {
				snprintf(err, EVENTLOG_ERROR_MAX, "offset 0: event 0: crypto-agile events "
					 "without the Spec ID Event03 event that must come first");
				return r;
			}
			if (r < 0)
				return r;
		}
	}
	/* An event may end in zeros of its own: only what lies past the last event is padding. */
	log->padding = size - off;
	*ret = TAKE_PTR(log);
	return 0;
}

void eventlog_free(struct eventlog *log)
{
	if (!log)
		return;
	free(log->events);
	free(log);
}
