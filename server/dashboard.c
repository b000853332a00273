/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server's dashboard (dashboard.h): one evhttp of its own on the admin socket, in the
 * server's event loop. Each page gathers its data once and writes it both ways as it goes: an
 * HTML page (every value through html(), since node ids, peers and reasons come from the
 * network) and a JSON object (json-c escapes). Reads are paginated on indexes (nodes by
 * request time, audit records by seq), so a page costs the same at 10 nodes or 10,000.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>

#include "dashboard.h"
#include "evidence.h"
#include "log.h"
#include "operator.h"
#include "policy-cache.h"
#include "policy-changes.h"
#include "server-config.h"
#include "store.h"

#define PAGE_ROWS 100
#define NODE_HISTORY 100
#define NODE_CERTS 20  /* the newest: renewing at half-life, a node keeps one per renewal until an hour past expiry */
#define NODE_SHARES 50
#define SAMPLES 60 /* a minute each: the chart's hour */

struct sample {
	int64_t minute_us;
	uint64_t requests, refusals[_REFUSAL_MAX];
};

struct dashboard {
	struct server *srv;
	const struct metrics *m;
	struct evhttp *http;
	char path[108];
	/* The last SAMPLES minutes, oldest first from next; and the counters at the last sample. */
	struct sample ring[SAMPLES];
	size_t n, next;
	struct sample last;
};

/* What one page writes: HTML to f, and the same data into j. */
struct page {
	FILE *f;
	json_object *j;
	struct dashboard *db;
	int64_t now_us;
};

static void html(FILE *f, const char *s)
{
	for (; s && *s; s++)
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
}

static void jstr(json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, json_object_new_string(v ? v : ""));
}

static void jint(json_object *o, const char *key, int64_t v)
{
	json_object_object_add(o, key, json_object_new_int64(v));
}

/* "2027-01-31T00:00:00Z", or "never" for 0. */
static const char *when(int64_t us, char buf[21])
{
	if (us <= 0)
		return strcpy(buf, "never");
	policy_time_format(us, buf);
	return buf;
}

/* A time both ways: ISO text in the table cell, and KEY (ISO) in JSON. */
static void cell_time(struct page *p, json_object *o, const char *key, int64_t us)
{
	char buf[21];

	fprintf(p->f, "<td>%s</td>", when(us, buf));
	jstr(o, key, us > 0 ? buf : NULL);
}

static void cell(struct page *p, json_object *o, const char *key, const char *v)
{
	fputs("<td>", p->f);
	html(p->f, v);
	fputs("</td>", p->f);
	jstr(o, key, v);
}

static const char STYLE[] =
	"body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}"
	"header{background:#1b2a3a;color:#fff;padding:.6em 1em}header a{color:#cfe3ff;margin-right:1em}"
	"header b{margin-right:1.5em}main{padding:1em;max-width:1200px}"
	"table{border-collapse:collapse;background:#fff;width:100%}td,th{border:1px solid #d6d9de;padding:.3em .5em;"
	"text-align:left;vertical-align:top;overflow-wrap:break-word}th{background:#eceff3;white-space:nowrap}"
	/* Wide tables keep their columns on a phone and scroll sideways inside their box. */
	".scroll{overflow-x:auto}.scroll table{min-width:72em}.cards{display:flex;flex-wrap:wrap;gap:.6em;margin-bottom:1em}"
	".card{background:#fff;border:1px solid #d6d9de;padding:.5em .8em;min-width:8em}.card b{display:block;font-size:1.6em}"
	".bad{color:#b00020;font-weight:bold}.ok{color:#0a7a2f;font-weight:bold}.warn{color:#a35b00;font-weight:bold}"
	".state-revoked{color:#b00020;font-weight:bold}.state-requested{color:#a35b00}"
	"svg{background:#fff;border:1px solid #d6d9de;max-width:100%;height:auto}.legend span{margin-right:1em}";

static void head(struct page *p, const char *title)
{
	fprintf(p->f, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
		      "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
		      "<title>keystrap-server: %s</title><style>%s</style></head><body><header><b>keystrap-server</b>"
		      "<a href=\"/\">Fleet</a><a href=\"/nodes\">Nodes</a><a href=\"/policy\">Policy</a>"
		      "<a href=\"/secrets\">Secrets</a><a href=\"/audit\">Audit</a></header><main><h1>%s</h1>",
		title, STYLE, title);
}

static void card(struct page *p, json_object *o, const char *key, const char *label, int64_t v, const char *cls)
{
	fprintf(p->f, "<div class=\"card\" id=\"%s\"><b%s%s%s>%" PRId64 "</b>%s</div>", key, cls ? " class=\"" : "",
		cls ? cls : "", cls ? "\"" : "", v, label);
	jint(o, key, v);
}

/* The policy as a handshake would find it now: the state, and on the page why nodes are refused. */
static void policy_state(struct page *p, json_object *o, const struct policy **ret)
{
	struct server *srv = p->db->srv;
	const struct policy *pol = NULL;
	char reason[ATTEST_REASON_MAX] = "", buf[21];
	int r = policy_cache_current(&srv->policy, srv->store, srv->config, p->now_us, &pol, reason);
	const char *state = r >= 0 ? "in force" : r == -ENOENT ? "none" : r == -ETIME ? "expired" :
			    r == -EKEYREJECTED || r == -EBADMSG ? "refused" : "unreadable";

	if (r == -ETIME)
		pol = srv->policy.policy;
	jstr(o, "state", state);
	jint(o, "version", r == -ENOENT ? 0 : srv->policy.version);
	jstr(o, "expires", pol ? when(pol->expires_us, buf) : NULL);
	jstr(o, "reason", r < 0 ? reason : NULL);
	fprintf(p->f, "<p id=\"policy-state\">Policy: <span class=\"%s\">%s</span>", r >= 0 ? "ok" : "bad", state);
	if (r != -ENOENT)
		fprintf(p->f, ", version %" PRId64, srv->policy.version);
	if (pol)
		fprintf(p->f, ", expires %s", when(pol->expires_us, buf));
	if (r < 0) {
		fputs(". <span class=\"bad\" id=\"refusal-cause\">Every node is refused: ", p->f);
		html(p->f, reason);
		fputs("</span>", p->f);
	}
	fputs("</p>", p->f);
	*ret = pol;
}

static void audit_state(struct page *p, json_object *o)
{
	const struct metrics *m = p->db->m;
	const char *st = !m->audit_checked ? "not checked yet" : m->audit_verified ? "verified" : "FAILED verification";
	char buf[21];

	jstr(o, "verification", !m->audit_checked ? "pending" : m->audit_verified ? "verified" : "failed");
	jstr(o, "checked", m->audit_checked ? when(m->audit_checked_us, buf) : NULL);
	jint(o, "appended_since_start", (int64_t)m->audit_records);
	fprintf(p->f, "<p id=\"audit-state\">Audit log: <span class=\"%s\">%s</span>",
		m->audit_checked && !m->audit_verified ? "bad" : "ok", st);
	if (m->audit_checked)
		fprintf(p->f, " (checked %s)", when(m->audit_checked_us, buf));
	fputs("</p>", p->f);
}

static uint64_t requests_of(const struct metrics *m)
{
	uint64_t n = 0;

	for (int ep = EP_START; ep <= EP_FINISH; ep++)
		for (int c = 0; c < METRICS_CODES; c++)
			n += m->requests[ep][c];
	return n;
}

static void sample_now(const struct metrics *m, int64_t now_us, struct sample *ret)
{
	ret->minute_us = now_us;
	ret->requests = requests_of(m);
	memcpy(ret->refusals, m->refusals, sizeof(ret->refusals));
}

void dashboard_tick(struct dashboard *db, int64_t now_us)
{
	struct sample cur, *s;

	if (!db || now_us - db->last.minute_us < 60 * 1000000LL)
		return;
	sample_now(db->m, now_us, &cur);
	s = &db->ring[db->next];
	s->minute_us = now_us;
	s->requests = cur.requests - db->last.requests;
	for (int i = 0; i < _REFUSAL_MAX; i++)
		s->refusals[i] = cur.refusals[i] - db->last.refusals[i];
	db->next = (db->next + 1) % SAMPLES;
	if (db->n < SAMPLES)
		db->n++;
	db->last = cur;
}

/* The chart's points, oldest first: the ring, then the minute under way. */
static size_t samples(struct dashboard *db, int64_t now_us, struct sample out[SAMPLES + 1])
{
	struct sample cur;
	size_t k = 0;

	for (size_t i = 0; i < db->n; i++)
		out[k++] = db->ring[(db->next + SAMPLES - db->n + i) % SAMPLES];
	sample_now(db->m, now_us, &cur);
	out[k] = cur;
	out[k].requests -= db->last.requests;
	for (int i = 0; i < _REFUSAL_MAX; i++)
		out[k].refusals[i] -= db->last.refusals[i];
	return k + 1;
}

static const char *const colours[] = { "#b00020", "#a35b00", "#6a1b9a", "#00796b", "#5d4037", "#c2185b", "#455a64" };

/* A series named by its id (series-requests, series-REFUSAL), for scripts reading the page. */
static void polyline(FILE *f, const struct sample *s, size_t n, int cls, uint64_t max, const char *colour)
{
	fprintf(f, "<polyline id=\"series-%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
		cls < 0 ? "requests" : refusal_name(cls), colour);
	for (size_t i = 0; i < n; i++) {
		uint64_t v = cls < 0 ? s[i].requests : s[i].refusals[cls];

		fprintf(f, "%zu,%" PRIu64 " ", 40 + i * 560 / SAMPLES, 150 - v * 130 / max);
	}
	fputs("\"/>", f);
}

/* Requests and refusals by class per minute over the last hour: SVG inline, no script. */
static void chart(struct page *p)
{
	struct sample s[SAMPLES + 1];
	size_t n = samples(p->db, p->now_us, s), c = 0;
	uint64_t max = 1;
	json_object *a = json_object_new_array();
	char buf[21];

	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object(), *r = json_object_new_object();

		max = s[i].requests > max ? s[i].requests : max;
		jstr(o, "minute", when(s[i].minute_us, buf));
		jint(o, "requests", (int64_t)s[i].requests);
		for (int k = REFUSAL_NONE + 1; k < _REFUSAL_MAX; k++) {
			max = s[i].refusals[k] > max ? s[i].refusals[k] : max;
			if (s[i].refusals[k])
				jint(r, refusal_name(k), (int64_t)s[i].refusals[k]);
		}
		json_object_object_add(o, "refusals", r);
		json_object_array_add(a, o);
	}
	json_object_object_add(p->j, "rates", a);
	fprintf(p->f, "<h2>Requests and refusals per minute, last hour</h2>"
		      "<svg id=\"rates\" viewBox=\"0 0 620 170\" width=\"620\" height=\"170\" role=\"img\" "
		      "aria-label=\"attestation requests and refusals per minute\">"
		      "<line x1=\"40\" y1=\"150\" x2=\"600\" y2=\"150\" stroke=\"#888\"/>"
		      "<line x1=\"40\" y1=\"20\" x2=\"40\" y2=\"150\" stroke=\"#888\"/>"
		      "<text x=\"2\" y=\"24\" font-size=\"11\">%" PRIu64 "</text><text x=\"2\" y=\"150\" font-size=\"11\">0</text>"
		      "<text x=\"40\" y=\"166\" font-size=\"11\">-%zu min</text><text x=\"560\" y=\"166\" font-size=\"11\">now</text>",
		max, n - 1);
	polyline(p->f, s, n, -1, max, "#1565c0");
	for (int k = REFUSAL_NONE + 1; k < _REFUSAL_MAX; k++) {
		bool any = false;

		for (size_t i = 0; i < n; i++)
			any = any || s[i].refusals[k];
		if (any)
			polyline(p->f, s, n, k, max, colours[c++ % ELEMENTSOF(colours)]);
	}
	fputs("</svg><p class=\"legend\"><span style=\"color:#1565c0\">&#9632; requests</span>", p->f);
	c = 0;
	for (int k = REFUSAL_NONE + 1; k < _REFUSAL_MAX; k++) {
		bool any = false;

		for (size_t i = 0; i < n; i++)
			any = any || s[i].refusals[k];
		if (any)
			fprintf(p->f, "<span style=\"color:%s\">&#9632; refused: %s</span>", colours[c++ % ELEMENTSOF(colours)],
				refusal_name(k));
	}
	fputs("</p>", p->f);
}

/* Where the CA's CRL is published (the nodes' listener, public) and what it lists; it is made
 * there, at the next request after a revocation, so this page never writes the store. */
static void crl_where(struct page *p, int64_t revoked)
{
	const struct server_config *c = p->db->srv->config;
	json_object *o = json_object_new_object();
	char url[300];

	snprintf(url, sizeof(url), "https://%s/v1/crl.pem", c->listen);
	fputs("<h2>Revocation</h2><p id=\"crl\">The CRL lists every unexpired certificate of the ", p->f);
	fprintf(p->f, "%" PRId64 " revoked node%s, signed by the CA, renewed at least every %" PRId64 " s: ", revoked,
		revoked == 1 ? "" : "s", c->crl_lifetime);
	html(p->f, url);
	fputs(" (DER: /v1/crl), what consumers check peers against (openssl verify -crl_check).</p>", p->f);
	jstr(o, "url", url);
	jint(o, "revoked_nodes", revoked);
	jint(o, "lifetime", c->crl_lifetime);
	json_object_object_add(p->j, "crl", o);
}

static int page_fleet(struct page *p, const char *arg, struct evkeyvalq *q)
{
	const struct metrics *m = p->db->m;
	const struct node_census *c = &m->nodes;
	json_object *nodes = json_object_new_object(), *ref = json_object_new_object(), *pol = json_object_new_object(),
		    *aud = json_object_new_object();
	const struct policy *policy;
	int64_t refused = 0;

	(void)arg;
	(void)q;
	head(p, "Fleet");
	policy_state(p, pol, &policy);
	audit_state(p, aud);
	fputs("<div class=\"cards\">", p->f);
	card(p, nodes, "approved", "approved", c->state[NODE_APPROVED], NULL);
	card(p, nodes, "requested", "awaiting approval", c->state[NODE_REQUESTED], c->state[NODE_REQUESTED] ? "warn" : NULL);
	card(p, nodes, "revoked", "revoked", c->state[NODE_REVOKED], c->state[NODE_REVOKED] ? "bad" : NULL);
	card(p, nodes, "attested_1h", "attested in the last hour", c->attested[NODE_AGE_1H], NULL);
	card(p, nodes, "never_attested", "approved, never attested", c->attested[NODE_AGE_NEVER], NULL);
	card(p, nodes, "expiring_7d", "certificates expiring within 7 days", c->expiring, c->expiring ? "warn" : NULL);
	card(p, nodes, "overdue", "certificates expired, not renewed", c->overdue, c->overdue ? "bad" : NULL);
	for (int k = REFUSAL_NONE + 1; k < _REFUSAL_MAX; k++)
		refused += (int64_t)m->refusals[k];
	card(p, nodes, "refused", "requests refused since start", refused, refused ? "warn" : NULL);
	fputs("</div><h2>Refusals since start, by reason</h2><div class=\"scroll\"><table id=\"refusals\">"
	      "<tr><th>reason</th><th>requests</th></tr>",
	      p->f);
	if (refused == 0)
		fputs("<tr><td colspan=\"2\">none</td></tr>", p->f);
	for (int k = REFUSAL_NONE + 1; k < _REFUSAL_MAX; k++)
		if (m->refusals[k]) {
			fprintf(p->f, "<tr><td>%s</td><td>%" PRIu64 "</td></tr>", refusal_name(k), m->refusals[k]);
			jint(ref, refusal_name(k), (int64_t)m->refusals[k]);
		}
	fputs("</table></div>", p->f);
	crl_where(p, c->state[NODE_REVOKED]);
	json_object_object_add(p->j, "nodes", nodes);
	json_object_object_add(p->j, "refusals", ref);
	json_object_object_add(p->j, "policy", pol);
	json_object_object_add(p->j, "audit", aud);
	chart(p);
	return 200;
}

/* A node row's cells, and the same as a JSON object. */
static json_object *node_cells(struct page *p, const struct node_rec *n)
{
	json_object *o = json_object_new_object();
	char ek[17];

	/* The EK hash too: the registry's rows are escaped whatever wrote them. */
	fputs("<tr><td><a href=\"/nodes/", p->f);
	html(p->f, n->ek_hash);
	fputs("\">", p->f);
	html(p->f, n->node_id[0] ? n->node_id : "(no id)");
	fprintf(p->f, "</a></td><td class=\"state-%s\">%s</td>", node_state_name(n->state), node_state_name(n->state));
	jstr(o, "node_id", n->node_id);
	jstr(o, "state", node_state_name(n->state));
	jstr(o, "ek_hash", n->ek_hash);
	cell(p, o, "group", n->group);
	fputs("<td title=\"", p->f);
	html(p->f, n->ek_hash);
	fputs("\">", p->f);
	snprintf(ek, sizeof(ek), "%.16s", n->ek_hash);
	html(p->f, ek);
	fputs("&hellip;</td>", p->f);
	cell_time(p, o, "requested", n->requested_us);
	cell_time(p, o, "attested", n->attested_us);
	cell_time(p, o, "certificate_expires", n->cert_not_after * 1000000);
	cell(p, o, "certificate_serial", n->cert_serial);
	cell(p, o, "peer", n->peer);
	fputs("</tr>", p->f);
	return o;
}

static const char NODE_HEADER[] = "<div class=\"scroll\"><table id=\"nodes\"><tr><th>node</th><th>state</th><th>group"
				  "</th><th>EK hash</th><th>requested</th><th>last attested</th><th>certificate expires"
				  "</th><th>serial</th><th>peer</th></tr>";

struct node_list {
	struct page *p;
	json_object *a;
	int64_t n;
};

static int node_row(const struct node_rec *n, void *userdata)
{
	struct node_list *l = userdata;

	if (++l->n > PAGE_ROWS)
		return 0; /* the one past the page: there is a next page */
	json_object_array_add(l->a, node_cells(l->p, n));
	return 0;
}

/* A non-negative number from the query, else 0. */
static int64_t query_num(struct evkeyvalq *q, const char *key, int64_t dflt)
{
	const char *v = evhttp_find_header(q, key);
	char *end;
	long long n;

	if (!v)
		return dflt;
	errno = 0;
	n = strtoll(v, &end, 10);
	return errno || end == v || *end || n < 0 ? -1 : n;
}

static int page_nodes(struct page *p, const char *arg, struct evkeyvalq *q)
{
	int64_t page = query_num(q, "page", 0), total = 0;
	struct node_list l = { .p = p, .a = json_object_new_array() };
	int r;

	(void)arg;
	json_object_object_add(p->j, "nodes", l.a);
	if (page < 0 || page > INT64_MAX / PAGE_ROWS)
		return 400;
	for (int i = 0; i < _NODE_STATE_MAX; i++)
		total += p->db->m->nodes.state[i];
	head(p, "Nodes");
	fprintf(p->f, "<p>%" PRId64 " nodes; page %" PRId64 ", %d a page, by request time.</p>%s", total, page + 1,
		PAGE_ROWS, NODE_HEADER);
	if ((r = store_node_page(p->db->srv->store, page * PAGE_ROWS, PAGE_ROWS + 1, node_row, &l)) < 0)
		return 503;
	fputs("</table></div><p>", p->f);
	if (page > 0)
		fprintf(p->f, "<a href=\"/nodes?page=%" PRId64 "\">&larr; previous</a> ", page - 1);
	if (l.n > PAGE_ROWS)
		fprintf(p->f, "<a id=\"next\" href=\"/nodes?page=%" PRId64 "\">next &rarr;</a>", page + 1);
	fputs("</p>", p->f);
	jint(p->j, "page", page);
	jint(p->j, "total", total);
	json_object_object_add(p->j, "next", l.n > PAGE_ROWS ? json_object_new_int64(page + 1) : NULL);
	return 200;
}

struct audit_list {
	struct page *p;
	json_object *a;
	int64_t n, last_seq;
	bool with_node;
	json_object *drift; /* a node's page: each PCR its refusals name */
};

/* The PCRs a refused attestation named (evidence_reason_next), into the node page's drift list. */
static void drift_add(json_object *drift, const struct audit_rec *a)
{
	struct evidence_named n;
	const char *pos = a->reasons;
	char buf[21];

	if (!drift || !streq(a->action, "attest-finish") || !streq(a->decision, "deny"))
		return;
	while (evidence_reason_next(&pos, &n) > 0) {
		json_object *o = json_object_new_object();

		jint(o, "seq", a->seq);
		jstr(o, "time", when(a->time_us, buf));
		jint(o, "pcr", n.pcr);
		jstr(o, "bank", n.bank);
		jint(o, "policy", n.policy);
		json_object_object_add(o, "event", n.event < 0 ? NULL : json_object_new_int64(n.event));
		jstr(o, n.event < 0 ? "value" : "digest", n.is);
		json_object_object_add(o, "wants", n.event < 0 ? json_object_new_string(n.wants) : NULL);
		json_object_array_add(drift, o);
	}
}

static int audit_row(const struct audit_rec *a, void *userdata)
{
	struct audit_list *l = userdata;
	json_object *o;

	if (++l->n > PAGE_ROWS)
		return 0;
	o = json_object_new_object();
	l->last_seq = a->seq;
	jint(o, "seq", a->seq);
	fprintf(l->p->f, "<tr><td>%" PRId64 "</td>", a->seq);
	cell_time(l->p, o, "time", a->time_us);
	if (l->with_node)
		cell(l->p, o, "node_id", a->node_id);
	cell(l->p, o, "action", a->action);
	fprintf(l->p->f, "<td class=\"%s\">", streq(a->decision, "allow") ? "ok" : "bad");
	html(l->p->f, a->decision);
	fputs("</td>", l->p->f);
	jstr(o, "decision", a->decision);
	cell(l->p, o, "reasons", a->reasons);
	cell(l->p, o, "peer", a->peer);
	if (l->with_node)
		jstr(o, "ek_hash", a->ek_hash);
	fputs("</tr>", l->p->f);
	json_object_array_add(l->a, o);
	drift_add(l->drift, a);
	return 0;
}

static void audit_header(struct page *p, const char *id, bool with_node)
{
	fprintf(p->f, "<div class=\"scroll\"><table id=\"%s\"><tr><th>seq</th><th>time</th>%s<th>action</th>"
		      "<th>decision</th><th>reasons</th><th>peer</th></tr>",
		id, with_node ? "<th>node</th>" : "");
}

/* Which PCRs moved when: each one the node's refusals in the history above name, newest first. */
static void drift_table(struct page *p, json_object *drift)
{
	size_t n = json_object_array_length(drift);

	fputs("<h2>PCR drift: what its refusals named</h2>", p->f);
	if (n == 0) {
		fputs("<p id=\"drift\">No refusal in the history above named a PCR.</p>", p->f);
		return;
	}
	fputs("<div class=\"scroll\"><table id=\"drift\"><tr><th>seq</th><th>time</th><th>PCR</th><th>bank</th>"
	      "<th>quoted</th><th>policy</th><th>policy wants</th></tr>",
	      p->f);
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(drift, i), *v;
		const char *event = json_object_object_get_ex(o, "event", &v) && v ? json_object_get_string(v) : NULL;

		fprintf(p->f, "<tr><td>%s</td><td>", json_object_get_string(json_object_object_get(o, "seq")));
		html(p->f, json_object_get_string(json_object_object_get(o, "time")));
		fprintf(p->f, "</td><td>%s%s%s</td><td>", json_object_get_string(json_object_object_get(o, "pcr")),
			event ? " event " : "", event ? event : "");
		html(p->f, json_object_get_string(json_object_object_get(o, "bank")));
		fputs("</td><td><code>", p->f);
		html(p->f, json_object_get_string(json_object_object_get(o, event ? "digest" : "value")));
		fprintf(p->f, "</code></td><td>%s</td><td>", json_object_get_string(json_object_object_get(o, "policy")));
		if (event)
			fputs("does not allow the event", p->f);
		else {
			fputs("<code>", p->f);
			html(p->f, json_object_get_string(json_object_object_get(o, "wants")));
			fputs("</code>", p->f);
		}
		fputs("</td></tr>", p->f);
	}
	fputs("</table></div>", p->f);
}

struct cert_list {
	struct page *p;
	const struct node_rec *node;
	json_object *a;
	bool current_seen;
};

static void cert_cells(struct cert_list *l, const char *serial, int64_t not_before, int64_t not_after)
{
	json_object *o = json_object_new_object();
	bool current = streq(serial, l->node->cert_serial);

	fputs("<tr>", l->p->f);
	cell(l->p, o, "serial", serial);
	cell_time(l->p, o, "not_before", not_before * 1000000);
	cell_time(l->p, o, "not_after", not_after * 1000000);
	fprintf(l->p->f, "<td%s>%s</td></tr>", current ? " class=\"ok\"" : "",
		current ? "current" : not_after * 1000000 <= l->p->now_us ? "expired" : "superseded");
	json_object_object_add(o, "current", json_object_new_boolean(current));
	json_object_array_add(l->a, o);
	l->current_seen = l->current_seen || current;
}

static int cert_row(const struct cert_rec *c, void *userdata)
{
	cert_cells(userdata, c->serial, c->not_before, c->not_after);
	return 0;
}

/* The certificates the store keeps for it, newest first; the node's last one also when a store
 * from before the certificates table lacks it (its notBefore unknown). */
static int certificates(struct page *p, const struct node_rec *n)
{
	struct cert_list l = { .p = p, .node = n, .a = json_object_new_array() };
	int r;

	json_object_object_add(p->j, "certificates", l.a);
	fputs("<h2>Certificates, newest first</h2>", p->f);
	fputs("<div class=\"scroll\"><table id=\"certificates\"><tr><th>serial</th><th>not before</th>"
	      "<th>not after</th><th>state</th></tr>",
	      p->f);
	if ((r = store_node_certificates(p->db->srv->store, n->ek_hash, NODE_CERTS, cert_row, &l)) < 0)
		return r;
	if (!l.current_seen && n->cert_serial[0])
		cert_cells(&l, n->cert_serial, 0, n->cert_not_after);
	if (json_object_array_length(l.a) == 0)
		fputs("<tr><td colspan=\"4\">none issued</td></tr>", p->f);
	fputs("</table></div>", p->f);
	return 0;
}

static int page_node(struct page *p, const char *arg, struct evkeyvalq *q)
{
	struct store *s = p->db->srv->store;
	struct audit_list l = { .p = p, .a = json_object_new_array(), .drift = json_object_new_array() },
			  shares = { .p = p, .a = json_object_new_array() };
	struct node_rec n;
	int r;

	(void)q;
	json_object_object_add(p->j, "history", l.a);
	json_object_object_add(p->j, "drift", l.drift);
	json_object_object_add(p->j, "disk_shares", shares.a);
	r = strlen(arg) == EK_HASH_HEX ? store_node_get(s, arg, &n) : -ENOENT;
	if (r == -ENOENT)
		r = store_node_get_by_id(s, arg, &n);
	if (r == -ENOENT)
		return 404;
	if (r < 0)
		return 503;
	head(p, "Node");
	fputs(NODE_HEADER, p->f);
	json_object_object_add(p->j, "node", node_cells(p, &n));
	fputs("</table></div><p>EK hash <code>", p->f);
	html(p->f, n.ek_hash);
	fputs("</code></p>", p->f);
	if (certificates(p, &n) < 0)
		return 503;
	fputs("<h2>Disk shares: stored, released, refused</h2>", p->f);
	audit_header(p, "disk-shares", false);
	if (store_audit_shares_ek(s, n.ek_hash, NODE_SHARES, audit_row, &shares) < 0)
		return 503;
	if (shares.n == 0)
		fputs("<tr><td colspan=\"6\">none</td></tr>", p->f);
	fputs("</table></div><h2>History, newest first</h2>", p->f);
	audit_header(p, "audit", false);
	if ((r = store_audit_foreach_ek(s, n.ek_hash, NODE_HISTORY, audit_row, &l)) < 0)
		return 503;
	fputs("</table></div>", p->f);
	drift_table(p, l.drift);
	return 200;
}

/* The newest signed checkpoint as stored (what nodes and audit verify check the log against). */
static void checkpoint(struct page *p, json_object *o)
{
	_cleanup_free_ char *note = NULL;
	uint64_t size;
	int r = store_checkpoint_get(p->db->srv->store, &size, &note);

	if (r < 0) {
		fprintf(p->f, "<p id=\"checkpoint\">No signed checkpoint%s.</p>",
			r == -ENOENT ? " yet (no log_key configured, or nothing appended since)" : ": the store did not answer");
		return;
	}
	fprintf(p->f, "<h2>Newest signed checkpoint: %" PRIu64 " records</h2><pre id=\"checkpoint\">", size);
	html(p->f, note);
	fputs("</pre>", p->f);
	jint(o, "checkpoint_size", (int64_t)size);
	jstr(o, "checkpoint", note);
}

static int page_audit(struct page *p, const char *arg, struct evkeyvalq *q)
{
	int64_t before = query_num(q, "before", INT64_MAX);
	struct audit_list l = { .p = p, .a = json_object_new_array(), .with_node = true };
	json_object *st = json_object_new_object();

	(void)arg;
	json_object_object_add(p->j, "records", l.a);
	json_object_object_add(p->j, "log", st);
	if (before < 0)
		return 400;
	head(p, "Audit log");
	audit_state(p, st);
	checkpoint(p, st);
	fprintf(p->f, "<p>Newest first, %d a page.</p>", PAGE_ROWS);
	audit_header(p, "audit", true);
	if (store_audit_page(p->db->srv->store, before, PAGE_ROWS + 1, audit_row, &l) < 0)
		return 503;
	fputs("</table></div><p>", p->f);
	if (before != INT64_MAX)
		fputs("<a href=\"/audit\">&larr; newest</a> ", p->f);
	if (l.n > PAGE_ROWS)
		fprintf(p->f, "<a id=\"next\" href=\"/audit?before=%" PRId64 "\">older &rarr;</a>", l.last_seq);
	fputs("</p>", p->f);
	json_object_object_add(p->j, "next", l.n > PAGE_ROWS ? json_object_new_int64(l.last_seq) : NULL);
	return 200;
}

/* What changed from the version before the one in force (policy diff's list), as a table. */
static void policy_since(struct page *p, const struct policy *pol, int64_t version)
{
	_cleanup_free_ char *text = NULL, *sigs = NULL;
	_cleanup_(policy_freep) struct policy *prev = NULL;
	json_object *changes = json_object_new_array();
	char why[ATTEST_REASON_MAX];
	size_t size, n;

	json_object_object_add(p->j, "changes_from", NULL);
	json_object_object_add(p->j, "changes", changes);
	int64_t before = version - 1;
	int r = -ENOENT;

	/* The newest version stored below it: versions only rise, not always by one. */
	for (; before > 0 && before > version - 1000 && r == -ENOENT; before--)
		r = store_policy_get(p->db->srv->store, before, &text, &size, &sigs);
	before++;
	if (r < 0 || policy_parse(text, size, &prev, why) < 0) {
		fputs("<h2>Changes</h2><p id=\"changes\">No earlier version to compare with.</p>", p->f);
		return;
	}
	json_object_object_add(p->j, "changes_from", json_object_new_int64(before));
	policy_changes(prev, pol, changes);
	n = json_object_array_length(changes);
	fprintf(p->f, "<h2>Changes from version %" PRId64 "</h2>", before);
	if (n == 0) {
		fputs("<p id=\"changes\">none</p>", p->f);
		return;
	}
	fputs("<div class=\"scroll\"><table id=\"changes\"><tr><th>what</th><th>change</th><th>detail</th></tr>", p->f);
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(changes, i), *v;
		bool first = true;

		fputs("<tr><td>", p->f);
		html(p->f, json_object_object_get_ex(o, "what", &v) ? json_object_get_string(v) : "");
		fputs("</td><td>", p->f);
		html(p->f, json_object_object_get_ex(o, "change", &v) ? json_object_get_string(v) : "");
		fputs("</td><td>", p->f);
		json_object_object_foreach(o, key, val)
		{
			if (streq(key, "what") || streq(key, "change"))
				continue;
			fputs(first ? "" : ", ", p->f);
			html(p->f, key);
			fputs(" ", p->f);
			html(p->f, json_object_get_string(val));
			first = false;
		}
		fputs("</td></tr>", p->f);
	}
	fputs("</table></div>", p->f);
}

static int page_policy(struct page *p, const char *arg, struct evkeyvalq *q)
{
	struct server *srv = p->db->srv;
	const struct server_config *c = srv->config;
	const struct policy *pol;
	_cleanup_(policy_freep) struct policy *again = NULL;
	json_object *signers = json_object_new_array(), *groups = json_object_new_array();
	char reason[ATTEST_REASON_MAX];
	uint32_t bits = 0;

	(void)arg;
	(void)q;
	head(p, "Policy");
	policy_state(p, p->j, &pol);
	json_object_object_add(p->j, "signers", signers);
	json_object_object_add(p->j, "groups", groups);
	if (!pol)
		return 200;
	/* Who signed it: the trust check again, on what the cache holds (this page only). */
	if (srv->policy.text)
		(void)policy_trust(c, srv->policy.version, srv->policy.text, strlen(srv->policy.text),
				   srv->policy.signatures, &again, &bits, reason);
	fputs("<p>Minimum keystrap version ", p->f);
	html(p->f, pol->min_version);
	fprintf(p->f, " (advisory); credentials last %" PRId64 " s; %" PRId64 " of the %zu operator keys must sign.</p>",
		pol->credential_lifetime, c->policy_threshold, c->operators->n);
	jstr(p->j, "min_keystrap_version", pol->min_version);
	jint(p->j, "credential_lifetime", pol->credential_lifetime);
	fputs("<h2>Signed by</h2><div class=\"scroll\"><table id=\"signers\"><tr><th>fingerprint</th><th>key</th></tr>",
	      p->f);
	for (size_t i = 0; i < c->operators->n; i++)
		if (bits & (1u << i)) {
			json_object *o = json_object_new_object();

			fputs("<tr>", p->f);
			cell(p, o, "fingerprint", c->operators->key[i].fingerprint);
			cell(p, o, "key", c->operators->key[i].path);
			fputs("</tr>", p->f);
			json_object_array_add(signers, o);
		}
	fputs("</table></div><h2>Groups</h2><div class=\"scroll\"><table id=\"groups\"><tr><th>group</th><th>secrets"
	      "</th></tr>",
	      p->f);
	for (size_t i = 0; i < pol->n_groups; i++) {
		json_object *o = json_object_new_object(), *names = json_object_new_array();

		fputs("<tr>", p->f);
		cell(p, o, "group", pol->groups[i].name);
		fputs("<td>", p->f);
		for (size_t k = 0; k < pol->groups[i].n_secrets; k++) {
			html(p->f, pol->groups[i].secrets[k]);
			fputs(k + 1 < pol->groups[i].n_secrets ? ", " : "", p->f);
			json_object_array_add(names, json_object_new_string(pol->groups[i].secrets[k]));
		}
		fputs("</td></tr>", p->f);
		json_object_object_add(o, "secrets", names);
		json_object_array_add(groups, o);
	}
	fputs("</table></div>", p->f);
	policy_since(p, pol, srv->policy.version);
	return 200;
}

struct secret_list {
	struct page *p;
	const struct policy *pol;
	json_object *a;
};

static int secret_row(const struct secret_info *i, void *userdata)
{
	struct secret_list *l = userdata;
	json_object *o = json_object_new_object(), *groups = json_object_new_array();

	fputs("<tr>", l->p->f);
	cell(l->p, o, "name", i->name);
	fprintf(l->p->f, "<td>%" PRId64 "</td>", i->version);
	jint(o, "version", i->version);
	cell_time(l->p, o, "changed", i->deleted_us ? i->deleted_us : i->created_us);
	fprintf(l->p->f, "<td>%s</td><td>", i->deleted_us ? "deleted" : "set");
	jstr(o, "state", i->deleted_us ? "deleted" : "set");
	for (size_t g = 0; l->pol && g < l->pol->n_groups; g++)
		for (size_t k = 0; k < l->pol->groups[g].n_secrets; k++)
			if (streq(l->pol->groups[g].secrets[k], i->name)) {
				html(l->p->f, l->pol->groups[g].name);
				fputc(' ', l->p->f);
				json_object_array_add(groups, json_object_new_string(l->pol->groups[g].name));
			}
	fputs("</td></tr>", l->p->f);
	json_object_object_add(o, "groups", groups);
	json_object_array_add(l->a, o);
	return 0;
}

static int page_secrets(struct page *p, const char *arg, struct evkeyvalq *q)
{
	struct secret_list l = { .p = p, .a = json_object_new_array() };
	json_object *pol = json_object_new_object();

	(void)arg;
	(void)q;
	json_object_object_add(p->j, "secrets", l.a);
	head(p, "Secrets");
	policy_state(p, pol, &l.pol);
	json_object_put(pol);
	fputs("<p>Names, versions and changes only: values never leave the store here.</p><div class=\"scroll\">"
	      "<table id=\"secrets\"><tr><th>name</th><th>version</th><th>changed</th><th>state</th><th>groups</th></tr>",
	      p->f);
	if (store_secret_foreach(p->db->srv->store, NULL, secret_row, &l) < 0)
		return 503;
	fputs("</table></div>", p->f);
	return 200;
}

static bool wants_json(struct evhttp_request *req, struct evkeyvalq *q)
{
	const char *f = evhttp_find_header(q, "format");
	const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");

	return f ? streq(f, "json") : a && strstr(a, "application/json");
}

static void reply(struct evhttp_request *req, int status, bool json, const char *body, size_t size)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *out = evbuffer_new();

	evhttp_add_header(h, "Content-Type", json ? "application/json" : "text/html; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	/* No script at all, and nothing from elsewhere: a value escaping its escaping still runs nothing. */
	evhttp_add_header(h, "Content-Security-Policy",
			  "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'none'; "
			  "frame-ancestors 'none'; base-uri 'none'");
	if (out && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
		evbuffer_add(out, body, size);
	evhttp_send_reply(req, status, NULL, out);
	if (out)
		evbuffer_free(out);
}

static void on_admin_request(struct evhttp_request *req, void *arg)
{
	static const struct {
		const char *path;
		bool prefix;
		int (*fn)(struct page *p, const char *arg, struct evkeyvalq *q);
	} pages[] = {
		{ "/", false, page_fleet },      { "/nodes", false, page_nodes },   { "/nodes/", true, page_node },
		{ "/policy", false, page_policy }, { "/secrets", false, page_secrets }, { "/audit", false, page_audit },
	};
	struct dashboard *db = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *raw = uri ? evhttp_uri_get_path(uri) : NULL, *query = uri ? evhttp_uri_get_query(uri) : NULL;
	_cleanup_free_ char *path = raw ? evhttp_uridecode(raw, 0, NULL) : NULL, *text = NULL;
	struct evkeyvalq q = { 0 };
	struct page p = { .db = db, .now_us = now_usec(), .j = json_object_new_object() };
	size_t size = 0;
	int status = 404;
	bool json;

	TAILQ_INIT(&q);
	if (query)
		(void)evhttp_parse_query_str(query, &q);
	json = wants_json(req, &q);
	p.f = open_memstream(&text, &size);
	if (!p.f || !p.j || !path) {
		status = 500;
	} else if (evhttp_request_get_command(req) != EVHTTP_REQ_GET && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		status = 405;
	} else
		for (size_t i = 0; i < ELEMENTSOF(pages); i++)
			if (pages[i].prefix ? strncmp(path, pages[i].path, strlen(pages[i].path)) == 0 && path[strlen(pages[i].path)]
					    : streq(path, pages[i].path)) {
				status = pages[i].fn(&p, path + strlen(pages[i].path), &q);
				break;
			}
	evhttp_clear_headers(&q);
	if (p.f) {
		fputs("</main></body></html>\n", p.f);
		fclose(p.f);
	}
	if (status != 200 || json) {
		const char *s = status == 200 ? json_object_to_json_string_ext(p.j, JSON_C_TO_STRING_PLAIN) : NULL;
		_cleanup_free_ char *err = NULL;

		if (!s) {
			const char *what = status == 404 ? "not found" : status == 405 ? "only GET and HEAD" :
					   status == 400 ? "bad query" : status == 503 ? "the store did not answer" :
					   "internal error";
			if (json ? asprintf(&err, "{\"error\":\"%s\"}", what) < 0 :
				   asprintf(&err, "<!DOCTYPE html><title>%d</title><p>%d: %s. <a href=\"/\">Fleet</a></p>",
					    status, status, what) < 0)
				err = NULL;
			s = err ? err : "";
		}
		reply(req, status, json, s, strlen(s));
	} else
		reply(req, status, false, text ? text : "", size);
	json_object_put(p.j);
}

int dashboard_start(struct event_base *base, struct server *srv, const struct metrics *m, struct dashboard **ret)
{
	const char *spec = srv->config->admin_listen;
	_cleanup_free_ struct dashboard *db = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd, r;

	*ret = NULL;
	if (!spec)
		return 0;
	db = calloc(1, sizeof(*db));
	if (!db)
		return log_error_errno(-ENOMEM, "admin_listen: out of memory");
	db->srv = srv;
	db->m = m;
	snprintf(db->path, sizeof(db->path), "%s", spec + 5);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", db->path);
	sample_now(m, now_usec(), &db->last);
	/* A socket left by an earlier run is replaced; anything else there is not touched. */
	if (lstat(db->path, &st) == 0 && S_ISSOCK(st.st_mode))
		(void)unlink(db->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_error_errno(-errno, "admin_listen %s: %s", spec, strerror(errno));
	/* Owner-only from the moment it exists: no window in which another user could connect. */
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (r == 0 && chmod(db->path, 0600) < 0)
		r = -errno;
	if (r == 0 && listen(fd, 64) < 0)
		r = -errno;
	db->http = r == 0 ? evhttp_new(base) : NULL;
	if (r == 0 && !db->http)
		r = -ENOMEM;
	if (r == 0 && !evhttp_accept_socket_with_handle(db->http, fd))
		r = -EIO;
	if (r < 0) {
		close(fd);
		if (db->http)
			evhttp_free(db->http);
		return log_error_errno(r, "cannot listen on admin_listen %s: %s", spec, strerror(-r));
	}
	evhttp_set_gencb(db->http, on_admin_request, db);
	evhttp_set_allowed_methods(db->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						     EVHTTP_REQ_DELETE);
	evhttp_set_timeout(db->http, 30);
	evhttp_set_max_headers_size(db->http, 16384);
	evhttp_set_max_body_size(db->http, 0);
	*ret = TAKE_PTR(db);
	return 0;
}

void dashboard_free(struct dashboard *db)
{
	if (!db)
		return;
	if (db->http)
		evhttp_free(db->http);
	(void)unlink(db->path);
	free(db);
}
