/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server secret set NAME: the value comes from standard input (never argv, which any
 * local user can read in /proc), lives only in a secbuf, and goes straight into the store. The
 * audit record says which secret changed and its size, never what it is.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "log.h"
#include "payload.h"
#include "secbuf.h"
#include "server-config.h"
#include "store.h"

static const char usage[] = "keystrap-server secret set NAME --config FILE   (the value is read from standard input)";

/* A terminal gets a prompt without echo; anything else is read to EOF, byte for byte. */
static int read_value(struct secbuf **ret)
{
	if (isatty(STDIN_FILENO))
		return secbuf_read_line(STDIN_FILENO, "Secret value: ", SECRET_VALUE_MAX, ret);
	return secbuf_read_file("/dev/stdin", SECRET_VALUE_MAX, ret);
}

int cmd_secret(int argc, char **argv)
{
	_cleanup_store_ struct store *s = NULL;
	_cleanup_secbuf_ struct secbuf *value = NULL;
	const char *verb, *name = NULL;
	char who[64], reason[192];
	struct audit_rec a;
	int r;

	r = admin_open(argc, argv, usage, NULL, &verb, &name, &s);
	if (r != 0)
		return r;
	if (!streq(verb, "set") || !name) {
		fprintf(stderr, "Usage: %s\n", usage);
		return EXIT_USAGE;
	}
	if (!secret_name_valid(name)) {
		fprintf(stderr, "keystrap-server: '%s' is not a secret name ([A-Za-z0-9._-], at most %d)\n", name,
			NODE_SECRET_NAME_MAX);
		return 1;
	}
	r = read_value(&value);
	if (r == -EFBIG || r == -ENOBUFS) {
		fprintf(stderr, "keystrap-server: the value of secret '%s' on standard input is larger than %d bytes\n",
			name, SECRET_VALUE_MAX);
		return 1;
	}
	if (r == -ENODATA || (r >= 0 && value->size == 0)) {
		fprintf(stderr, "keystrap-server: the value of secret '%s' on standard input is empty\n", name);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "keystrap-server: cannot read the value of secret '%s': %s\n", name, strerror(-r));
		return 1;
	}
	admin_operator(who, sizeof(who));
	snprintf(reason, sizeof(reason), "secret %s set (%zu bytes) by %s", name, value->size, who);
	a = (struct audit_rec){ .time_us = now_usec(), .peer = "local", .ek_hash = "", .node_id = "",
				.action = "secret-set", .decision = "allow", .reasons = reason };
	if ((r = store_begin(s)) < 0 || (r = store_secret_put(s, name, value->data, value->size, now_usec())) < 0 ||
	    (r = store_audit_append(s, &a)) < 0 || (r = store_commit(s)) < 0) {
		store_rollback(s);
		fprintf(stderr, "keystrap-server: cannot store secret '%s': %s\n", name, strerror(-r));
		return 1;
	}
	printf("secret %s stored (%zu bytes)\n", name, value->size);
	return 0;
}
