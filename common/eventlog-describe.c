/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Human-readable views of event data: informational only, nothing here feeds a decision. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "eventlog.h"
#include "unaligned.h"

#define DEVICE_PATH_MEDIA 0x04
#define DEVICE_PATH_FILE 0x04
#define DEVICE_PATH_END 0x7f
#define GPT_HEADER_SIZE 92u

static const struct {
	uint32_t type;
	const char *name;
} types[] = {
	{ EV_PREBOOT_CERT, "EV_PREBOOT_CERT" },
	{ EV_POST_CODE, "EV_POST_CODE" },
	{ 0x00000002, "EV_UNUSED" },
	{ EV_NO_ACTION, "EV_NO_ACTION" },
	{ EV_SEPARATOR, "EV_SEPARATOR" },
	{ EV_ACTION, "EV_ACTION" },
	{ EV_EVENT_TAG, "EV_EVENT_TAG" },
	{ EV_S_CRTM_CONTENTS, "EV_S_CRTM_CONTENTS" },
	{ EV_S_CRTM_VERSION, "EV_S_CRTM_VERSION" },
	{ EV_CPU_MICROCODE, "EV_CPU_MICROCODE" },
	{ EV_PLATFORM_CONFIG_FLAGS, "EV_PLATFORM_CONFIG_FLAGS" },
	{ EV_TABLE_OF_DEVICES, "EV_TABLE_OF_DEVICES" },
	{ EV_COMPACT_HASH, "EV_COMPACT_HASH" },
	{ EV_IPL, "EV_IPL" },
	{ EV_IPL_PARTITION_DATA, "EV_IPL_PARTITION_DATA" },
	{ EV_NONHOST_CODE, "EV_NONHOST_CODE" },
	{ EV_NONHOST_CONFIG, "EV_NONHOST_CONFIG" },
	{ EV_NONHOST_INFO, "EV_NONHOST_INFO" },
	{ EV_OMIT_BOOT_DEVICE_EVENTS, "EV_OMIT_BOOT_DEVICE_EVENTS" },
	{ EV_EFI_VARIABLE_DRIVER_CONFIG, "EV_EFI_VARIABLE_DRIVER_CONFIG" },
	{ EV_EFI_VARIABLE_BOOT, "EV_EFI_VARIABLE_BOOT" },
	{ EV_EFI_BOOT_SERVICES_APPLICATION, "EV_EFI_BOOT_SERVICES_APPLICATION" },
	{ EV_EFI_BOOT_SERVICES_DRIVER, "EV_EFI_BOOT_SERVICES_DRIVER" },
	{ EV_EFI_RUNTIME_SERVICES_DRIVER, "EV_EFI_RUNTIME_SERVICES_DRIVER" },
	{ EV_EFI_GPT_EVENT, "EV_EFI_GPT_EVENT" },
	{ EV_EFI_ACTION, "EV_EFI_ACTION" },
	{ EV_EFI_PLATFORM_FIRMWARE_BLOB, "EV_EFI_PLATFORM_FIRMWARE_BLOB" },
	{ EV_EFI_HANDOFF_TABLES, "EV_EFI_HANDOFF_TABLES" },
	{ EV_EFI_PLATFORM_FIRMWARE_BLOB2, "EV_EFI_PLATFORM_FIRMWARE_BLOB2" },
	{ EV_EFI_HANDOFF_TABLES2, "EV_EFI_HANDOFF_TABLES2" },
	{ EV_EFI_VARIABLE_BOOT2, "EV_EFI_VARIABLE_BOOT2" },
	{ EV_EFI_HCRTM_EVENT, "EV_EFI_HCRTM_EVENT" },
	{ EV_EFI_VARIABLE_AUTHORITY, "EV_EFI_VARIABLE_AUTHORITY" },
	{ EV_EFI_SPDM_FIRMWARE_BLOB, "EV_EFI_SPDM_FIRMWARE_BLOB" },
	{ EV_EFI_SPDM_FIRMWARE_CONFIG, "EV_EFI_SPDM_FIRMWARE_CONFIG" },
};

const char *eventlog_type_name(uint32_t type)
{
	for (size_t i = 0; i < ELEMENTSOF(types); i++)
		if (types[i].type == type)
			return types[i].name;
	return NULL;
}

/* Appends to a fixed buffer, truncating silently: a description may be cut, never overrun. */
struct out {
	char *buf;
	size_t size, len;
};

static _printf_(2, 3) void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (o->len + 1 >= o->size)
		return;
	va_start(ap, fmt);
	k = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
	va_end(ap);
	if (k > 0)
		o->len = o->len + (size_t)k < o->size ? o->len + (size_t)k : o->size - 1;
}

static void put_char(struct out *o, unsigned c)
{
	/* Printable ASCII only: descriptions end up in terminals and JSON. */
	put(o, "%c", c >= 0x20 && c < 0x7f ? (char)c : '?');
}

static void put_ucs2(struct out *o, const uint8_t *p, size_t chars)
{
	for (size_t i = 0; i < chars; i++) {
		uint16_t c = le16(p + 2 * i);

		if (c == 0)
			break;
		put_char(o, c);
	}
}

/* Firmware strings come as ASCII or as UCS-2; the second byte being NUL tells them apart. */
static void put_string(struct out *o, const uint8_t *p, size_t n)
{
	if (n >= 2 && p[0] != 0 && p[1] == 0) {
		put_ucs2(o, p, n / 2);
		return;
	}
	for (size_t i = 0; i < n && p[i]; i++)
		put_char(o, p[i]);
}

static void put_guid(struct out *o, const uint8_t *g)
{
	put(o, "%08" PRIx32 "-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", le32(g), le16(g + 4),
	    le16(g + 6), g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
}

static void describe_variable(struct out *o, const uint8_t *d, uint32_t n)
{
	uint64_t name_len = le64(d + 16), var_len = le64(d + 24);

	/* eventlog_parse checked that name and data fit. */
	put(o, "variable ");
	put_ucs2(o, d + 32, (size_t)name_len);
	put(o, " (");
	put_guid(o, d);
	put(o, "), %" PRIu64 " byte%s", var_len, var_len == 1 ? "" : "s");
	(void)n;
}

/* The file path nodes of a UEFI device path, e.g. \EFI\BOOT\BOOTX64.EFI. */
static void describe_image(struct out *o, const uint8_t *d, uint32_t n, uint8_t uintn_size)
{
	size_t w = uintn_size == 1 ? 4 : 8, off = 8 + 3 * w;
	uint64_t length = w == 4 ? le32(d + 8) : le64(d + 8);
	uint64_t path_len = w == 4 ? le32(d + 8 + 2 * w) : le64(d + 8 + 2 * w);
	size_t end = path_len <= n - off ? off + (size_t)path_len : n;
	bool named = false;

	put(o, "image at 0x%" PRIx64 ", %" PRIu64 " bytes", le64(d), length);
	while (off + 4 <= end) {
		uint8_t type = d[off], subtype = d[off + 1];
		uint16_t len = le16(d + off + 2);

		if (len < 4 || len > end - off || type == DEVICE_PATH_END)
			break;
		if (type == DEVICE_PATH_MEDIA && subtype == DEVICE_PATH_FILE) {
			put(o, named ? "" : ": ");
			put_ucs2(o, d + off + 4, (len - 4u) / 2);
			named = true;
		}
		off += len;
	}
}

static void describe_no_action(struct out *o, const struct eventlog *log, const uint8_t *d, uint32_t n)
{
	if (n >= 16 && memcmp(d, "Spec ID Event03", 16) == 0 && log->agile) {
		bool other = false;

		put(o, "Spec ID Event03: banks");
		for (size_t b = 0; b < PCR_BANKS; b++)
			if (log->banks & (1u << b))
				put(o, " %s", pcr_bank_by_index(b)->name);
		for (unsigned i = 0; i < log->n_algs; i++)
			if (!log->algs[i].bank) {
				put(o, "%s0x%04x", other ? " " : "; not replayed: ", log->algs[i].id);
				other = true;
			}
		return;
	}
	if (n == 17 && memcmp(d, "StartupLocality", 16) == 0) {
		put(o, "StartupLocality %u", d[16]);
		return;
	}
	if (n >= 16 && memchr(d, 0, 16)) {
		put(o, "signature \"");
		put_string(o, d, 16);
		put(o, "\", %" PRIu32 " bytes", n);
		return;
	}
	put(o, "%" PRIu32 " bytes", n);
}

void eventlog_describe(const struct eventlog *log, const struct eventlog_event *e, char *buf,
		       size_t size)
{
	struct out o = { buf, size, 0 };
	const uint8_t *d = log->data + e->data_offset;
	uint32_t n = e->data_size;

	if (size == 0)
		return;
	buf[0] = 0;
	switch (e->type) {
	case EV_NO_ACTION:
		describe_no_action(&o, log, d, n);
		return;
	case EV_SEPARATOR:
		if (n == 4)
			put(&o, le32(d) == 0 ? "separator" : le32(d) == UINT32_MAX ? "separator (firmware error)" :
			    "separator 0x%08" PRIx32, le32(d));
		else
			put(&o, "separator, %" PRIu32 " bytes", n);
		return;
	case EV_EFI_VARIABLE_DRIVER_CONFIG:
	case EV_EFI_VARIABLE_BOOT:
	case EV_EFI_VARIABLE_BOOT2:
	case EV_EFI_VARIABLE_AUTHORITY:
		describe_variable(&o, d, n);
		return;
	case EV_EFI_BOOT_SERVICES_APPLICATION:
	case EV_EFI_BOOT_SERVICES_DRIVER:
	case EV_EFI_RUNTIME_SERVICES_DRIVER:
		describe_image(&o, d, n, log->uintn_size);
		return;
	case EV_S_CRTM_CONTENTS:
	case EV_EFI_PLATFORM_FIRMWARE_BLOB:
		put(&o, "firmware blob at 0x%" PRIx64 ", %" PRIu64 " bytes", le64(d), le64(d + 8));
		return;
	case EV_POST_CODE:
		if (n == 16)
			put(&o, "firmware blob at 0x%" PRIx64 ", %" PRIu64 " bytes", le64(d), le64(d + 8));
		else
			put_string(&o, d, n);
		return;
	case EV_EFI_PLATFORM_FIRMWARE_BLOB2:
		if (n >= 1 && n >= 1u + d[0] + 16) {
			put(&o, "firmware blob \"");
			put_string(&o, d + 1, d[0]);
			put(&o, "\" at 0x%" PRIx64 ", %" PRIu64 " bytes", le64(d + 1 + d[0]), le64(d + 9 + d[0]));
		} else
			put(&o, "%" PRIu32 " bytes", n);
		return;
	case EV_EVENT_TAG:
		if (n >= 8 && le32(d + 4) <= n - 8) {
			put(&o, "tag 0x%08" PRIx32 ": ", le32(d));
			put_string(&o, d + 8, le32(d + 4));
		} else
			put(&o, "%" PRIu32 " bytes", n);
		return;
	case EV_EFI_GPT_EVENT:
		if (n >= GPT_HEADER_SIZE + 8)
			put(&o, "GPT with %" PRIu64 " partitions", le64(d + GPT_HEADER_SIZE));
		else
			put(&o, "%" PRIu32 " bytes", n);
		return;
	case EV_EFI_HANDOFF_TABLES:
		if (n >= 8)
			put(&o, "%" PRIu64 " configuration tables", le64(d));
		return;
	case EV_EFI_HCRTM_EVENT:
		put(&o, "H-CRTM");
		return;
	case EV_S_CRTM_VERSION:
		/* Either a UCS-2 version string or, on some firmware, a GUID. */
		if (n == 16 && !(d[0] != 0 && d[1] == 0)) {
			put(&o, "firmware GUID ");
			put_guid(&o, d);
		} else
			put_string(&o, d, n);
		return;
	case EV_ACTION:
	case EV_EFI_ACTION:
	case EV_IPL:
	case EV_COMPACT_HASH:
	case EV_OMIT_BOOT_DEVICE_EVENTS:
		put_string(&o, d, n);
		return;
	default:
		put(&o, "%" PRIu32 " bytes", n);
		return;
	}
}
