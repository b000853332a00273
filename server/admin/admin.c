/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "log-key.h"
#include "log.h"
#include "server-config.h"

int admin_load(const char *config, struct server_config **ret_config, struct store **ret)
{
	_cleanup_server_config_ struct server_config *c = NULL;
	char why[PATH_MAX + 512];

	if (server_config_load(config, &c) < 0)
		return 1;
	/* store_open names the store or the KEK and why it failed. */
	if (store_open(c->database, c->kek, ret) < 0)
		return 1;
	/* What an operator's command records is signed into the log at its commit, as the server's is. */
	if (log_keys_attach(*ret, c, why, sizeof(why)) < 0) {
		log_error("%s", why);
		store_close(*ret);
		*ret = NULL;
		return 1;
	}
	if (ret_config)
		*ret_config = TAKE_PTR(c);
	return 0;
}

void admin_operator(char *buf, size_t size)
{
	const char *u = getlogin();

	if (u)
		snprintf(buf, size, "operator:%s", u);
	else
		snprintf(buf, size, "operator:uid=%u", (unsigned)getuid());
}

int admin_refuse(const char *fmt, ...)
{
	va_list ap;

	fputs("keystrap-server: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int admin_audit(struct store *s, const char *action, const char *decision, const char *what)
{
	char who[64], text[8192];
	struct audit_rec a;

	admin_operator(who, sizeof(who));
	snprintf(text, sizeof(text), "%s; by %s", what, who);
	a = (struct audit_rec){ .time_us = now_usec(), .peer = "local", .ek_hash = "", .node_id = "",
				.action = action, .decision = decision, .reasons = text };
	return store_audit_append(s, &a);
}

int admin_denied(struct store *s, const char *action, const char *fmt, ...)
{
	char why[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fprintf(stderr, "keystrap-server: %s\n", why);
	if (store_begin(s) >= 0 && (admin_audit(s, action, "deny", why) < 0 || store_commit(s) < 0))
		store_rollback(s);
	return 1;
}

int admin_open(int argc, char **argv, const char *usage, const struct admin_options *o, const char **ret_verb,
	       const char **ret_arg, struct store **ret)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "id", required_argument, NULL, 'i' },
					      { "group", required_argument, NULL, 'g' },
					      { "json", no_argument, NULL, 'j' },
					      { "file", required_argument, NULL, 'f' },
					      { "full", no_argument, NULL, 'F' },
					      { "reinstate", no_argument, NULL, 'R' },
					      { "probe", no_argument, NULL, 'P' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	static const struct admin_options none = {};
	const char *config = NULL;
	int opt;

	if (!o)
		o = &none;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'i':
			if (!o->id)
				goto bad;
			*o->id = optarg;
			break;
		case 'g':
			if (!o->group)
				goto bad;
			*o->group = optarg;
			break;
		case 'j':
			if (!o->json)
				goto bad;
			*o->json = true;
			break;
		case 'f':
			if (!o->file)
				goto bad;
			*o->file = optarg;
			break;
		case 'F':
			if (!o->full)
				goto bad;
			*o->full = true;
			break;
		case 'R':
			if (!o->reinstate)
				goto bad;
			*o->reinstate = true;
			break;
		case 'P':
			if (!o->probe)
				goto bad;
			*o->probe = true;
			break;
		case 'h':
			printf("Usage: %s\n", usage);
			return EXIT_HELP;
		default:
			goto bad;
		}
	if (!config || optind >= argc || argc - optind > (ret_arg ? 2 : 1))
		goto bad;
	*ret_verb = argv[optind];
	if (ret_arg)
		*ret_arg = optind + 1 < argc ? argv[optind + 1] : NULL;
	return admin_load(config, NULL, ret);
bad:
	fprintf(stderr, "Usage: %s\n", usage);
	return EXIT_USAGE;
}

void admin_json_print(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}
