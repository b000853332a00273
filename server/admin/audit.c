/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server audit verify|export: the audit log is a hash chain (server/store/audit-chain.c).
 * An edited record no longer matches its hash; a removed or reordered one breaks
 * the sequence or the link. Removing records from the end is only visible against a head
 * recorded elsewhere: verify prints the head so it can be kept.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>

#include "admin.h"
#include "encode.h"
#include "json-cleanup.h"
#include "ossl.h"
#include "server-config.h"
#include "store.h"

struct verify {
	int64_t expect_seq;
	uint8_t prev[32];
	int64_t bad_seq;
	char why[128];
};

static int verify_one(const struct audit_rec *r, void *userdata)
{
	struct verify *v = userdata;
	uint8_t h[32];

	if (r->seq != v->expect_seq) {
		snprintf(v->why, sizeof(v->why), "record %" PRId64 " follows %" PRId64 " (removed or reordered records)",
			 r->seq, v->expect_seq - 1);
		v->bad_seq = r->seq;
		return -EBADMSG;
	}
	if (memcmp(r->prev_hash, v->prev, 32) != 0) {
		snprintf(v->why, sizeof(v->why), "record %" PRId64 " does not link to the record before it", r->seq);
		v->bad_seq = r->seq;
		return -EBADMSG;
	}
	if (audit_rec_hash(r, h) < 0 || memcmp(h, r->hash, 32) != 0) {
		snprintf(v->why, sizeof(v->why), "record %" PRId64 " does not match its hash (edited)", r->seq);
		v->bad_seq = r->seq;
		return -EBADMSG;
	}
	memcpy(v->prev, r->hash, 32);
	v->expect_seq++;
	return 0;
}

static int export_one(const struct audit_rec *r, void *userdata)
{
	json_object *o = json_object_new_object();
	char prev[65], hash[65];

	(void)userdata;
	if (!o)
		return -ENOMEM;
	hex_encode(r->prev_hash, 32, prev);
	hex_encode(r->hash, 32, hash);
	json_object_object_add(o, "seq", json_object_new_int64(r->seq));
	json_object_object_add(o, "time_us", json_object_new_int64(r->time_us));
	json_object_object_add(o, "peer", json_object_new_string(r->peer ? r->peer : ""));
	json_object_object_add(o, "ek_hash", json_object_new_string(r->ek_hash ? r->ek_hash : ""));
	json_object_object_add(o, "node_id", json_object_new_string(r->node_id ? r->node_id : ""));
	json_object_object_add(o, "action", json_object_new_string(r->action ? r->action : ""));
	json_object_object_add(o, "decision", json_object_new_string(r->decision ? r->decision : ""));
	json_object_object_add(o, "reasons", json_object_new_string(r->reasons ? r->reasons : ""));
	json_object_object_add(o, "prev_hash", json_object_new_string(prev));
	json_object_object_add(o, "hash", json_object_new_string(hash));
	admin_json_print(o);
	json_object_put(o);
	return 0;
}

static const char usage[] = "keystrap-server audit verify [--json] --config FILE\n"
			    "       keystrap-server audit export --config FILE";

/* audit verify --json: {"intact": true, "records": N, "head": HEX}, or intact false, the
 * first bad record's seq and why. */
static void verify_json(const struct verify *v, bool intact)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	char head[65];

	json_object_object_add(o, "intact", json_object_new_boolean(intact));
	json_object_object_add(o, "records", json_object_new_int64(v->expect_seq - 1));
	if (intact) {
		hex_encode(v->prev, 32, head);
		json_object_object_add(o, "head", json_object_new_string(head));
	} else {
		json_object_object_add(o, "broken_at", json_object_new_int64(v->bad_seq));
		json_object_object_add(o, "reason", json_object_new_string(v->why));
	}
	admin_json_print(o);
}

int cmd_audit(int argc, char **argv)
{
	_cleanup_store_ struct store *s = NULL;
	struct verify v = { .expect_seq = 1 };
	const char *verb;
	bool json = false;
	char head[65];
	int r;

	r = admin_open(argc, argv, usage, &(struct admin_options){ .json = &json }, &verb, NULL, &s);
	if (r != 0)
		return r;
	if (streq(verb, "export") && json) {
		fprintf(stderr, "keystrap-server: audit export is JSON already (--json goes with verify)\nUsage: %s\n",
			usage);
		return EXIT_USAGE;
	}
	if (streq(verb, "export"))
		return store_audit_foreach(s, export_one, NULL) < 0 ? 1 : 0;
	if (!streq(verb, "verify")) {
		fprintf(stderr, "keystrap-server: unknown audit command '%s'\nUsage: %s\n", verb, usage);
		return EXIT_USAGE;
	}
	r = store_audit_foreach(s, verify_one, &v);
	if (r == -EBADMSG) {
		if (json)
			verify_json(&v, false);
		fprintf(stderr, "keystrap-server: audit chain broken: %s\n", v.why);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "keystrap-server: cannot read the audit log: %s\n", strerror(-r));
		return 1;
	}
	if (json) {
		verify_json(&v, true);
		return 0;
	}
	hex_encode(v.prev, 32, head);
	printf("audit chain intact: %" PRId64 " records, head %s\n", v.expect_seq - 1, head);
	return 0;
}
