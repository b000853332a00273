/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pure parts of the keyring handoff: credential names, /proc/keys candidates (whose
 * descriptions others choose), KEYCTL_DESCRIBE strings, the status text and its PCR list;
 * and keyring_list on a real kernel keyring that grows between its size query and its read.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "handoff-status.h"
#include "keyring.h"
#include "macro.h"
#include "tap.h"

static void test_names(void)
{
	CHECK(keyring_desc_valid("key") && keyring_desc_valid("certificate") && keyring_desc_valid("chain") &&
	      keyring_desc_valid("status") && keyring_desc_valid("secret:db") && keyring_desc_valid("secret:a.b_c-1"),
	      "the credential names");
	CHECK(!keyring_desc_valid("secret:") && !keyring_desc_valid("secret:../x") && !keyring_desc_valid("secret:a b") &&
	      !keyring_desc_valid("secret:.hidden") && !keyring_desc_valid("secret:-x") && !keyring_desc_valid("password") && !keyring_desc_valid("Key"),
	      "anything else is not a credential name");
}

static void test_proc_keys(void)
{
	static const char text[] =
		"04ebc938 I------     1 perm 1f0b0000     0     0 keyring   .builtin_trusted_keys: empty\n"
		"12f020ac I--Q---     1   1h 3f030300 65534 65534 keyring   keystrap: 5\n"
		"0cd9fea6 I--Q---     1  50s 3f030000 65534     0 user      keystrap: 432\n"
		"1d10c5a5 I--Q---     1 perm 0c030000     0 65534 keyring   keystrapx: 2\n"
		"2a38f621 I------     1 perm 1f030000  4242  4242 keyring   x\n"
		"ffffffff I--Q---     1 perm 3f030300  4242  4242 keyring   keystrap: 0\n"
		"3d6b21f1 I--Q---     2  50s 3f030000 65534     0 keyring   keystrap: 4";
	int32_t *ids = NULL;
	size_t n = 0;

	CHECK(keyring_proc_candidates(text, strlen(text), KEYRING_NAME, &ids, &n) == 0 && n == 2 &&
	      ids[0] == 0x12f020ac && ids[1] == 0x3d6b21f1,
	      "/proc/keys: keyrings named exactly 'keystrap', not user keys, not keystrapx, no id above INT32_MAX");
	free(ids);
	CHECK(keyring_proc_candidates("", 0, KEYRING_NAME, &ids, &n) == 0 && n == 0, "an empty /proc/keys");
	free(ids);
	{
		static const char lingering[] =
			"11111111 I-----i     1   1h 3f030300     0     0 keyring   keystrap: 5\n"
			"22222222 IR-Q---     1   1h 3f030300     0     0 keyring   keystrap: 5\n"
			"33333333 I-D----     1   1h 3f030300     0     0 keyring   keystrap: 5\n"
			"44444444 I--Q---     1 expd 3f030300     0     0 keyring   keystrap: 5\n"
			"55555555 I--Q---     1   1h 3f030300     0     0 keyring   keystrap: 5\n";

		CHECK(keyring_proc_candidates(lingering, strlen(lingering), KEYRING_NAME, &ids, &n) == 0 && n == 1 &&
		      ids[0] == 0x55555555,
		      "/proc/keys: an invalidated, revoked, dead or expired keyring (readable until reaped) is no candidate");
		free(ids);
	}
}

static void test_describe(void)
{
	char type[32], desc[KEYRING_DESC_MAX + 1];
	uid_t uid;
	gid_t gid;
	uint32_t perm;

	CHECK(keyring_describe_parse("keyring;65534;65534;3f030300;keystrap", type, sizeof(type), &uid, &gid, &perm, desc,
				     sizeof(desc)) == 0 &&
	      streq(type, "keyring") && uid == 65534 && gid == 65534 && perm == 0x3f030300 && streq(desc, "keystrap"),
	      "KEYCTL_DESCRIBE: type, uid, gid, perm, description");
	CHECK(keyring_describe_parse("user;0;-1;3f010000;a;b;c", type, sizeof(type), &uid, &gid, &perm, desc,
				     sizeof(desc)) == 0 &&
	      gid == (gid_t)-1 && streq(desc, "a;b;c"), "a description may hold ';', gid -1");
	CHECK(keyring_describe_parse("user;x;0;0;d", type, sizeof(type), &uid, &gid, &perm, desc, sizeof(desc)) == -EBADMSG &&
	      keyring_describe_parse("user;0;0;0", type, sizeof(type), &uid, &gid, &perm, desc, sizeof(desc)) == -EBADMSG &&
	      keyring_describe_parse(";0;0;0;d", type, sizeof(type), &uid, &gid, &perm, desc, sizeof(desc)) == -EBADMSG,
	      "malformed descriptions are refused");
}

static void test_status(void)
{
	struct handoff_status s = { .policy_version = 7, .attested_at = 100, .not_after = 700, .clock_skew = -240,
				    .uid = 998, .gid = -1 }, t;
	char *text = NULL, hex[129];

	strcpy(s.node_id, "node1.example");
	strcpy(s.server, "https://attest.example.net:8443");
	strcpy(s.result, "attested");
	strcpy(s.pcrs, "sha256:0=00ff,7=abcd,14=0123");
	strcpy(s.generation, "00112233445566778899aabbccddeeff");
	CHECK(handoff_status_format(&s, &text) == 0 && handoff_status_parse(text, strlen(text), &t) == 0 &&
	      streq(t.node_id, s.node_id) && streq(t.server, s.server) && t.policy_version == 7 && t.attested_at == 100 &&
	      t.not_after == 700 && t.uid == 998 && t.gid == -1 && streq(t.pcrs, s.pcrs) && t.clock_skew == -240 &&
	      streq(t.generation, s.generation),
	      "status text round-trips");
	CHECK(handoff_status_expiry(&t) == 460, "the keys expire at not_after on this node's clock (skew -240 s)");
	free(text);
	/* A status written before the clock skew and the generation: skew 0, no generation. */
	CHECK(handoff_status_parse("node_id=a\nnot_after=9\n", 22, &t) == 0 && t.clock_skew == 0 && !t.generation[0] &&
	      handoff_status_expiry(&t) == 9, "an older status parses, with no skew and no generation");
	CHECK(handoff_status_parse("node_id=a\nnot_after=1\nnode_id=b\n", 30, &t) == -EBADMSG, "a name given twice");
	CHECK(handoff_status_parse("node_id=a\nnot_after=1\nsecret=x\n", 29, &t) == -EBADMSG, "an unknown name");
	CHECK(handoff_status_parse("node_id=a\n", 10, &t) == -EBADMSG, "not_after is required");
	CHECK(handoff_status_parse("node_id=a\nnot_after=1x\n", 23, &t) == -EBADMSG, "a malformed number");
	s.node_id[0] = '\n';
	CHECK(handoff_status_format(&s, &text) == -EINVAL, "a value with a newline is not formatted");
	CHECK(handoff_pcrs_get("sha256:0=00ff,7=abcd,14=0123", 7, hex) == 0 && streq(hex, "abcd") &&
	      handoff_pcrs_get("sha256:0=00ff,7=abcd,14=0123", 14, hex) == 0 && streq(hex, "0123") &&
	      handoff_pcrs_get("sha256:0=00ff,7=abcd,14=0123", 1, hex) == -ENOENT,
	      "PCR list: found, last, absent");
	CHECK(handoff_pcrs_get("sha256:0=00ff,7=", 7, hex) == -EBADMSG && handoff_pcrs_get("0=00", 0, hex) == -EBADMSG &&
	      handoff_pcrs_get("sha256:x=00", 0, hex) == -EBADMSG, "PCR list: malformed");
}

/*
 * The seam: node/keyring.c reaches the kernel through syscall(2), which this binary defines, so
 * a keyring can be made to grow at the exact moment between keyring_list's size query and its
 * read, as another process adding keys would. Everything else passes straight through.
 */
#define KEYCTL_READ 11
#define GROW_BY 64
static int32_t grow_ring;

long syscall(long nr, ...)
{
	static long (*real)(long, ...);
	long a[6], r;
	va_list ap;

	va_start(ap, nr);
	for (size_t i = 0; i < ELEMENTSOF(a); i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (!real)
		real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	r = real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (nr == SYS_keyctl && a[0] == KEYCTL_READ && grow_ring && a[1] == grow_ring && a[2] == 0) {
		static unsigned added;
		int32_t ring = grow_ring;

		grow_ring = 0;
		for (int i = 0; i < GROW_BY; i++) {
			char desc[32];

			/* New names: adding a key under a name the keyring holds replaces it in place. */
			snprintf(desc, sizeof(desc), "secret:g%u", added++);
			(void)real(SYS_add_key, "user", desc, "x", 1L, (long)ring);
		}
	}
	return r;
}

static void test_list_grows(void)
{
	int32_t ring = (int32_t)syscall(SYS_add_key, "keyring", "keystrap-test", NULL, 0L, (long)KEYRING_SPEC_PROCESS);
	struct keyring_entry *e = NULL;
	struct secbuf *b = NULL;
	size_t n = 0;

	if (ring < 0 || syscall(SYS_add_key, "user", "certificate", "pem", 3L, (long)ring) < 0) {
		SKIP("keyring_list on a growing keyring", "no kernel key retention service here");
		return;
	}
	CHECK(keyring_list(ring, &e, &n) == 0 && n == 1 && streq(e[0].desc, "certificate") && e[0].size == 3,
	      "keyring_list: one key, described and sized");
	free(e);
	e = NULL;
	grow_ring = ring;
	CHECK(keyring_list(ring, &e, &n) == -EAGAIN && !e && grow_ring == 0,
	      "keyring_list: a keyring that grew between its size query and its read is -EAGAIN, not over-read");
	CHECK(keyring_list(ring, &e, &n) == 0 && n == 1 + GROW_BY, "keyring_list: listed whole once it holds still");
	free(e);
	grow_ring = ring;
	CHECK(keyring_read(ring, "certificate", &b) == -EAGAIN && !b && grow_ring == 0,
	      "keyring_read: the listing it starts from grew: -EAGAIN");
	secbuf_free(b);
	b = NULL;
	CHECK(keyring_read(ring, "certificate", &b) == 0 && b->size == 3 && memcmp(b->data, "pem", 3) == 0,
	      "keyring_read: the key, once the keyring holds still");
	secbuf_free(b);
}

int main(void)
{
	test_names();
	test_proc_keys();
	test_describe();
	test_status();
	test_list_grows();
	return TAP_DONE();
}
