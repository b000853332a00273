/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "pcr.h"
#include "replay.h"

/*
 * TCG PC Client firmware event logs (Platform Firmware Profile, section 10): the legacy
 * SHA-1 TCG_PCR_EVENT format, and the crypto-agile TCG_PCR_EVENT2 format announced by a
 * "Spec ID Event03" first event. Pure code: it parses a buffer the caller owns and replays
 * it in software; no I/O. Only digests feed the replay: event data is decoded for people
 * (eventlog_describe), never trusted.
 */

#define EV_PREBOOT_CERT 0x00000000u
#define EV_POST_CODE 0x00000001u
#define EV_NO_ACTION 0x00000003u
#define EV_SEPARATOR 0x00000004u
#define EV_ACTION 0x00000005u
#define EV_EVENT_TAG 0x00000006u
#define EV_S_CRTM_CONTENTS 0x00000007u
#define EV_S_CRTM_VERSION 0x00000008u
#define EV_CPU_MICROCODE 0x00000009u
#define EV_PLATFORM_CONFIG_FLAGS 0x0000000au
#define EV_TABLE_OF_DEVICES 0x0000000bu
#define EV_COMPACT_HASH 0x0000000cu
#define EV_IPL 0x0000000du
#define EV_IPL_PARTITION_DATA 0x0000000eu
#define EV_NONHOST_CODE 0x0000000fu
#define EV_NONHOST_CONFIG 0x00000010u
#define EV_NONHOST_INFO 0x00000011u
#define EV_OMIT_BOOT_DEVICE_EVENTS 0x00000012u
#define EV_EFI_VARIABLE_DRIVER_CONFIG 0x80000001u
#define EV_EFI_VARIABLE_BOOT 0x80000002u
#define EV_EFI_BOOT_SERVICES_APPLICATION 0x80000003u
#define EV_EFI_BOOT_SERVICES_DRIVER 0x80000004u
#define EV_EFI_RUNTIME_SERVICES_DRIVER 0x80000005u
#define EV_EFI_GPT_EVENT 0x80000006u
#define EV_EFI_ACTION 0x80000007u
#define EV_EFI_PLATFORM_FIRMWARE_BLOB 0x80000008u
#define EV_EFI_HANDOFF_TABLES 0x80000009u
#define EV_EFI_PLATFORM_FIRMWARE_BLOB2 0x8000000au
#define EV_EFI_HANDOFF_TABLES2 0x8000000bu
#define EV_EFI_VARIABLE_BOOT2 0x8000000cu
#define EV_EFI_HCRTM_EVENT 0x80000010u
#define EV_EFI_VARIABLE_AUTHORITY 0x800000e0u
#define EV_EFI_SPDM_FIRMWARE_BLOB 0x800000e1u
#define EV_EFI_SPDM_FIRMWARE_CONFIG 0x800000e2u

/* "offset 1234: event 17: ..." fits. */
#define EVENTLOG_ERROR_MAX 256
/* Hash algorithms a Spec ID event may declare, known to keystrap or not. */
#define EVENTLOG_ALGS_MAX 16

/* An algorithm the Spec ID event declares; bank is NULL for one keystrap cannot replay. */
struct eventlog_alg {
	uint16_t id;
	uint16_t size;
	const struct pcr_bank *bank;
};

struct eventlog_digest {
	const struct pcr_bank *bank;
	size_t offset; /* of the digest bytes in the log */
};

struct eventlog_event {
	size_t offset; /* of the event header */
	uint32_t pcr;  /* < PCR_COUNT unless the event is EV_NO_ACTION, which names no PCR */
	uint32_t type;
	unsigned n_digests; /* in banks keystrap replays; other algorithms' digests are skipped */
	struct eventlog_digest digests[PCR_BANKS];
	size_t data_offset;
	uint32_t data_size;
};

struct eventlog {
	const uint8_t *data; /* the caller's buffer; must outlive the eventlog */
	size_t size;
	bool agile;         /* crypto-agile (Spec ID Event03), else legacy SHA-1 */
	uint8_t uintn_size; /* Spec ID uintnSize: 1 = 32-bit UINTN, 2 = 64-bit (0 if unknown) */
	uint8_t locality;   /* PCR 0's startup locality (StartupLocality or H-CRTM event) */
	uint32_t banks;     /* bank indexes (pcr_bank_by_index) the log records */
	unsigned n_algs;    /* what the Spec ID event declares (the legacy format: sha1) */
	struct eventlog_alg algs[EVENTLOG_ALGS_MAX];
	size_t padding;     /* zero bytes after the last event (a fixed-size log area) */
	size_t n_events, n_alloc;
	struct eventlog_event *events;
	struct pcr_replay replay;
};

/*
 * Parses and replays a whole log, in every bank. On failure returns -EBADMSG (or -ENOMEM) and
 * writes "offset N: reason" to err (EVENTLOG_ERROR_MAX bytes).
 */
int eventlog_parse(const uint8_t *data, size_t size, struct eventlog **ret, char *err);
/*
 * The same, replaying only the banks in the mask banks (bank indexes; a verifier's: the bank
 * its quote covers): in the others every PCR an event extends is unknown (replay.h). The log is
 * checked as strictly either way; what differs is a bank this OpenSSL cannot hash (SM3 on a
 * build without it), which fails the parse only when it is replayed: its digests cannot be
 * verified against any quote, so they are carried (TCG PFP: an event has every active bank's
 * digest) but not computed.
 */
int eventlog_parse_banks(const uint8_t *data, size_t size, uint32_t banks, struct eventlog **ret, char *err);
void eventlog_free(struct eventlog *log);
static inline void eventlog_freep(struct eventlog **log)
{
	eventlog_free(*log);
}
#define _cleanup_eventlog_ _cleanup_(eventlog_freep)

/* "EV_SEPARATOR", or NULL for a type keystrap has no name for. */
const char *eventlog_type_name(uint32_t type);

/* A one-line, printable-ASCII description of what the event's data says (informational). */
void eventlog_describe(const struct eventlog *log, const struct eventlog_event *e, char *buf,
		       size_t size);
