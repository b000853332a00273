/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authenticode.h"
#include "encode.h"
#include "macro.h"
#include "predict.h"
#include "unaligned.h"

#define GRUB_KERNEL_PREFIX "kernel_cmdline: "
#define GRUB_COMMAND_PREFIX "grub_cmd: "
#define BOOT_IMAGE "BOOT_IMAGE="
/* TCG_PCClientTaggedEvent id for load options: systemd-stub and the Linux EFI stub use it. */
#define TAG_LOAD_OPTIONS 0x8f3b22edu
#define TAGGED_HEADER 8u /* taggedEventID, taggedEventDataSize */

const char *predict_cmdline_form_name(enum predict_cmdline_form f)
{
	static const char *const names[_PREDICT_CMDLINE_FORMS] = {
		[PREDICT_CMDLINE_UTF16] = "UTF-16 load options (systemd-boot, systemd-stub)",
		[PREDICT_CMDLINE_GRUB_KERNEL] = "GRUB kernel_cmdline",
		[PREDICT_CMDLINE_GRUB_COMMAND] = "GRUB linux command",
		[PREDICT_CMDLINE_STUB_UTF16] =
			"Linux EFI stub load options (UTF-16 with NUL, matched against the current command line)",
		[PREDICT_CMDLINE_STUB_UTF16_BARE] =
			"Linux EFI stub load options (UTF-16 without NUL, matched against the current command line)",
		[PREDICT_CMDLINE_STUB_UTF8] =
			"Linux EFI stub load options (UTF-8 with NUL, matched against the current command line)",
		[PREDICT_CMDLINE_STUB_UTF8_BARE] =
			"Linux EFI stub load options (UTF-8 without NUL, matched against the current command line)",
	};

	return f < _PREDICT_CMDLINE_FORMS ? names[f] : NULL;
}

int predict_image_from_file(struct predict_image *img, const char *name, const uint8_t *data, size_t size,
			    uint32_t banks, char err[static PREDICT_ERROR_MAX])
{
	struct predict_image t = { .name = name };

	for (size_t b = 0; b < PCR_BANKS; b++) {
		const struct pcr_bank *bank = pcr_bank_by_index(b);
		char why[AUTHENTICODE_ERROR_MAX];

		if (!(banks & (1u << b)))
			continue;
		if (pcr_bank_digest(bank, data, size, t.plain_digest[b]) < 0) {
			snprintf(err, PREDICT_ERROR_MAX, "'%s': cannot compute its %s digest", name, bank->name);
			return -EOPNOTSUPP;
		}
		t.plain |= 1u << b;
		/* Not a PE image: the log can only have measured its plain digest. */
		if (authenticode_digest(data, size, bank, t.authenticode_digest[b], why) == 0)
			t.authenticode |= 1u << b;
	}
	*img = t;
	return 0;
}

int predict_image_from_hex(struct predict_image *img, const char *hex, char err[static PREDICT_ERROR_MAX])
{
	struct predict_image t = { .name = hex, .hex = true };
	size_t n = strlen(hex);

	for (size_t b = 0; b < PCR_BANKS; b++) {
		const struct pcr_bank *bank = pcr_bank_by_index(b);

		if (n != 2u * bank->size)
			continue;
		if (hex_decode(hex, t.plain_digest[b], bank->size) < 0) {
			snprintf(err, PREDICT_ERROR_MAX, "'%.140s' is neither a file nor a digest in hex", hex);
			return -EINVAL;
		}
		memcpy(t.authenticode_digest[b], t.plain_digest[b], bank->size);
		t.plain |= 1u << b;
	}
	if (!t.plain) {
		snprintf(err, PREDICT_ERROR_MAX,
			 "'%.140s' is neither a file nor a digest in hex of 40, 64, 96 or 128 digits (it has %zu)",
			 hex, n);
		return -EINVAL;
	}
	t.authenticode = t.plain;
	*img = t;
	return 0;
}

static bool is_image_load(uint32_t type)
{
	return type == EV_EFI_BOOT_SERVICES_APPLICATION || type == EV_EFI_BOOT_SERVICES_DRIVER ||
	       type == EV_EFI_RUNTIME_SERVICES_DRIVER;
}

static const uint8_t *event_digest(const struct eventlog *log, const struct eventlog_event *e, size_t b)
{
	for (unsigned i = 0; i < e->n_digests; i++)
		if (pcr_bank_index(e->digests[i].bank) == b)
			return log->data + e->digests[i].offset;
	return NULL;
}

/* Whether data hashes to the event's digest in every bank it has one for. */
static bool measures(const struct eventlog *log, const struct eventlog_event *e, const void *data, size_t n)
{
	for (unsigned i = 0; i < e->n_digests; i++) {
		const struct pcr_bank *bank = e->digests[i].bank;
		uint8_t d[PCR_DIGEST_MAX];

		if (pcr_bank_digest(bank, data, n, d) < 0 || memcmp(d, log->data + e->digests[i].offset, bank->size) != 0)
			return false;
	}
	return e->n_digests > 0;
}

/* The UTF-16LE encoding of UTF-8 s with its NUL, as a UEFI CHAR16 string; -EINVAL if s is not UTF-8. */
static int utf16_encode(const char *s, uint8_t **ret, size_t *ret_size)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;
	uint8_t *t = malloc(4 * strlen(s) + 2);

	if (!t)
		return -ENOMEM;
	while (*p) {
		uint32_t c;
		size_t k;

		if (p[0] < 0x80)
			c = p[0], k = 1;
		else if (p[0] >= 0xc2 && p[0] <= 0xdf && (p[1] & 0xc0) == 0x80)
			c = (p[0] & 0x1fu) << 6 | (p[1] & 0x3fu), k = 2;
		else if (p[0] >= 0xe0 && p[0] <= 0xef && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80)
			c = (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu), k = 3;
		else if (p[0] >= 0xf0 && p[0] <= 0xf4 && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80 &&
			 (p[3] & 0xc0) == 0x80)
			c = (p[0] & 0x07u) << 18 | (p[1] & 0x3fu) << 12 | (p[2] & 0x3fu) << 6 | (p[3] & 0x3fu), k = 4;
		else
			c = 0, k = 0;
		/* Overlong forms, surrogates and anything above U+10FFFF are no text. */
		if (k == 0 || (k == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
		    (k == 4 && (c < 0x10000 || c > 0x10ffff))) {
			free(t);
			return -EINVAL;
		}
		if (c >= 0x10000) {
			c -= 0x10000;
			t[n++] = (uint8_t)((0xd800 | (c >> 10)) & 0xff);
			t[n++] = (uint8_t)((0xd800 | (c >> 10)) >> 8);
			c = 0xdc00 | (c & 0x3ff);
		}
		t[n++] = (uint8_t)(c & 0xff);
		t[n++] = (uint8_t)(c >> 8);
		p += k;
	}
	t[n++] = 0;
	t[n++] = 0;
	*ret = t;
	*ret_size = n;
	return 0;
}

/* s as the bytes a load-options form measures: UTF-16LE or UTF-8, with its NUL or without. */
static int load_options(enum predict_cmdline_form f, const char *s, uint8_t **ret, size_t *ret_size)
{
	uint8_t *t;
	size_t n;
	int r;

	if (f == PREDICT_CMDLINE_UTF16 || f == PREDICT_CMDLINE_STUB_UTF16 || f == PREDICT_CMDLINE_STUB_UTF16_BARE) {
		r = utf16_encode(s, &t, &n);
		if (r < 0)
			return r;
		if (f == PREDICT_CMDLINE_STUB_UTF16_BARE)
			n -= 2;
	} else {
		n = strlen(s);
		t = malloc(n + 1);
		if (!t)
			return -ENOMEM;
		memcpy(t, s, n + 1);
		if (f == PREDICT_CMDLINE_STUB_UTF8)
			n++;
	}
	*ret = t;
	*ret_size = n;
	return 0;
}

/*
 * The form in which current reproduces the Linux EFI stub's event digest: -ENOENT in none (or
 * no current), -ENOTUNIQ in more than one. A current that is no UTF-8 has no UTF-16 forms.
 */
static int stub_form(const struct eventlog *log, const struct eventlog_event *e, const char *current)
{
	int found = -ENOENT;

	if (!current)
		return -ENOENT;
	for (int f = PREDICT_CMDLINE_STUB_UTF16; f <= PREDICT_CMDLINE_STUB_UTF8_BARE; f++) {
		_cleanup_free_ uint8_t *b = NULL;
		size_t n;
		int r = load_options(f, current, &b, &n);

		if (r == -EINVAL)
			continue;
		if (r < 0)
			return r;
		if (measures(log, e, b, n)) {
			if (found >= 0)
				return -ENOTUNIQ;
			found = f;
		}
	}
	return found;
}

/*
 * Whether the UTF-16 text at d (n bytes, up to its NUL) is what the event measured, with its
 * NUL (systemd-boot, systemd-stub); old systemd-boot logs cut the NUL short. scratch holds n + 2.
 */
static bool utf16_event(const struct eventlog *log, const struct eventlog_event *e, const uint8_t *d, size_t n,
			uint8_t *scratch)
{
	size_t k = 0;

	if (n < 2 || d[1] != 0)
		return false;
	while (k + 1 < n && (d[k] || d[k + 1]))
		k += 2;
	memcpy(scratch, d, k);
	scratch[k] = scratch[k + 1] = 0;
	return measures(log, e, scratch, k + 2);
}

/*
 * A GRUB string event (PCR 8 EV_IPL "PREFIXTEXT", with or without its NUL) that measured TEXT:
 * where TEXT starts in the log and its length, or NULL.
 */
static const char *grub_event(const struct eventlog *log, const struct eventlog_event *e, const char *prefix,
			      size_t *ret_len)
{
	const char *d = (const char *)log->data + e->data_offset;
	size_t n = e->data_size, p = strlen(prefix);

	if (e->type != EV_IPL || e->pcr != 8)
		return NULL;
	if (n > 0 && d[n - 1] == 0)
		n--;
	if (n < p || memcmp(d, prefix, p) != 0 || memchr(d, 0, n) || !measures(log, e, d + p, n - p))
		return NULL;
	*ret_len = n - p;
	return d + p;
}

/* LEAD PATH ARGS for GRUB: PATH from the command line's BOOT_IMAGE=, else the old text's first word. */
static char *grub_new_text(const char *lead, const char *old, size_t old_len, const char *cmdline)
{
	const char *path = old, *args = cmdline, *sp = memchr(old, ' ', old_len);
	size_t path_len = sp ? (size_t)(sp - old) : old_len;
	char *s;

	if (strncmp(cmdline, BOOT_IMAGE, strlen(BOOT_IMAGE)) == 0) {
		path = cmdline + strlen(BOOT_IMAGE);
		path_len = strcspn(path, " ");
		args = path + path_len;
		args += strspn(args, " ");
	}
	if (asprintf(&s, "%s%.*s%s%s", lead, (int)path_len, path, *args ? " " : "", args) < 0)
		return NULL;
	return s;
}

/*
 * The bytes the next boot measures for this event's command line, or *ret NULL if it measures
 * none; 1 for a command line measured in a form predict cannot recompute.
 */
static int cmdline_event(const struct eventlog *log, const struct eventlog_event *e, struct predict_cmdline *c,
			 uint8_t **ret, size_t *ret_size)
{
	const uint8_t *d = log->data + e->data_offset;
	_cleanup_free_ uint8_t *scratch = malloc((size_t)e->data_size + 2);
	enum predict_cmdline_form form;
	const char *t;
	size_t len;
	char *s = NULL;
	int r;

	*ret = NULL;
	if (!scratch)
		return -ENOMEM;
	if (e->type == EV_IPL && (e->pcr == 8 || e->pcr == 12) && utf16_event(log, e, d, e->data_size, scratch)) {
		form = PREDICT_CMDLINE_UTF16;
	} else if (e->type == EV_EVENT_TAG && e->data_size >= TAGGED_HEADER && le32(d) == TAG_LOAD_OPTIONS) {
		uint32_t n = le32(d + 4);

		if (n <= e->data_size - TAGGED_HEADER && utf16_event(log, e, d + TAGGED_HEADER, n, scratch)) {
			form = PREDICT_CMDLINE_UTF16;
		} else {
			/* The Linux EFI stub: "LOADED_IMAGE::LoadOptions", which does not say what it
			 * hashed. The kernel's command line is that buffer's text, so this boot's, in
			 * the one form that reproduces the digest, says how the next one is measured. */
			r = stub_form(log, e, c->current);
			if (r == -ENOMEM)
				return r;
			if (r < 0) {
				if (!c->unsupported) {
					c->unsupported_event = (size_t)(e - log->events);
					c->ambiguous = r == -ENOTUNIQ;
				}
				c->unsupported = true;
				return 1;
			}
			form = (enum predict_cmdline_form)r;
		}
	} else if ((t = grub_event(log, e, GRUB_KERNEL_PREFIX, &len))) {
		form = PREDICT_CMDLINE_GRUB_KERNEL;
		if (!(s = grub_new_text("", t, len, c->string)))
			return -ENOMEM;
	} else if ((t = grub_event(log, e, GRUB_COMMAND_PREFIX, &len)) &&
		   ((len > 6 && memcmp(t, "linux ", 6) == 0) || (len > 9 && memcmp(t, "linuxefi ", 9) == 0))) {
		size_t lead = (size_t)((const char *)memchr(t, ' ', len) - t) + 1;
		char cmd[16];

		snprintf(cmd, sizeof(cmd), "%.*s", (int)lead, t);
		form = PREDICT_CMDLINE_GRUB_COMMAND;
		if (!(s = grub_new_text(cmd, t + lead, len - lead, c->string)))
			return -ENOMEM;
	} else
		return 0;

	if (form != PREDICT_CMDLINE_GRUB_KERNEL && form != PREDICT_CMDLINE_GRUB_COMMAND) {
		r = load_options(form, c->string, ret, ret_size);
		if (r < 0)
			return r;
	} else {
		*ret = (uint8_t *)s;
		*ret_size = strlen(s);
	}
	c->n_matched++;
	c->pcrs |= 1u << e->pcr;
	c->forms |= 1u << form;
	return 0;
}

/* A digest replaced by itself: the event keeps its digests in every bank, not only that one's. */
static bool same_digest(const struct predict_replace *rep)
{
	return rep->old.hex && rep->new.hex && rep->old.plain == rep->new.plain &&
	       memcmp(rep->old.plain_digest, rep->new.plain_digest, sizeof(rep->old.plain_digest)) == 0;
}

/* Which replacement, if any, measured this event: its index, and whether as a PE image. */
static int match(const struct eventlog *log, const struct eventlog_event *e, const struct predict_replace *rep,
		 size_t n, bool *ret_pe)
{
	for (size_t i = 0; i < n; i++)
		for (size_t b = 0; b < PCR_BANKS; b++) {
			const uint8_t *d = event_digest(log, e, b);
			size_t size = pcr_bank_by_index(b)->size;

			if (!d)
				continue;
			if (!rep[i].old.hex && (rep[i].old.authenticode & (1u << b)) &&
			    memcmp(d, rep[i].old.authenticode_digest[b], size) == 0) {
				*ret_pe = true;
				return (int)i;
			}
			if ((rep[i].old.plain & (1u << b)) && memcmp(d, rep[i].old.plain_digest[b], size) == 0) {
				/* A digest in hex says nothing of its kind: the event's type does. */
				*ret_pe = rep[i].old.hex && is_image_load(e->type);
				return (int)i;
			}
		}
	return -1;
}

int predict_run(const struct eventlog *log, struct predict_replace *replace, size_t n_replace,
		struct predict_cmdline *cmdline, struct pcr_replay *ret, char err[static PREDICT_ERROR_MAX])
{
	_cleanup_(pcr_hashes_done) struct pcr_hashes h = { 0 };
	struct pcr_replay r;
	int k;

	pcr_replay_init(&r, PCR_BANKS_ALL, log->locality);
	for (size_t i = 0; i < n_replace; i++)
		replace[i].n_matched = 0, replace[i].pcrs = 0;
	if (cmdline)
		cmdline->n_matched = 0, cmdline->pcrs = 0, cmdline->forms = 0, cmdline->unsupported = false,
		cmdline->ambiguous = false;

	for (size_t n = 0; n < log->n_events; n++) {
		const struct eventlog_event *e = &log->events[n];
		_cleanup_free_ uint8_t *measured = NULL;
		struct predict_replace *rep = NULL;
		size_t measured_size = 0;
		bool pe = false;

		if (e->type == EV_NO_ACTION)
			continue;
		k = match(log, e, replace, n_replace, &pe);
		if (k >= 0) {
			rep = &replace[k];
			if (pe && !rep->new.authenticode) {
				snprintf(err, PREDICT_ERROR_MAX,
					 "'%.100s' is not a PE image, but '%.100s' was measured as one (event %zu, PCR %u)",
					 rep->new.name, rep->old.name, n, (unsigned)e->pcr);
				return -EBADMSG;
			}
			if (rep->n_matched++ == 0)
				rep->first_event = n;
			rep->pcrs |= 1u << e->pcr;
		} else if (cmdline && cmdline->string) {
			k = cmdline_event(log, e, cmdline, &measured, &measured_size);
			if (k < 0) {
				snprintf(err, PREDICT_ERROR_MAX, "%s",
					 k == -EINVAL ? "the command line is not valid UTF-8" : strerror(-k));
				return k;
			}
			if (k > 0) {
				for (size_t b = 0; b < PCR_BANKS; b++)
					pcr_replay_missing(&r, pcr_bank_by_index(b), e->pcr, e->offset);
				continue;
			}
		}

		for (size_t b = 0; b < PCR_BANKS; b++) {
			const struct pcr_bank *bank = pcr_bank_by_index(b);
			const uint8_t *d = event_digest(log, e, b);
			uint8_t buf[PCR_DIGEST_MAX];

			if (d && rep && !same_digest(rep)) {
				uint32_t known = pe ? rep->new.authenticode : rep->new.plain;

				d = known & (1u << b) ? (pe ? rep->new.authenticode_digest[b] : rep->new.plain_digest[b]) : NULL;
			} else if (d && measured) {
				if (pcr_bank_digest(bank, measured, measured_size, buf) < 0)
					d = NULL;
				else
					d = buf;
			}
			if (!d) {
				pcr_replay_missing(&r, bank, e->pcr, e->offset);
				continue;
			}
			k = pcr_replay_extend(&r, &h, bank, e->pcr, d);
			if (k < 0) {
				snprintf(err, PREDICT_ERROR_MAX, "cannot compute %s", bank->name);
				return k;
			}
		}
	}
	*ret = r;
	return 0;
}
