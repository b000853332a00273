/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include <event2/event.h>

#include "handshake.h"
#include "metrics.h"

/*
 * The operators' read-only dashboard: server-rendered HTML (no script, no external asset) and
 * the same pages as JSON (?format=json or Accept: application/json), on the admin listener
 * only, never on the nodes' port. admin_listen is "unix:PATH": a socket created owner-only
 * (0600) before it listens, so only the server's user (and root) can open it; an operator
 * reaches it through ssh -L or socat. Every value is HTML-escaped: node ids, peers and
 * reasons come from the network.
 *
 * Pages: / (the fleet, policy and audit status, request and refusal rates of the last hour as
 * SVG), /nodes?page=N, /nodes/ID (a node id or EK hash: its history), /policy, /secrets
 * (names, versions, changes; never a value), /audit?before=SEQ.
 */
struct dashboard;

/* Listens on srv->config->admin_listen (none: *ret NULL, 0); logs one line on failure. */
int dashboard_start(struct event_base *base, struct server *srv, const struct metrics *m, struct dashboard **ret);
/* Each second: a per-minute sample of the request and refusal counters for the chart. */
void dashboard_tick(struct dashboard *db, int64_t now_us);
void dashboard_free(struct dashboard *db);
