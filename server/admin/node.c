/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server node list|show|approve|revoke: only an operator moves a node out of
 * "requested"; a node can ask to enrol, never approve itself. An operator may approve an EK
 * before it ever asked (from an inventory): it is admitted at its first attestation. Every
 * change, and every approval refused, is an audit record.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "attest-msg.h"
#include "encode.h"
#include "fileio.h"
#include "handshake.h"
#include "json-cleanup.h"
#include "log.h"
#include "payload.h"
#include "server-config.h"
#include "store.h"

static const char usage[] = "keystrap-server node list [--full] [--json] --config FILE\n"
			    "       keystrap-server node show EK-HASH|NODE-ID [--json] --config FILE\n"
			    "       keystrap-server node approve EK-HASH|NODE-ID [--id NODE-ID] [--group GROUP|--probe] [--reinstate] --config FILE\n"
			    "       keystrap-server node approve --file FILE [--group GROUP] --config FILE\n"
			    "       keystrap-server node revoke EK-HASH|NODE-ID --config FILE";

/* An inventory of a whole fleet fits; anything larger is not a list of EK hashes. */
#define EK_FILE_MAX (16u << 20)
/* node show: the newest audit records about the node. */
#define HISTORY_MAX 20

static bool ek_hash_valid(const char *s)
{
	return strlen(s) == EK_HASH_HEX && strspn(s, "0123456789abcdef") == EK_HASH_HEX;
}

/* A value of --json output: null for what the text shows as "-". */
static json_object *str_or_null(const char *s)
{
	return s[0] ? json_object_new_string(s) : NULL;
}

static json_object *count_or_null(int64_t n)
{
	return n >= 0 ? json_object_new_int64(n) : NULL;
}

static json_object *time_or_null(int64_t t)
{
	return t > 0 ? json_object_new_int64(t) : NULL;
}

static json_object *node_json(const struct node_rec *n)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	json_object_object_add(o, "ek_hash", json_object_new_string(n->ek_hash));
	json_object_object_add(o, "state", json_object_new_string(node_state_name(n->state)));
	json_object_object_add(o, "node_id", str_or_null(n->node_id));
	json_object_object_add(o, "peer", str_or_null(n->peer));
	json_object_object_add(o, "group", str_or_null(n->group));
	json_object_object_add(o, "requested_us", json_object_new_int64(n->requested_us));
	json_object_object_add(o, "changed_us", json_object_new_int64(n->changed_us));
	json_object_object_add(o, "reset_count", count_or_null(n->reset_count));
	json_object_object_add(o, "restart_count", count_or_null(n->restart_count));
	json_object_object_add(o, "attested_us", time_or_null(n->attested_us));
	json_object_object_add(o, "cert_serial", str_or_null(n->cert_serial));
	json_object_object_add(o, "cert_not_after", time_or_null(n->cert_not_after));
	return o;
}

static int list_json(const struct node_rec *n, void *userdata)
{
	json_object *list = userdata, *o = node_json(n);

	if (!o || json_object_array_add(list, o) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	return 0;
}

/* "2026-11-22 05:40:00 UTC", or "-" for never. */
static const char *when(int64_t unix_s, char buf[UTC_TIME_MAX])
{
	return unix_s > 0 ? utc_time_format(unix_s, buf) : "-";
}

#define LIST_FORMAT "%-24s %-*.*s %-12s %-9s %-23s %s\n"

static int list_one(const struct node_rec *n, void *userdata)
{
	const bool *full = userdata;
	char attested[UTC_TIME_MAX], expires[UTC_TIME_MAX];

	int w = *full ? EK_HASH_HEX : 16;

	printf(LIST_FORMAT, n->node_id[0] ? n->node_id : "-", w, w, n->ek_hash,
	       n->group[0] ? n->group : "-", node_state_name(n->state), when(n->attested_us / 1000000, attested),
	       when(n->cert_not_after, expires));
	return 0;
}

/* node list: a header and one line per node, by request time; --json: one array. */
static int list(struct store *s, bool json, bool full)
{
	_cleanup_json_ json_object *all = NULL;
	int r;

	if (!json) {
		int w = full ? EK_HASH_HEX : 16;

		printf(LIST_FORMAT, "ID", w, w, "EK", "GROUP", "STATE", "LAST ATTESTED",
		       "CERT EXPIRES");
		r = store_node_foreach(s, list_one, &full);
	} else {
		all = json_object_new_array();
		r = all ? store_node_foreach(s, list_json, all) : -ENOMEM;
	}
	if (r < 0) {
		fprintf(stderr, "keystrap-server: cannot list the node registry: %s\n", strerror(-r));
		return 1;
	}
	if (json)
		admin_json_print(all);
	return 0;
}

/* An operator names a node by EK hash or by node id: -ENOENT (said) when none is either. */
static int find(struct store *s, const char *arg, struct node_rec *ret)
{
	int r;

	if (ek_hash_valid(arg)) {
		r = store_node_get(s, arg, ret);
		if (r == -ENOENT)
			fprintf(stderr, "keystrap-server: no node with EK hash %s\n", arg);
	} else if (attest_node_id_valid(arg)) {
		r = store_node_get_by_id(s, arg, ret);
		if (r == -ENOENT)
			fprintf(stderr, "keystrap-server: no node with id '%s'\n", arg);
	} else {
		fprintf(stderr, "keystrap-server: '%s' is neither an EK hash (64 lower-case hex digits) nor a node id\n",
			arg);
		return -EINVAL;
	}
	if (r < 0 && r != -ENOENT)
		fprintf(stderr, "keystrap-server: cannot read the node registry: %s\n", strerror(-r));
	return r;
}

/* "certificate SERIAL issued under ...": the serial of an allowed attestation's record. */
static json_object *serial_of(const struct audit_rec *a)
{
	char serial[41];

	if (sscanf(a->reasons, "certificate %40[0-9A-Fa-f] issued", serial) != 1)
		return NULL;
	return json_object_new_string(serial);
}

static int history_one(const struct audit_rec *a, void *userdata)
{
	json_object *list = userdata, *o = json_object_new_object();

	if (!o || json_object_array_add(list, o) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	json_object_object_add(o, "seq", json_object_new_int64(a->seq));
	json_object_object_add(o, "time_us", json_object_new_int64(a->time_us));
	json_object_object_add(o, "action", json_object_new_string(a->action));
	json_object_object_add(o, "decision", json_object_new_string(a->decision));
	json_object_object_add(o, "reasons", json_object_new_string(a->reasons));
	json_object_object_add(o, "serial", serial_of(a));
	return 0;
}

/* node show: the registry's row and the newest audit records about the node. */
static int show(struct store *s, const char *arg, bool json)
{
	_cleanup_json_ json_object *o = NULL;
	json_object *history;
	char t[UTC_TIME_MAX];
	struct node_rec n;
	size_t len;
	int r;

	if (find(s, arg, &n) < 0)
		return 1;
	o = node_json(&n);
	history = json_object_new_array();
	if (!o || !history || json_object_object_add(o, "history", history) < 0) {
		json_object_put(history);
		return 1;
	}
	if ((r = store_audit_foreach_ek(s, n.ek_hash, HISTORY_MAX, history_one, history)) < 0) {
		fprintf(stderr, "keystrap-server: cannot read the audit log: %s\n", strerror(-r));
		return 1;
	}
	if (json) {
		admin_json_print(o);
		return 0;
	}
	printf("%-15s%s\n%-15s%s\n%-15s%s\n%-15s%s\n", "id:", n.node_id[0] ? n.node_id : "-", "ek:", n.ek_hash,
	       "group:", n.group, "state:", node_state_name(n.state));
	printf("%-15s%s\n", "requested:", when(n.requested_us / 1000000, t));
	printf("%-15s%s\n", "changed:", when(n.changed_us / 1000000, t));
	printf("%-15s%s\n", "last attested:", when(n.attested_us / 1000000, t));
	if (n.cert_serial[0])
		printf("%-15s%s, expires %s\n", "certificate:", n.cert_serial, when(n.cert_not_after, t));
	else
		printf("%-15s-\n", "certificate:");
	len = json_object_array_length(history);
	printf("history:%s\n", len ? "" : " none");
	for (size_t i = 0; i < len; i++) {
		json_object *h = json_object_array_get_idx(history, i), *v;

		json_object_object_get_ex(h, "time_us", &v);
		printf("  %s  ", when(json_object_get_int64(v) / 1000000, t));
		json_object_object_get_ex(h, "action", &v);
		printf("%-14s ", json_object_get_string(v));
		json_object_object_get_ex(h, "decision", &v);
		printf("%-6s ", json_object_get_string(v));
		json_object_object_get_ex(h, "reasons", &v);
		printf("%s\n", json_object_get_string(v));
	}
	return 0;
}

static int audit_change(struct store *s, const char *action, const char *decision, const char *ek,
			const char *node_id, const char *reason)
{
	struct audit_rec a = { .time_us = now_usec(), .peer = "local", .ek_hash = ek, .node_id = node_id,
			       .action = action, .decision = decision, .reasons = reason };

	return store_audit_append(s, &a);
}

/*
 * An approval of a revoked node, refused: the operator revoked it on purpose, so only an
 * explicit --reinstate undoes that. Recorded in a transaction of its own (the caller's rolled
 * back): whoever tried is in the log.
 */
static void audit_refused(struct store *s, const char *ek, const char *node_id, const char *why)
{
	char who[64], reason[256];
	int r;

	admin_operator(who, sizeof(who));
	snprintf(reason, sizeof(reason), "%s, by %s", why, who);
	if ((r = store_begin(s)) < 0 || (r = audit_change(s, "node-approve", "deny", ek, node_id, reason)) < 0 ||
	    (r = store_commit(s)) < 0) {
		store_rollback(s);
		fprintf(stderr, "keystrap-server: cannot record the refused approval: %s\n", strerror(-r));
	}
}

struct approval {
	const char *id, *group;
	bool reinstate, probe;
};

/*
 * One approval in the caller's transaction: an EK the registry does not hold is entered as
 * approved (pre-approval). 1 after saying why it is refused (revoked, id taken), < 0 on a
 * store error; ret_id: the node id it holds now.
 */
static int approve_one(struct store *s, const char *ek, const struct node_rec *known, const struct approval *a,
		       char ret_id[NODE_ID_MAX + 1], char *refused, size_t refused_size)
{
	char who[64], reason[192];
	bool pre = !known;
	int64_t now = now_usec();
	int r;

	refused[0] = 0;
	if (known && known->state == NODE_REVOKED && !a->reinstate) {
		snprintf(refused, refused_size, "node %s (EK %s) is revoked: approving it again takes --reinstate",
			 known->node_id[0] ? known->node_id : "-", ek);
		return 1;
	}
	if (known && known->state != NODE_REVOKED && a->reinstate) {
		snprintf(refused, refused_size, "--reinstate: node %s (EK %s) is %s, not revoked",
			 known->node_id[0] ? known->node_id : "-", ek, node_state_name(known->state));
		return 1;
	}
	snprintf(ret_id, NODE_ID_MAX + 1, "%s", a->id ? a->id : known && known->node_id[0] ? known->node_id : "");
	if (!ret_id[0])
		snprintf(ret_id, NODE_ID_MAX + 1, "node-%.16s", ek);
	if ((r = store_node_id_taken(s, ret_id, ek)) == -EEXIST) {
		snprintf(refused, refused_size, "node id '%s' belongs to another EK", ret_id);
		return 1;
	}
	if (r < 0)
		return r;
	/* Never asked: entered as if it had, with no peer, and approved in the same transaction. */
	if (pre && (r = store_node_request(s, ek, "", now)) < 0)
		return r;
	admin_operator(who, sizeof(who));
	snprintf(reason, sizeof(reason), "%s -> approved, group %s, by %s", pre ? "pre-approved" :
		 node_state_name(known->state), a->group ? a->group : pre ? "default" : known->group, who);
	if ((r = store_node_set_state(s, ek, NODE_APPROVED, ret_id, a->group, now)) < 0 ||
	    (r = audit_change(s, a->reinstate ? "node-reinstate" : "node-approve", "allow", ek, ret_id, reason)) < 0)
		return r;
	return 0;
}

static int check_names(const char *id, const char *group)
{
	if (id && !attest_node_id_valid(id)) {
		fprintf(stderr, "keystrap-server: '%s' is not a node id ([a-z0-9.-], at most 64)\n", id);
		return 1;
	}
	/* The node commands take an EK hash or a node id in one place: an id must not be both. */
	if (id && ek_hash_valid(id)) {
		fprintf(stderr, "keystrap-server: '%s' is an EK hash, not a node id\n", id);
		return 1;
	}
	if (group && !keystrap_name_valid(group, strlen(group), GROUP_MAX)) {
		fprintf(stderr, "keystrap-server: '%s' is not a group name ([A-Za-z0-9._-], at most %d)\n", group,
			GROUP_MAX);
		return 1;
	}
	return 0;
}

static int approve(struct store *s, const char *arg, const struct approval *a)
{
	char node_id[NODE_ID_MAX + 1], refused[256];
	struct node_rec n;
	bool known = true;
	int r;

	if (check_names(a->id, a->group))
		return 1;
	if ((r = store_begin(s)) < 0)
		goto fail;
	/* An EK hash nobody has seen is a pre-approval; a node id must name a node. */
	r = ek_hash_valid(arg) ? store_node_get(s, arg, &n) : -ENOENT;
	if (r == -ENOENT && ek_hash_valid(arg))
		known = false;
	else if ((r = find(s, arg, &n)) < 0) {
		store_rollback(s);
		return 1;
	}
	r = approve_one(s, known ? n.ek_hash : arg, known ? &n : NULL, a, node_id, refused, sizeof(refused));
	if (r == 1) {
		store_rollback(s);
		if (known && n.state == NODE_REVOKED)
			audit_refused(s, n.ek_hash, n.node_id, refused);
		fprintf(stderr, "keystrap-server: %s\n", refused);
		return 1;
	}
	if (r < 0 || (r = store_commit(s)) < 0)
		goto fail;
	printf("%s approved %s%s\n", known ? n.ek_hash : arg, node_id,
	       known ? "" : " (pre-approved: admitted at its first attestation)");
	return 0;
fail:
	store_rollback(s);
	fprintf(stderr, "keystrap-server: node approve failed: %s\n", strerror(-r));
	return 1;
}

/*
 * node approve --file: one EK hash a line, '#' starts a comment, blank lines are skipped. The
 * whole file is checked before anything is written and approved in one transaction: a
 * malformed line, or an EK that is revoked, approves nothing.
 */
/* One line of an inventory: the EK hash it holds ("" for none), comment and blanks cut off in place. */
static char *inventory_line(char *line)
{
	size_t len;

	line[strcspn(line, "#")] = 0;
	line += strspn(line, " \t\r");
	len = strlen(line);
	while (len > 0 && strchr(" \t\r", line[len - 1]))
		line[--len] = 0;
	return line;
}

struct inventory_entry {
	char *ek;
	size_t lineno;
};

struct inventory {
	struct inventory_entry *e;
	size_t n;
};

static void inventory_done(struct inventory *v)
{
	free(v->e);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct inventory_entry *x = a, *y = b;
	int c = strcmp(x->ek, y->ek);

	return c ? c : x->lineno < y->lineno ? -1 : x->lineno > y->lineno;
}

/* Sorted, each EK once (at its first line): listing an EK twice approves it once. */
static void inventory_dedup(struct inventory *v)
{
	size_t k = 0;

	qsort(v->e, v->n, sizeof(*v->e), entry_cmp);
	for (size_t i = 0; i < v->n; i++)
		if (k == 0 || !streq(v->e[k - 1].ek, v->e[i].ek))
			v->e[k++] = v->e[i];
	v->n = k;
}

/* Every line well-formed, or nothing: ret holds pointers into data. 1 after saying which line is not. */
static int inventory_parse(const char *path, char *data, struct inventory *ret)
{
	size_t lineno = 0;
	char *next;

	for (char *line = data; line; line = next) {
		struct inventory_entry *e;
		char *ek;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		lineno++;
		ek = inventory_line(line);
		if (!ek[0])
			continue;
		if (!ek_hash_valid(ek)) {
			fprintf(stderr, "keystrap-server: %s:%zu: '%s' is not an EK hash (64 lower-case hex digits): "
					"nothing approved\n", path, lineno, ek);
			return 1;
		}
		e = reallocarray(ret->e, ret->n + 1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		ret->e = e;
		ret->e[ret->n++] = (struct inventory_entry){ .ek = ek, .lineno = lineno };
	}
	inventory_dedup(ret);
	return 0;
}

/*
 * node approve --file: one EK hash a line, '#' starts a comment, blank lines are skipped. The
 * whole file is checked before anything is written and approved in one transaction: a
 * malformed line, or an EK that is revoked, approves nothing.
 */
static int approve_file(struct store *s, const char *path, const struct approval *a)
{
	_cleanup_free_ uint8_t *data = NULL;
	_cleanup_(inventory_done) struct inventory v = {};
	char node_id[NODE_ID_MAX + 1], refused[256];
	size_t size, count = 0, fresh = 0;
	int r;

	if (check_names(NULL, a->group))
		return 1;
	if ((r = read_file(path, EK_FILE_MAX, &data, &size)) < 0) {
		fprintf(stderr, "keystrap-server: cannot read '%s': %s\n", path, strerror(-r));
		return 1;
	}
	if (memchr(data, 0, size)) {
		fprintf(stderr, "keystrap-server: '%s' is not a text file (a NUL byte): nothing approved\n", path);
		return 1;
	}
	if ((r = inventory_parse(path, (char *)data, &v)) == 1)
		return 1;
	if (r < 0 || (r = store_begin(s)) < 0)
		goto fail;
	for (size_t i = 0; i < v.n; i++) {
		struct node_rec n;
		bool known;

		r = store_node_get(s, v.e[i].ek, &n);
		if (r < 0 && r != -ENOENT)
			goto fail;
		known = r == 0;
		/* Approved already: nothing to change unless a group is given. */
		if (known && n.state == NODE_APPROVED && !a->group) {
			count++;
			continue;
		}
		r = approve_one(s, v.e[i].ek, known ? &n : NULL, a, node_id, refused, sizeof(refused));
		if (r == 1) {
			store_rollback(s);
			if (known && n.state == NODE_REVOKED)
				audit_refused(s, v.e[i].ek, n.node_id, refused);
			fprintf(stderr, "keystrap-server: %s:%zu: %s: nothing approved\n", path, v.e[i].lineno, refused);
			return 1;
		}
		if (r < 0)
			goto fail;
		count++;
		fresh += !known;
	}
	if ((r = store_commit(s)) < 0)
		goto fail;
	printf("%zu EKs approved from %s (%zu pre-approved: admitted at their first attestation)\n", count, path, fresh);
	return 0;
fail:
	store_rollback(s);
	fprintf(stderr, "keystrap-server: node approve --file failed, nothing approved: %s\n", strerror(-r));
	return 1;
}

static int node_revoke(struct store *s, const char *arg)
{
	char who[64], reason[192];
	struct node_rec n;
	int r;

	if ((r = store_begin(s)) < 0)
		goto fail;
	if (find(s, arg, &n) < 0) {
		store_rollback(s);
		return 1;
	}
	admin_operator(who, sizeof(who));
	snprintf(reason, sizeof(reason), "%s -> revoked, group %s, by %s", node_state_name(n.state), n.group, who);
	if (!n.node_id[0])
		snprintf(n.node_id, sizeof(n.node_id), "node-%.16s", n.ek_hash);
	if ((r = store_node_set_state(s, n.ek_hash, NODE_REVOKED, n.node_id, NULL, now_usec())) < 0 ||
	    (r = audit_change(s, "node-revoke", "allow", n.ek_hash, n.node_id, reason)) < 0 ||
	    (r = store_commit(s)) < 0)
		goto fail;
	printf("%s revoked %s\n", n.ek_hash, n.node_id);
	return 0;
fail:
	store_rollback(s);
	fprintf(stderr, "keystrap-server: node revoke failed: %s\n", strerror(-r));
	return 1;
}

int cmd_node(int argc, char **argv)
{
	_cleanup_store_ struct store *s = NULL;
	const char *verb, *arg = NULL, *file = NULL;
	struct approval a = {};
	bool json = false, full = false;
	int r;

	r = admin_open(argc, argv, usage,
		       &(struct admin_options){ .id = &a.id, .group = &a.group, .json = &json, .file = &file,
						.full = &full, .reinstate = &a.reinstate, .probe = &a.probe },
		       &verb, &arg, &s);
	if (r != 0)
		return r;
	/* A probe is a node of the probe group (never released a secret): --probe is how it gets there. */
	if (a.probe && a.group) {
		fprintf(stderr, "Usage: %s\n", usage);
		return EXIT_USAGE;
	}
	if (a.group && streq(a.group, NODE_GROUP_PROBE))
		return admin_refuse("group '%s' is the probe nodes': approve a probe with --probe", a.group);
	if (a.probe) {
		if (!streq(verb, "approve") || file)
			return admin_refuse("--probe approves one node as a probe: node approve EK-HASH|NODE-ID --probe");
		a.group = NODE_GROUP_PROBE;
	}
	if (streq(verb, "list") && !arg && !a.id && !a.group && !file && !a.reinstate)
		return list(s, json, full);
	if (streq(verb, "show") && arg && !a.id && !a.group && !file && !full && !a.reinstate)
		return show(s, arg, json);
	if (streq(verb, "approve") && file && !arg && !a.id && !json && !full && !a.reinstate)
		return approve_file(s, file, &a);
	if (streq(verb, "approve") && arg && !file && !json && !full)
		return approve(s, arg, &a);
	if (streq(verb, "revoke") && arg && !a.id && !a.group && !file && !json && !full && !a.reinstate)
		return node_revoke(s, arg);
	fprintf(stderr, "Usage: %s\n", usage);
	return EXIT_USAGE;
}
