/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server node list|approve|revoke: only an operator moves a node out of "requested";
 * a node can ask to enrol, never approve itself. Every change is an audit record.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "attest-msg.h"
#include "json-cleanup.h"
#include "log.h"
#include "payload.h"
#include "server-config.h"
#include "store.h"

static const char usage[] = "keystrap-server node list [--json] --config FILE\n"
			    "       keystrap-server node approve EK-HASH [--id NODE-ID] [--group GROUP] --config FILE\n"
			    "       keystrap-server node revoke EK-HASH --config FILE";

/* A value of node list --json: null for what the text shows as "-" (or -1: no quote yet). */
static json_object *str_or_null(const char *s)
{
	return s[0] ? json_object_new_string(s) : NULL;
}

static json_object *count_or_null(int64_t n)
{
	return n >= 0 ? json_object_new_int64(n) : NULL;
}

static int list_json(const struct node_rec *n, void *userdata)
{
	json_object *list = userdata, *o = json_object_new_object();

	if (!o || json_object_array_add(list, o) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	json_object_object_add(o, "ek_hash", json_object_new_string(n->ek_hash));
	json_object_object_add(o, "state", json_object_new_string(node_state_name(n->state)));
	json_object_object_add(o, "node_id", str_or_null(n->node_id));
	json_object_object_add(o, "peer", str_or_null(n->peer));
	json_object_object_add(o, "group", str_or_null(n->group));
	json_object_object_add(o, "requested_us", json_object_new_int64(n->requested_us));
	json_object_object_add(o, "changed_us", json_object_new_int64(n->changed_us));
	json_object_object_add(o, "reset_count", count_or_null(n->reset_count));
	json_object_object_add(o, "restart_count", count_or_null(n->restart_count));
	return 0;
}

static int list_one(const struct node_rec *n, void *userdata)
{
	(void)userdata;
	printf("%s %-9s %s %s %s\n", n->ek_hash, node_state_name(n->state), n->node_id[0] ? n->node_id : "-",
	       n->peer[0] ? n->peer : "-", n->group[0] ? n->group : "-");
	return 0;
}

/* node list --json: one array, every node, by request time. */
static int list(struct store *s, bool json)
{
	_cleanup_json_ json_object *all = NULL;
	int r;

	if (!json)
		return store_node_foreach(s, list_one, NULL) < 0 ? 1 : 0;
	all = json_object_new_array();
	r = all ? store_node_foreach(s, list_json, all) : -ENOMEM;
	if (r < 0) {
		fprintf(stderr, "keystrap-server: cannot list the node registry: %s\n", strerror(-r));
		return 1;
	}
	admin_json_print(all);
	return 0;
}

static int change(struct store *s, const char *verb, const char *ek, const char *id, const char *group)
{
	struct node_rec n;
	enum node_state to = streq(verb, "approve") ? NODE_APPROVED : NODE_REVOKED;
	char node_id[NODE_ID_MAX + 1], who[64], reason[192];
	struct audit_rec a;
	int r;

	if (strlen(ek) != EK_HASH_HEX || strspn(ek, "0123456789abcdef") != EK_HASH_HEX) {
		fprintf(stderr, "keystrap-server: '%s' is not an EK hash (64 lower-case hex digits)\n", ek);
		return 1;
	}
	if (id && !attest_node_id_valid(id)) {
		fprintf(stderr, "keystrap-server: '%s' is not a node id ([a-z0-9.-], at most 64)\n", id);
		return 1;
	}
	if (group && !keystrap_name_valid(group, strlen(group), GROUP_MAX)) {
		fprintf(stderr, "keystrap-server: '%s' is not a group name ([A-Za-z0-9._-], at most %d)\n", group,
			GROUP_MAX);
		return 1;
	}
	if ((r = store_begin(s)) < 0)
		goto fail;
	r = store_node_get(s, ek, &n);
	if (r == -ENOENT) {
		store_rollback(s);
		fprintf(stderr, "keystrap-server: no node with EK hash %s has asked to enrol\n", ek);
		return 1;
	}
	if (r < 0)
		goto fail;
	snprintf(node_id, sizeof(node_id), "%s", id ? id : n.node_id[0] ? n.node_id : "");
	if (!node_id[0])
		snprintf(node_id, sizeof(node_id), "node-%.16s", ek);
	if (to == NODE_APPROVED && store_node_id_taken(s, node_id, ek) == -EEXIST) {
		store_rollback(s);
		fprintf(stderr, "keystrap-server: node id '%s' belongs to another EK\n", node_id);
		return 1;
	}
	admin_operator(who, sizeof(who));
	snprintf(reason, sizeof(reason), "%s -> %s, group %s, by %s", node_state_name(n.state), node_state_name(to),
		 group ? group : n.group, who);
	a = (struct audit_rec){ .time_us = now_usec(), .peer = "local", .ek_hash = ek, .node_id = node_id,
				.action = to == NODE_APPROVED ? "node-approve" : "node-revoke", .decision = "allow",
				.reasons = reason };
	if ((r = store_node_set_state(s, ek, to, node_id, group, now_usec())) < 0 || (r = store_audit_append(s, &a)) < 0 ||
	    (r = store_commit(s)) < 0)
		goto fail;
	printf("%s %s %s\n", ek, node_state_name(to), node_id);
	return 0;
fail:
	store_rollback(s);
	fprintf(stderr, "keystrap-server: node %s failed: %s\n", verb, strerror(-r));
	return 1;
}

int cmd_node(int argc, char **argv)
{
	_cleanup_store_ struct store *s = NULL;
	const char *verb, *arg = NULL, *id = NULL, *group = NULL;
	bool json = false;
	int r;

	r = admin_open(argc, argv, usage, &(struct admin_options){ .id = &id, .group = &group, .json = &json }, &verb,
		       &arg, &s);
	if (r != 0)
		return r;
	if (streq(verb, "list") && !arg && !id && !group)
		return list(s, json);
	if ((streq(verb, "approve") || (streq(verb, "revoke") && !id && !group)) && arg && !json)
		return change(s, verb, arg, id, group);
	fprintf(stderr, "Usage: %s\n", usage);
	return EXIT_USAGE;
}
