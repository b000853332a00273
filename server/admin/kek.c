/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server kek init|rotate|verify: the key-encryption key that wraps every secret's data
 * key, kept outside the database (envelope.h).
 *
 * rotate re-wraps every data key under the new KEK in one transaction, so that the store is
 * under the old KEK until the commit and under the new one after it, whatever is killed when.
 * Only then does the new KEK file take the configured one's place (a rename in one directory),
 * and a running server, finding rows wrapped by a KEK it does not hold, loads the file again.
 * Interrupted between the two, the store is under the new KEK and the configured file still
 * holds the old one: the server refuses to start, naming both ids, and rotate run again
 * finishes the job.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "envelope.h"
#include "fileio.h"
#include "log.h"
#include "server-config.h"
#include "store.h"

static const char usage[] = "keystrap-server kek init [FILE] [--config FILE]\n"
			    "       keystrap-server kek rotate --new FILE --config FILE\n"
			    "       keystrap-server kek verify --config FILE";

static int refuse(const char *what, const char *why)
{
	fprintf(stderr, "keystrap-server: %s%s\n", what, why);
	return 1;
}

static int init(const char *path)
{
	_cleanup_kek_ struct kek *k = NULL;
	char why[1024];
	int r;

	if (!kek_name_file(path)) {
		/* A TPM's or a token's key is made there (tpm2_create, pkcs11-tool): this checks it serves. */
		if (kek_load(path, &k, why, sizeof(why)) < 0)
			return refuse("", why);
		printf("KEK '%s' is in hardware (id %s): nothing to create\n", kek_name(k), kek_id(k));
		return 0;
	}
	r = kek_file_create(path);
	if (r == -EEXIST) {
		/* Never replaced: a KEK overwritten is every secret of every copy of the store lost. */
		if (kek_load(path, &k, why, sizeof(why)) < 0)
			return refuse("", why);
		printf("KEK '%s' exists (id %s): left as it is\n", path, kek_id(k));
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "keystrap-server: cannot create KEK '%s': %s\n", path, strerror(-r));
		return 1;
	}
	if (kek_load(path, &k, why, sizeof(why)) < 0)
		return refuse("", why);
	printf("KEK '%s' created (id %s): keep a copy of it apart from the database's backups\n", path, kek_id(k));
	return 0;
}

/* The new KEK file takes the configured one's place, durably; the old key is gone from there. */
static int install(const char *new_path, const char *path)
{
	int r;

	if (rename(new_path, path) < 0) {
		r = -errno;
		fprintf(stderr,
			"keystrap-server: the store is under KEK '%s' now, but it cannot replace '%s': %s (move it "
			"there yourself, or point 'kek' at it)\n",
			new_path, path, strerror(-r));
		return 1;
	}
	if ((r = fsync_parent_dir(path)) < 0) {
		fprintf(stderr, "keystrap-server: cannot sync the directory of '%s': %s\n", path, strerror(-r));
		return 1;
	}
	return 0;
}

/* Before anything changes: the new file must be usable where the old one is, by whoever reads it there. */
static int rotate_check(const char *old_path, const char *new_path)
{
	_cleanup_free_ char *a = strdup(old_path), *b = strdup(new_path);
	struct stat so, sn, da, db;

	if (!a || !b)
		return refuse("", "out of memory");
	if (stat(old_path, &so) < 0 || stat(new_path, &sn) < 0)
		return refuse("", "cannot examine the KEK files");
	if (so.st_dev == sn.st_dev && so.st_ino == sn.st_ino)
		return refuse("--new names the KEK in use: ", new_path);
	if (stat(dirname(a), &da) < 0 || stat(dirname(b), &db) < 0 || da.st_dev != db.st_dev) {
		fprintf(stderr, "keystrap-server: '%s' must be on the file system of '%s', to take its place by a rename\n",
			new_path, old_path);
		return 1;
	}
	if (so.st_uid != sn.st_uid || so.st_gid != sn.st_gid) {
		fprintf(stderr,
			"keystrap-server: '%s' belongs to %u:%u and '%s' to %u:%u: the server could not read the new KEK "
			"(chown it)\n",
			new_path, (unsigned)sn.st_uid, (unsigned)sn.st_gid, old_path, (unsigned)so.st_uid,
			(unsigned)so.st_gid);
		return 1;
	}
	return 0;
}

static int rotate(const char *config, const char *new_name)
{
	_cleanup_server_config_ struct server_config *c = NULL;
	_cleanup_store_ struct store *s = NULL;
	_cleanup_kek_ struct kek *new_kek = NULL;
	const char *path, *new_path;
	char why[1024], who[64], reason[256], old_id[KEK_ID_HEX + 1];
	struct audit_rec a;
	int64_t n = 0;
	int r;

	if (server_config_load(config, &c) < 0)
		return 1;
	if (kek_load(new_name, &new_kek, why, sizeof(why)) < 0)
		return refuse("", why);
	path = kek_name_file(c->kek);
	new_path = kek_path(new_kek);
	if (path && new_path && rotate_check(path, new_path) != 0)
		return 1;
	r = store_open_why(c->database, c->kek, &s, why, sizeof(why));
	if (r == -EKEYREJECTED && store_open_why(c->database, new_name, &s, reason, sizeof(reason)) >= 0) {
		/* Committed by a rotate that was stopped before the file took its place. */
		printf("the store is under KEK '%s' (id %s) already: a rotation committed before it was interrupted\n",
		       new_name, kek_id(new_kek));
		goto install;
	}
	if (r < 0)
		return refuse("", why);
	snprintf(old_id, sizeof(old_id), "%s", kek_id(store_kek(s)));
	if ((r = store_begin(s)) < 0) {
		fprintf(stderr, "keystrap-server: cannot write to the store: %s\n", strerror(-r));
		return 1;
	}
	r = store_kek_rotate(s, new_kek, &n, why, sizeof(why));
	if (r == -EALREADY) {
		store_rollback(s);
		printf("the store is under KEK '%s' (id %s) already\n", new_name, kek_id(new_kek));
		goto install;
	}
	if (r < 0) {
		store_rollback(s);
		return refuse("KEK not rotated: ", why[0] ? why : strerror(-r));
	}
	admin_operator(who, sizeof(who));
	snprintf(reason, sizeof(reason), "%lld data keys re-wrapped from KEK id %s to KEK id %s by %s", (long long)n,
		 old_id, kek_id(new_kek), who);
	a = (struct audit_rec){ .time_us = now_usec(), .peer = "local", .ek_hash = "", .node_id = "",
				.action = "kek-rotate", .decision = "allow", .reasons = reason };
	if ((r = store_audit_append(s, &a)) < 0 || (r = store_commit(s)) < 0) {
		store_rollback(s);
		fprintf(stderr, "keystrap-server: KEK not rotated: %s\n", strerror(-r));
		return 1;
	}
	printf("%lld data keys re-wrapped from KEK id %s to KEK id %s\n", (long long)n, old_id, kek_id(new_kek));
install:
	if (!path || !new_path) {
		printf("point 'kek' in %s at '%s'\n", config, kek_name(new_kek));
		return 0;
	}
	if (install(new_path, path) != 0)
		return 1;
	printf("KEK '%s' is now at '%s'; back it up apart from the database\n", new_path, path);
	return 0;
}

static int verify(const char *config)
{
	_cleanup_store_ struct store *s = NULL;
	char why[1024];
	int64_t n;
	int r;

	if ((r = admin_load(config, NULL, &s)) != 0)
		return r;
	if (store_secret_verify(s, &n, why, sizeof(why)) < 0)
		return refuse("", why);
	printf("KEK '%s' (id %s) opens every secret version in the store: %lld\n", kek_name(store_kek(s)),
	       kek_id(store_kek(s)), (long long)n);
	return 0;
}

int cmd_kek(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "new", required_argument, NULL, 'n' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	_cleanup_server_config_ struct server_config *c = NULL;
	const char *config = NULL, *new_name = NULL, *verb, *file;
	int o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'n':
			new_name = optarg;
			break;
		case 'h':
			printf("Usage: %s\n", usage);
			return EXIT_HELP;
		default:
			goto bad;
		}
	if (optind >= argc)
		goto bad;
	verb = argv[optind];
	file = optind + 1 < argc ? argv[optind + 1] : NULL;
	if (argc - optind > 2)
		goto bad;
	if (streq(verb, "init") && !new_name && (file || config)) {
		if (file)
			return init(file);
		if (server_config_load(config, &c) < 0)
			return 1;
		return init(kek_name_file(c->kek) ? kek_name_file(c->kek) : c->kek);
	}
	if (streq(verb, "rotate") && new_name && config && !file)
		return rotate(config, new_name);
	if (streq(verb, "verify") && !new_name && config && !file)
		return verify(config);
bad:
	fprintf(stderr, "Usage: %s\n", usage);
	return EXIT_USAGE;
}
