/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>

#include "cel.h"
#include "encode.h"
#include "eventlog.h"
#include "fileio.h"
#include "keystrap.h"
#include "log.h"
#include "open.h"

#define FIRMWARE_PCRS 0x000000ffu /* 0-7: what firmware always measures */
/* 8-15 but 10: the OS PCRs, less IMA's, whose log the kernel keeps and keystrap does not replay. */
#define OS_PCRS 0x0000fb00u
#define CEL_FILES_MAX 8

static const char usage[] = "keystrap eventlog [FILE] [--cel LOG]... [--json] [--verify]";

static void show_help(void)
{
	printf("Usage: %s\n\n"
	       "Parse a TCG PC Client firmware event log (legacy SHA-1 or crypto-agile), replay it\n"
	       "in software in every bank it records, and print the PCR values it leads to.\n\n"
	       "  FILE       the log; default " FIRMWARE_LOG "\n"
	       "  --cel LOG  also replay a userspace measurement log in TCG CEL-JSON form (keystrap's\n"
	       "             /run/log/keystrap/tpm2-measure.log, systemd's tpm2-measure.log); may\n"
	       "             be repeated, records are then merged by their timestamps\n"
	       "  --json     every event (PCR, type, digests, a decoded description), every CEL\n"
	       "             record and the PCRs, as JSON\n"
	       "  --verify   read the TPM's PCRs and compare, per bank and PCR: PCRs 0-7 and every\n"
	       "             PCR the logs extend, and with --cel PCRs 8-15 (but IMA's 10), in each\n"
	       "             bank both the firmware log and the TPM have; exit 1 naming each PCR\n"
	       "             that differs\n\n"
	       "Only digests are replayed; decoded event data is informational. A malformed log is\n"
	       "refused with the byte offset and the reason. The TPM is reached through\n"
	       "KEYSTRAP_TCTI (default " TPM_TCTI_DEFAULT ").\n",
	       usage);
}

struct replay_view {
	const struct eventlog *log;
	const struct cel *cel;
	const char *const *cel_paths;
	const struct pcr_replay *replay;
	uint32_t banks; /* banks worth showing */
};

static void print_pcrs(const struct replay_view *v)
{
	for (size_t b = 0; b < PCR_BANKS; b++) {
		const struct pcr_bank *bank = pcr_bank_by_index(b);

		if (!(v->banks & (1u << b)))
			continue;
		printf("%s:\n", bank->name);
		for (unsigned i = 0; i < PCR_COUNT; i++) {
			char h[2 * PCR_DIGEST_MAX + 1];

			if (!(v->replay->extended[b] & (1u << i)))
				continue;
			if (v->replay->unknown[b] & (1u << i)) {
				printf("  %-2u : unknown (the event at offset %zu has no %s digest)\n", i,
				       v->replay->unknown_offset[b][i], bank->name);
				continue;
			}
			hex_encode(v->replay->values[b][i], bank->size, h);
			printf("  %-2u : 0x%s\n", i, h);
		}
	}
}

static struct json_object *json_digests(const struct eventlog *log, const struct eventlog_event *e)
{
	struct json_object *a = json_object_new_array();

	for (unsigned i = 0; i < e->n_digests; i++) {
		struct json_object *d = json_object_new_object();
		char h[2 * PCR_DIGEST_MAX + 1];

		hex_encode(log->data + e->digests[i].offset, e->digests[i].bank->size, h);
		json_object_object_add(d, "hashAlg", json_object_new_string(e->digests[i].bank->name));
		json_object_object_add(d, "digest", json_object_new_string(h));
		json_object_array_add(a, d);
	}
	return a;
}

static struct json_object *json_events(const struct eventlog *log)
{
	struct json_object *a = json_object_new_array();

	for (size_t n = 0; n < log->n_events; n++) {
		const struct eventlog_event *e = &log->events[n];
		struct json_object *o = json_object_new_object();
		const char *name = eventlog_type_name(e->type);
		char type[16], desc[512];

		snprintf(type, sizeof(type), "0x%08x", e->type);
		eventlog_describe(log, e, desc, sizeof(desc));
		json_object_object_add(o, "number", json_object_new_uint64(n));
		json_object_object_add(o, "offset", json_object_new_uint64(e->offset));
		json_object_object_add(o, "pcr", json_object_new_int64(e->pcr));
		json_object_object_add(o, "type", json_object_new_string(name ? name : type));
		json_object_object_add(o, "type_value", json_object_new_uint64(e->type));
		json_object_object_add(o, "digests", json_digests(log, e));
		json_object_object_add(o, "data_offset", json_object_new_uint64(e->data_offset));
		json_object_object_add(o, "data_size", json_object_new_uint64(e->data_size));
		json_object_object_add(o, "description", json_object_new_string(desc));
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *json_cel(const struct replay_view *v)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; i < v->cel->n_records; i++) {
		const struct cel_record *r = &v->cel->records[i];
		struct json_object *o = json_object_new_object(), *d = json_object_new_array();

		json_object_object_add(o, "file", json_object_new_string(v->cel_paths[r->file]));
		json_object_object_add(o, "offset", json_object_new_uint64(r->offset));
		json_object_object_add(o, "pcr", json_object_new_int((int)r->pcr));
		for (unsigned j = 0; j < r->n_digests; j++) {
			struct json_object *e = json_object_new_object();
			char h[2 * PCR_DIGEST_MAX + 1];

			hex_encode(r->digests[j].value, r->digests[j].bank->size, h);
			json_object_object_add(e, "hashAlg", json_object_new_string(r->digests[j].bank->name));
			json_object_object_add(e, "digest", json_object_new_string(h));
			json_object_array_add(d, e);
		}
		json_object_object_add(o, "digests", d);
		if (r->content_type)
			json_object_object_add(o, "content_type", json_object_new_string(r->content_type));
		if (r->string)
			json_object_object_add(o, "string", json_object_new_string(r->string));
		json_object_array_add(a, o);
	}
	return a;
}

static void print_json(const char *path, const struct replay_view *v)
{
	struct json_object *root = json_object_new_object(), *banks = json_object_new_array();
	struct json_object *pcrs = json_object_new_object(), *unknown = json_object_new_array();
	const struct eventlog *log = v->log;

	json_object_object_add(root, "file", json_object_new_string(path));
	json_object_object_add(root, "format", json_object_new_string(log->agile ? "crypto-agile" : "sha1"));
	json_object_object_add(root, "startup_locality", json_object_new_int(log->locality));
	json_object_object_add(root, "padding", json_object_new_uint64(log->padding));
	for (size_t b = 0; b < PCR_BANKS; b++) {
		const struct pcr_bank *bank = pcr_bank_by_index(b);
		struct json_object *values;

		if (!(v->banks & (1u << b)))
			continue;
		json_object_array_add(banks, json_object_new_string(bank->name));
		values = json_object_new_object();
		for (unsigned i = 0; i < PCR_COUNT; i++) {
			char key[4], h[2 * PCR_DIGEST_MAX + 1];

			if (!(v->replay->extended[b] & (1u << i)))
				continue;
			snprintf(key, sizeof(key), "%u", i);
			if (v->replay->unknown[b] & (1u << i)) {
				struct json_object *u = json_object_new_object();

				json_object_object_add(u, "hashAlg", json_object_new_string(bank->name));
				json_object_object_add(u, "pcr", json_object_new_int((int)i));
				json_object_object_add(u, "offset",
						       json_object_new_uint64(v->replay->unknown_offset[b][i]));
				json_object_array_add(unknown, u);
				json_object_object_add(values, key, NULL);
				continue;
			}
			hex_encode(v->replay->values[b][i], bank->size, h);
			json_object_object_add(values, key, json_object_new_string(h));
		}
		json_object_object_add(pcrs, bank->name, values);
	}
	json_object_object_add(root, "banks", banks);
	json_object_object_add(root, "events", json_events(log));
	json_object_object_add(root, "cel_records", json_cel(v));
	json_object_object_add(root, "pcrs", pcrs);
	json_object_object_add(root, "unknown", unknown);
	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
}

/* Compares one bank; returns how many PCRs differ or cannot be known, or -errno. */
static int verify_bank(struct tpm *t, const struct replay_view *v, const struct pcr_bank *bank,
		       uint32_t mask, char *bad, size_t bad_size)
{
	uint8_t tpm[PCR_COUNT][PCR_DIGEST_MAX];
	size_t b = pcr_bank_index(bank), o = strlen(bad);
	int r, failed = 0;

	r = tpm_pcr_read(t, bank, mask, tpm);
	if (r < 0)
		return r;
	printf("%s:\n", bank->name);
	for (unsigned i = 0; i < PCR_COUNT; i++) {
		char have[2 * PCR_DIGEST_MAX + 1], want[2 * PCR_DIGEST_MAX + 1];
		int k;

		if (!(mask & (1u << i)))
			continue;
		hex_encode(tpm[i], bank->size, have);
		if (v->replay->unknown[b] & (1u << i)) {
			printf("  %-2u : UNKNOWN: the event at offset %zu has no %s digest; TPM has 0x%s\n",
			       i, v->replay->unknown_offset[b][i], bank->name, have);
		} else if (memcmp(tpm[i], v->replay->values[b][i], bank->size) != 0) {
			hex_encode(v->replay->values[b][i], bank->size, want);
			printf("  %-2u : MISMATCH: log replays to 0x%s, TPM has 0x%s\n", i, want, have);
		} else {
			printf("  %-2u : ok 0x%s\n", i, have);
			continue;
		}
		failed++;
		k = snprintf(bad + o, bad_size - o, "%s%u (%s)", *bad ? ", " : "", i, bank->name);
		if (k > 0 && (size_t)k < bad_size - o)
			o += (size_t)k;
	}
	return failed;
}

static int verify(const struct replay_view *v, uint32_t extra)
{
	_cleanup_tpm_ struct tpm *t = NULL;
	uint32_t mask = FIRMWARE_PCRS | pcr_replay_touched(v->replay) | extra;
	char bad[512] = "", checked[256] = "", skipped[128] = "", pcrs[80];
	int r, failed = 0, banks = 0;

	r = tpm_connect(&t);
	if (r < 0)
		return r;
	pcr_mask_format(mask, pcrs, sizeof(pcrs));
	for (size_t b = 0; b < PCR_BANKS; b++) {
		const struct pcr_bank *bank = pcr_bank_by_index(b);

		if (!(v->banks & (1u << b)))
			continue;
		r = verify_bank(t, v, bank, mask, bad, sizeof(bad));
		if (r == -EOPNOTSUPP) {
			snprintf(skipped + strlen(skipped), sizeof(skipped) - strlen(skipped), "%s%s",
				 *skipped ? ", " : "", bank->name);
			continue;
		}
		if (r < 0)
			return log_error_errno(r, "cannot read %s PCRs: %s", bank->name, tpm_failure_reason(r));
		failed += r;
		banks++;
		snprintf(checked + strlen(checked), sizeof(checked) - strlen(checked), "%s%s",
			 *checked ? ", " : "", bank->name);
	}
	if (*skipped)
		printf("not active on the TPM, not checked: %s\n", skipped);
	/* The verdict comes after the table it sums up, also when both go to one pipe. */
	fflush(stdout);
	if (banks == 0)
		return log_error_errno(-EOPNOTSUPP, "the TPM has none of the banks the log records (%s)",
				       skipped);
	if (failed)
		return log_error_errno(-EBADMSG, "the log does not replay to the TPM's PCRs: PCR %s", bad);
	printf("the log replays to the TPM's PCRs %s (%s)\n", pcrs, checked);
	return 0;
}

/* Reads every CEL log into c, in timestamp order, and replays it after the firmware log. */
static int read_cel(const char *const *paths, unsigned n, struct cel *c, struct pcr_replay *replay)
{
	for (unsigned i = 0; i < n; i++) {
		_cleanup_free_ uint8_t *data = NULL;
		char err[CEL_ERROR_MAX];
		size_t size;
		int r;

		r = read_file(paths[i], FIRMWARE_LOG_MAX, &data, &size);
		if (r < 0) {
			cel_done(c);
			return log_error_errno(r, "cannot read measurement log '%s': %s", paths[i],
					       r == -EFBIG ? "larger than 16 MiB" : strerror(-r));
		}
		r = cel_parse(c, i, (const char *)data, size, err);
		if (r < 0) {
			cel_done(c);
			return log_error_errno(r, "%s: %s", paths[i], r == -EBADMSG ? err : strerror(-r));
		}
	}
	cel_sort(c);
	if (cel_replay(c, replay) < 0) {
		cel_done(c);
		return log_error_errno(-EOPNOTSUPP, "cannot replay the measurement logs: a hash is unavailable");
	}
	return 0;
}

int cmd_eventlog(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cel", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "verify", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	_cleanup_eventlog_ struct eventlog *log = NULL;
	_cleanup_free_ uint8_t *data = NULL;
	const char *path = FIRMWARE_LOG, *cel_paths[CEL_FILES_MAX];
	bool json = false, do_verify = false;
	struct cel cel = { 0 };
	struct pcr_replay replay;
	struct replay_view v;
	unsigned n_cel = 0;
	int opt, r;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (opt) {
		case 'c':
			if (n_cel == CEL_FILES_MAX)
				return usage_error(usage, "at most %d --cel logs", CEL_FILES_MAX);
			cel_paths[n_cel++] = optarg;
			break;
		case 'j': json = true; break;
		case 'v': do_verify = true; break;
		case 'h': show_help(); return 0;
		default: return usage_error(usage, "invalid option");
		}
	}
	if (optind < argc)
		path = argv[optind++];
	if (optind < argc)
		return usage_error(usage, "unexpected argument '%s'", argv[optind]);

	if (read_event_log(path, &data, &log) < 0)
		return 1;

	replay = log->replay;
	r = read_cel(cel_paths, n_cel, &cel, &replay);
	if (r < 0)
		return 1;
	v = (struct replay_view){ .log = log, .cel = &cel, .cel_paths = cel_paths, .replay = &replay,
				  .banks = log->banks };
	if (do_verify)
		r = verify(&v, n_cel ? OS_PCRS : 0) < 0 ? 1 : 0;
	else if (json)
		print_json(path, &v);
	else {
		printf("# %s: %s log, %zu events", path, log->agile ? "crypto-agile" : "SHA-1", log->n_events);
		if (log->padding)
			printf(", %zu bytes of zero padding", log->padding);
		if (n_cel)
			printf("; %zu CEL records", cel.n_records);
		printf("\n");
		print_pcrs(&v);
	}
	cel_done(&cel);
	return r;
}
