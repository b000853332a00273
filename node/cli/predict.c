/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>

#include "encode.h"
#include "eventlog.h"
#include "fileio.h"
#include "keystrap.h"
#include "log.h"
#include "predict.h"

#define REPLACE_MAX 16
/* What the server's policy may pin (0-15), less 12 and 15, which keystrap extends in the boot. */
#define POLICY_PCRS 0x00006fffu
/* The largest kernel, initrd or EFI binary predict reads. */
#define IMAGE_MAX (1024u << 20)
/* A kernel command line is at most a few KiB (COMMAND_LINE_SIZE); a file far larger is none. */
#define CMDLINE_MAX (64u << 10)
#define CURRENT_CMDLINE "/proc/cmdline"

static const char usage[] =
	"keystrap predict [--event-log FILE] [--replace OLD=NEW]... [--cmdline STRING [--current-cmdline FILE]]\n"
	"                        [--allow-unmatched] [--json]";

static void show_help(void)
{
	printf("Usage: %s\n\n"
	       "Replay this boot's firmware event log with some measurements swapped for the ones\n"
	       "the next boot will make, and print the PCR values that boot will have.\n\n"
	       "  --event-log FILE   the log; default " FIRMWARE_LOG "\n"
	       "  --replace OLD=NEW  every event whose digest (in any bank) is OLD's is measured as\n"
	       "                     NEW: a kernel, EFI binary or initrd as a FILE (its Authenticode\n"
	       "                     digest if it is a PE image, and its plain digest) or a digest in\n"
	       "                     hex (only hex digits; write a file of such a name as ./NAME);\n"
	       "                     may be repeated\n"
	       "  --cmdline STRING   the next boot's kernel command line, as /proc/cmdline will show\n"
	       "                     it (GRUB: BOOT_IMAGE=PATH first, or the current path is kept);\n"
	       "                     measured where systemd-boot, systemd-stub, GRUB or the Linux EFI\n"
	       "                     stub measured this one\n"
	       "  --current-cmdline FILE\n"
	       "                     this boot's command line, which the Linux EFI stub's event (it\n"
	       "                     logs no text) must reproduce to show its form; default " CURRENT_CMDLINE "\n"
	       "  --allow-unmatched  a --replace that matches no event, or a command line that\n"
	       "                     cannot be predicted, is reported but is no failure\n"
	       "  --json             the PCRs, what was replaced, and a keystrap-server policy\n"
	       "                     fragment (pcr_bank, reference_pcrs) as JSON\n\n"
	       "PCRs that change are marked. A --replace that matches no event, or a command line\n"
	       "measured in a form keystrap cannot recompute (the Linux EFI stub's LoadOptions event\n"
	       "when the current command line does not reproduce its digest), is named on stderr and\n"
	       "exits 1 unless --allow-unmatched; such a PCR is unknown, never guessed.\n",
	       usage);
}

/* "sha256 HEX" of what the image was measured as, for messages. */
static void image_digest(const struct predict_image *img, uint32_t banks, char *buf, size_t size)
{
	size_t b = pcr_bank_index(pcr_bank_by_name("sha256"));
	char h[2 * PCR_DIGEST_MAX + 1];

	if (!(banks & img->plain & (1u << b)))
		for (b = 0; b < PCR_BANKS && !(img->plain & (1u << b)); b++)
			;
	if (b == PCR_BANKS) {
		snprintf(buf, size, "no digest");
		return;
	}
	hex_encode(img->plain_digest[b], pcr_bank_by_index(b)->size, h);
	if (!img->hex && (img->authenticode & (1u << b))) {
		char a[2 * PCR_DIGEST_MAX + 1];

		hex_encode(img->authenticode_digest[b], pcr_bank_by_index(b)->size, a);
		snprintf(buf, size, "%s %s, Authenticode %s", pcr_bank_by_index(b)->name, h, a);
	} else
		snprintf(buf, size, "%s %s", pcr_bank_by_index(b)->name, h);
}

/* OLD or NEW: hex digits only are a digest, anything else a file. */
static int parse_image(const char *s, uint32_t banks, struct predict_image *img)
{
	_cleanup_free_ uint8_t *data = NULL;
	char err[PREDICT_ERROR_MAX];
	size_t size;
	int r;

	if (s[strspn(s, "0123456789abcdefABCDEF")] == 0) {
		r = predict_image_from_hex(img, s, err);
		return r < 0 ? log_error_errno(r, "%s", err) : 0;
	}
	r = read_file(s, IMAGE_MAX, &data, &size);
	if (r < 0)
		return log_error_errno(r, "cannot read '%s': %s", s, r == -EFBIG ? "larger than 1 GiB" : strerror(-r));
	r = predict_image_from_file(img, s, data, size, banks, err);
	return r < 0 ? log_error_errno(r, "%s", err) : 0;
}

static void mask_list(uint32_t mask, char *buf, size_t size)
{
	pcr_mask_format(mask, buf, size);
	if (!*buf)
		snprintf(buf, size, "none");
}

static uint32_t changed_pcrs(const struct eventlog *log, const struct pcr_replay *p, size_t b)
{
	const struct pcr_replay *c = &log->replay;
	uint32_t m = 0;

	for (unsigned i = 0; i < PCR_COUNT; i++)
		if ((p->extended[b] | c->extended[b]) & (1u << i))
			if (((p->unknown[b] ^ c->unknown[b]) & (1u << i)) ||
			    memcmp(p->values[b][i], c->values[b][i], pcr_bank_by_index(b)->size) != 0)
				m |= 1u << i;
	return m;
}

static void print_text(const struct eventlog *log, const struct pcr_replay *p)
{
	uint32_t changed = 0;
	char list[80];

	for (size_t b = 0; b < PCR_BANKS; b++) {
		const struct pcr_bank *bank = pcr_bank_by_index(b);
		uint32_t c = changed_pcrs(log, p, b);

		if (!(log->banks & (1u << b)))
			continue;
		changed |= c;
		printf("%s:\n", bank->name);
		for (unsigned i = 0; i < PCR_COUNT; i++) {
			char h[2 * PCR_DIGEST_MAX + 1];

			if (!(p->extended[b] & (1u << i)))
				continue;
			if (p->unknown[b] & (1u << i)) {
				printf("  %-2u : unknown (the event at offset %zu has no %s digest, or none can be predicted)\n", i,
				       p->unknown_offset[b][i], bank->name);
				continue;
			}
			hex_encode(p->values[b][i], bank->size, h);
			printf("  %-2u : 0x%s%s\n", i, h, c & (1u << i) ? "  (changes)" : "");
		}
	}
	mask_list(changed, list, sizeof(list));
	printf("PCRs that change: %s\n", list);
}

static struct json_object *json_mask(uint32_t mask)
{
	struct json_object *a = json_object_new_array();

	for (unsigned i = 0; i < PCR_COUNT; i++)
		if (mask & (1u << i))
			json_object_array_add(a, json_object_new_int((int)i));
	return a;
}

static void print_json(const char *path, const struct eventlog *log, const struct pcr_replay *p,
		       const struct predict_replace *rep, size_t n_rep, const struct predict_cmdline *c)
{
	struct json_object *root = json_object_new_object(), *pcrs = json_object_new_object();
	struct json_object *changed = json_object_new_object(), *replaced = json_object_new_array();
	struct json_object *policy = json_object_new_object(), *refs = json_object_new_object();
	const struct pcr_bank *policy_bank = pcr_bank_by_name("sha256");

	if (!(log->banks & (1u << pcr_bank_index(policy_bank))))
		for (size_t b = 0; b < PCR_BANKS; b++)
			if (log->banks & (1u << b)) {
				policy_bank = pcr_bank_by_index(b);
				break;
			}
	json_object_object_add(root, "event_log", json_object_new_string(path));
	json_object_object_add(root, "format", json_object_new_string(log->agile ? "crypto-agile" : "sha1"));
	for (size_t i = 0; i < n_rep; i++) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "old", json_object_new_string(rep[i].old.name));
		json_object_object_add(o, "new", json_object_new_string(rep[i].new.name));
		json_object_object_add(o, "events", json_object_new_uint64(rep[i].n_matched));
		json_object_object_add(o, "pcrs", json_mask(rep[i].pcrs));
		json_object_array_add(replaced, o);
	}
	json_object_object_add(root, "replaced", replaced);
	if (c->string) {
		struct json_object *o = json_object_new_object(), *forms = json_object_new_array();

		json_object_object_add(o, "string", json_object_new_string(c->string));
		json_object_object_add(o, "events", json_object_new_uint64(c->n_matched));
		json_object_object_add(o, "pcrs", json_mask(c->pcrs));
		for (int f = 0; f < _PREDICT_CMDLINE_FORMS; f++)
			if (c->forms & (1u << f))
				json_object_array_add(forms, json_object_new_string(predict_cmdline_form_name(f)));
		json_object_object_add(o, "forms", forms);
		json_object_object_add(o, "unsupported_event",
				       c->unsupported ? json_object_new_uint64(c->unsupported_event) : NULL);
		json_object_object_add(root, "cmdline", o);
	}
	for (size_t b = 0; b < PCR_BANKS; b++) {
		const struct pcr_bank *bank = pcr_bank_by_index(b);
		struct json_object *values;

		if (!(log->banks & (1u << b)))
			continue;
		values = json_object_new_object();
		for (unsigned i = 0; i < PCR_COUNT; i++) {
			char key[4], h[2 * PCR_DIGEST_MAX + 1];

			if (!(p->extended[b] & (1u << i)))
				continue;
			snprintf(key, sizeof(key), "%u", i);
			if (p->unknown[b] & (1u << i)) {
				json_object_object_add(values, key, NULL);
				continue;
			}
			hex_encode(p->values[b][i], bank->size, h);
			json_object_object_add(values, key, json_object_new_string(h));
			if (bank == policy_bank && (POLICY_PCRS & (1u << i)))
				json_object_object_add(refs, key, json_object_new_string(h));
		}
		json_object_object_add(pcrs, bank->name, values);
		json_object_object_add(changed, bank->name, json_mask(changed_pcrs(log, p, b)));
	}
	json_object_object_add(root, "pcrs", pcrs);
	json_object_object_add(root, "changed", changed);
	json_object_object_add(policy, "pcr_bank", json_object_new_string(policy_bank->name));
	json_object_object_add(policy, "reference_pcrs", refs);
	json_object_object_add(root, "policy", policy);
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
}

/* "# OLD (sha256 HEX) replaced by NEW: ..." lines for what was matched. */
static void print_matched(const struct eventlog *log, const struct predict_replace *rep, size_t n_rep,
			  const struct predict_cmdline *c)
{
	for (size_t i = 0; i < n_rep; i++) {
		char d[2 * (2 * PCR_DIGEST_MAX + 16)], pcrs[80];

		if (rep[i].n_matched == 0)
			continue;
		image_digest(&rep[i].old, log->banks, d, sizeof(d));
		mask_list(rep[i].pcrs, pcrs, sizeof(pcrs));
		printf("# '%s' (%s) replaced by '%s': %zu event%s (the first: event %zu), PCR %s\n", rep[i].old.name, d,
		       rep[i].new.name, rep[i].n_matched, rep[i].n_matched == 1 ? "" : "s", rep[i].first_event, pcrs);
	}
	if (c->string && c->n_matched) {
		char pcrs[80], forms[4 * 100] = "";

		mask_list(c->pcrs, pcrs, sizeof(pcrs));
		for (int f = 0; f < _PREDICT_CMDLINE_FORMS; f++)
			if (c->forms & (1u << f))
				snprintf(forms + strlen(forms), sizeof(forms) - strlen(forms), "%s%s", *forms ? ", " : "",
					 predict_cmdline_form_name(f));
		printf("# command line: %zu event%s (%s), PCR %s\n", c->n_matched, c->n_matched == 1 ? "" : "s", forms,
		       pcrs);
	}
}

/* This boot's command line from path (/proc/cmdline or a copy of it), without its newline. */
static int read_current_cmdline(const char *path, uint8_t **ret)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t size;
	int r;

	r = read_file(path, CMDLINE_MAX, &data, &size);
	if (r < 0)
		return log_error_errno(r, "cannot read the current command line '%s': %s", path,
				       r == -EFBIG ? "larger than 64 KiB" : strerror(-r));
	if (memchr(data, 0, size))
		return log_error_errno(-EBADMSG, "'%s' is no command line: it holds a NUL byte", path);
	if (size > 0 && data[size - 1] == '\n')
		data[size - 1] = 0;
	*ret = TAKE_PTR(data);
	return 0;
}

/* Says on stderr what the prediction could not do; returns how many such things. */
static int report(const struct eventlog *log, const struct predict_replace *rep, size_t n_rep,
		  const struct predict_cmdline *c, const char *current_path)
{
	int missed = 0;

	for (size_t i = 0; i < n_rep; i++) {
		char d[2 * (2 * PCR_DIGEST_MAX + 16)];

		if (rep[i].n_matched)
			continue;
		image_digest(&rep[i].old, log->banks, d, sizeof(d));
		log_error("'%s' (%s) matched no event in the log: not replaced", rep[i].old.name, d);
		missed++;
	}
	if (c->string && c->unsupported) {
		const struct eventlog_event *e = &log->events[c->unsupported_event];

		log_error("event %zu (PCR %u) measured the command line as the Linux EFI stub's LoadOptions, "
			  "which keystrap cannot recompute: the current command line (%s) reproduces its digest "
			  "%s; PCR %u is unknown (give its digest with --replace OLD=NEW)",
			  c->unsupported_event, (unsigned)e->pcr, current_path,
			  c->ambiguous ? "in more than one form" : "in no form keystrap knows", (unsigned)e->pcr);
		missed++;
	} else if (c->string && c->n_matched == 0) {
		log_error("no event in the log measured the kernel command line in a form keystrap knows "
			  "(systemd-boot, systemd-stub, GRUB): --cmdline not applied");
		missed++;
	}
	return missed;
}

int cmd_predict(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "event-log", required_argument, NULL, 'e' },
		{ "replace", required_argument, NULL, 'r' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "current-cmdline", required_argument, NULL, 'C' },
		{ "allow-unmatched", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	_cleanup_eventlog_ struct eventlog *log = NULL;
	_cleanup_free_ uint8_t *data = NULL, *current = NULL;
	const char *path = FIRMWARE_LOG, *current_path = NULL, *olds[REPLACE_MAX], *news[REPLACE_MAX];
	struct predict_replace rep[REPLACE_MAX] = { 0 };
	struct predict_cmdline cmdline = { 0 };
	bool json = false, allow = false;
	char err[PREDICT_ERROR_MAX];
	struct pcr_replay predicted;
	size_t n_rep = 0;
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (opt) {
		case 'e': path = optarg; break;
		case 'r': {
			char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg || !eq[1])
				return usage_error(usage, "--replace '%s' is not OLD=NEW", optarg);
			if (n_rep == REPLACE_MAX)
				return usage_error(usage, "at most %d --replace", REPLACE_MAX);
			/* OLD is everything before the first '=' (a path with one cannot be OLD). */
			*eq = 0;
			olds[n_rep] = optarg;
			news[n_rep++] = eq + 1;
			break;
		}
		case 'c': cmdline.string = optarg; break;
		case 'C': current_path = optarg; break;
		case 'a': allow = true; break;
		case 'j': json = true; break;
		case 'h': show_help(); return 0;
		default: return usage_error(usage, "invalid option");
		}
	}
	if (optind < argc)
		return usage_error(usage, "unexpected argument '%s'", argv[optind]);
	if (current_path && !cmdline.string)
		return usage_error(usage, "--current-cmdline without --cmdline");
	if (!current_path)
		current_path = CURRENT_CMDLINE;
	if (cmdline.string && read_current_cmdline(current_path, &current) < 0)
		return 1;
	cmdline.current = (const char *)current;

	if (read_event_log(path, &data, &log) < 0)
		return 1;
	for (size_t i = 0; i < n_rep; i++)
		if (parse_image(olds[i], log->banks, &rep[i].old) < 0 || parse_image(news[i], log->banks, &rep[i].new) < 0)
			return 1;
	r = predict_run(log, rep, n_rep, &cmdline, &predicted, err);
	if (r < 0)
		return log_error("%s", err), 1;
	if (json)
		print_json(path, log, &predicted, rep, n_rep, &cmdline);
	else {
		printf("# %s: %s log, %zu events\n", path, log->agile ? "crypto-agile" : "SHA-1", log->n_events);
		print_matched(log, rep, n_rep, &cmdline);
		print_text(log, &predicted);
	}
	/* What could not be predicted comes after the table, also when both go to one pipe. */
	fflush(stdout);
	return report(log, rep, n_rep, &cmdline, current_path) > 0 && !allow ? 1 : 0;
}
