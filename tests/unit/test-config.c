/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* node/config.c: the shipped example parses; every strictness rule and the secret rule, with the message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fileio.h"
#include "macro.h"
#include "tap.h"

static int parse(const char *text, struct keystrap_config **c, char *err)
{
	*c = NULL;
	return config_parse("k.conf", text, strlen(text), c, err);
}

static void test_example(void)
{
	_cleanup_free_ uint8_t *data = NULL;
	struct keystrap_config *c = NULL;
	char err[CONFIG_ERROR_MAX];
	size_t size = 0;

	CHECK(read_file("dist/keystrap.conf.example", CONFIG_SIZE_MAX, &data, &size) == 0,
	      "keystrap.conf.example is readable");
	CHECK(data && config_parse("dist/keystrap.conf.example", (const char *)data, size, &c, err) == 0,
	      "the shipped example parses");
	CHECK(c && streq(c->device, "UUID=5465369a-996d-42ca-9ad4-91d0082e0b34") && streq(c->name, "cryptroot") &&
	      streq(c->pcrs, "7,15:0") && streq(c->bank->name, "sha256") && c->lock,
	      "its [Unlock] values are read");
	CHECK(c && streq(c->server, "https://attest.example.net:8443") && streq(c->ca, "/etc/keystrap/server-ca.pem") &&
	      c->timeout == 20, "its [Attest] values are read");
	config_free(c);
}

static void test_defaults(void)
{
	struct keystrap_config *c;
	char err[CONFIG_ERROR_MAX];

	CHECK(parse("", &c, err) == 0 && !c->device && !c->name && !c->pcrs && !c->server && !c->ca &&
	      streq(c->bank->name, "sha256") && c->lock && c->timeout == 20,
	      "an empty file means every default");
	config_free(c);
	CHECK(parse("# comment\n; comment\n\n  [Unlock]  \n\tLock = no \nPCRBank=\n[Attest]\nTimeout=\n", &c, err) == 0 &&
	      !c->lock && streq(c->bank->name, "sha256") && c->timeout == 20,
	      "comments, blank lines, whitespace around '=' and empty values (the default)");
	config_free(c);
	CHECK(parse("[Unlock]\nDevice=all\nPCRs=7,11:" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", &c, err) == 0 &&
	      streq(c->device, "all"), "Device=all, and PCR digests in PCRs= are not taken for secrets");
	config_free(c);
	CHECK(parse("[Unlock]\nDevice=/dev/vda2\nName=root\nLock=off\n[Attest]\nTimeout=300", &c, err) == 0 &&
	      streq(c->device, "/dev/vda2") && !c->lock && c->timeout == 300, "a last line without a newline");
	config_free(c);
}

static void refuse(const char *text, const char *want, const char *name)
{
	struct keystrap_config *c = NULL;
	char err[CONFIG_ERROR_MAX], n[2 * CONFIG_ERROR_MAX];
	int r = parse(text, &c, err);

	snprintf(n, sizeof(n), "refused: %s (\"%s\")", name, err);
	CHECK(r == -EINVAL && !c && streq(err, want), n);
	config_free(c);
}

static void test_strict(void)
{
	char big[CONFIG_SIZE_MAX + 16], line[5000];

	refuse("[Unlock]\nDevise=/dev/sda\n", "k.conf:2: [Unlock] Devise=: unknown key", "an unknown key");
	refuse("[Unlock]\nServer=https://x\n", "k.conf:2: [Unlock] Server=: unknown key", "a key in the wrong section");
	refuse("[Unlock]\nName=a\nDevice=/dev/x\nName=b\n",
	       "k.conf:4: [Unlock] Name=: given twice (first on line 2)", "a duplicate key");
	refuse("[Unlock]\n[Attest]\n[Unlock]\n", "k.conf:3: section [Unlock] appears twice", "a duplicate section");
	refuse("[Install]\n", "k.conf:1: unknown section [Install] (known: [Unlock], [Attest], [Handoff])", "an unknown section");
	refuse("Device=/dev/sda\n", "k.conf:1: 'Device=/dev/sda' comes before any [Section]", "a key outside a section");
	refuse("[Unlock]\njust words\n", "k.conf:2: 'just words' is neither Key=value, a [Section] nor a comment",
	       "a line that is nothing");
	refuse("[Unlock\n", "k.conf:1: '[Unlock' is not a [Section] header", "a broken header");
	refuse("[Attest]\nTimeout=301\n", "k.conf:2: [Attest] Timeout=: 301 is out of range (1-300)",
	       "a number above its range");
	refuse("[Attest]\nTimeout=0\n", "k.conf:2: [Attest] Timeout=: 0 is out of range (1-300)", "a number below its range");
	refuse("[Attest]\nTimeout=99999999999999999999999\n",
	       "k.conf:2: [Attest] Timeout=: 99999999999999999999999 is out of range (1-300)", "a number that overflows");
	refuse("[Attest]\nTimeout=-5\n", "k.conf:2: [Attest] Timeout=: '-5' is not a decimal number", "a negative number");
	refuse("[Unlock]\nLock=maybe\n", "k.conf:2: [Unlock] Lock=: 'maybe' is not a boolean (yes or no)", "a non-boolean");
	refuse("[Unlock]\nPCRBank=md5\n",
	       "k.conf:2: [Unlock] PCRBank=: 'md5' is not a PCR bank (sha1, sha256, sha384, sha512, sm3_256)", "an unknown bank");
	refuse("[Unlock]\nPCRBank=sha1\nPCRs=7,99\n",
	       "k.conf:3: [Unlock] PCRs=: '99' is not a PCR list for sha1 (like 7,15:0 or 11:HEX)", "a PCR out of range");
	refuse("[Unlock]\nDevice=sda\n",
	       "k.conf:2: [Unlock] Device=: 'sda' is not an absolute path, UUID=... or \"all\"", "a relative device");
	refuse("[Unlock]\nDevice=all\nName=x\n",
	       "k.conf:3: [Unlock] Name=: Device=all opens each volume as luks-UUID: no Name=", "Name= with Device=all");
	refuse("[Unlock]\nName=x\n", "k.conf:2: [Unlock] Name=: Name= needs Device=", "Name= without Device=");
	refuse("[Unlock]\nDevice=/dev/x\nName=a/b\n",
	       "k.conf:3: [Unlock] Name=: 'a/b' is not a device-mapper name (no '/' or whitespace)", "a '/' in a name");
	refuse("[Attest]\nServer=http://x\n", "k.conf:2: [Attest] Server=: 'http://x' is not an https:// URL with a host",
	       "a plain-http server");
	refuse("[Attest]\nCA=ca.pem\n", "k.conf:2: [Attest] CA=: 'ca.pem' is not an absolute path", "a relative CA path");
	refuse("[Unlock]\nLock=yes\\\n", "k.conf:2: a line continuation ('\\' at the end) is not supported",
	       "a line continuation");
	refuse("[Unlock]\nLock=y\res\n", "k.conf:2: control character 0x0d", "a control character");

	memset(line, 'a', sizeof(line) - 1);
	line[sizeof(line) - 1] = 0;
	memcpy(line, "[Attest]\nCA=/", 13);
	refuse(line, "k.conf:2: line longer than 4096 bytes", "an oversize line");
	memset(line, 'x', 300);
	memcpy(line, "[Attest]\nCA=/", 13);
	line[300] = 0;
	refuse(line, "k.conf:2: [Attest] CA=: value of 288 bytes is longer than 255", "an oversize value");
	memset(big, '#', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	refuse(big, "k.conf: larger than 65536 bytes", "an oversize file");
}

static void test_secrets(void)
{
	refuse("[Unlock]\nPassword=hunter2\n",
	       "k.conf:2: [Unlock] Password=: keystrap.conf never holds a secret, and there is no such key",
	       "a password key");
	refuse("[Attest]\nServer=https://admin:hunter2@attest.example.net\n",
	       "k.conf:2: [Attest] Server=: refusing what looks like a secret: it is a URL with a password",
	       "a URL with a password");
	refuse("# -----BEGIN PRIVATE KEY-----\n",
	       "k.conf:1: refusing what looks like a secret: it holds a PEM block (reference a file by path instead)",
	       "a PEM block in a comment");
	refuse("[Unlock]\nName=" "00112233445566778899aabbccddeeff\nDevice=/dev/x\n",
	       "k.conf:2: [Unlock] Name=: refusing what looks like a secret: it holds a long hex string (key material?)",
	       "a 128-bit hex string");
	refuse("# key: q83vEjRWeJq8Ad7vEjRWeJq8Ad7vEjRWeJq8Ad7vEjQ=\n",
	       "k.conf:1: refusing what looks like a secret: it holds a long base64-like string (key material?)",
	       "a base64 key in a comment");
	refuse("[Unlock]\nq83vEjRWeJq8Ad7vEjRWeJq8Ad7vEjRWeJq8Ad7vEjQ\n",
	       "k.conf:2: refusing what looks like a secret: it holds a long base64-like string (key material?)",
	       "a bare base64 line (its text is not echoed)");
	CHECK(!config_secret_reason("/etc/keystrap/Server-CA-2024-Intermediate.pem", 45, false),
	      "a path with mixed case and digits is not a secret");
	CHECK(!config_secret_reason("UUID=5465369A-996D-42CA-9AD4-91D0082E0B34", 41, false),
	      "an upper-case UUID is not a secret");
	CHECK(!config_secret_reason("https://attest.example.net:8443/v1/Attest2024", 45, false),
	      "a URL without a password is not a secret");
	CHECK(config_secret_reason("0123456789abcdef0123456789abcdef", 32, false) &&
	      !config_secret_reason("0123456789abcdef0123456789abcde", 31, false),
	      "the hex rule starts at 32 digits");
}

static void test_handoff(void)
{
	struct keystrap_config *c;
	char err[CONFIG_ERROR_MAX];

	CHECK(parse("", &c, err) == 0 && c->retries == 4 && !c->emergency && !c->owner && !c->group,
	      "[Attest] Retries=4, FailurePolicy=continue and no [Handoff] owner by default");
	config_free(c);
	CHECK(parse("[Attest]\nRetries=0\nFailurePolicy=emergency\n[Handoff]\nOwner=998\nGroup=www-data\n", &c, err) == 0 &&
	      c->retries == 0 && c->emergency && streq(c->owner, "998") && streq(c->group, "www-data"),
	      "Retries=, FailurePolicy=emergency, a numeric Owner= and a Group= name");
	config_free(c);
	refuse("[Attest]\nFailurePolicy=halt\n", "k.conf:2: [Attest] FailurePolicy=: 'halt' is neither continue nor emergency",
	       "an unknown failure policy");
	refuse("[Attest]\nRetries=21\n", "k.conf:2: [Attest] Retries=: 21 is out of range (0-20)", "too many retries");
	refuse("[Handoff]\nOwner=4294967295\n", "k.conf:2: [Handoff] Owner=: '4294967295' is not an id (0-4294967294)",
	       "Owner=-1 as an unsigned id");
	refuse("[Handoff]\nGroup=a b\n", "k.conf:2: [Handoff] Group=: 'a b' is neither a numeric id nor a user or group name",
	       "a group name with a space");
}

/* config_value of c's [section] name= is want. */
static bool value_is(const struct keystrap_config *c, const char *section, const char *name, const char *want)
{
	_cleanup_free_ char *v = NULL;

	return config_value(c, section, name, &v) == 0 && streq(v, want);
}

static void test_value(void)
{
	struct keystrap_config *c;
	char err[CONFIG_ERROR_MAX];
	_cleanup_free_ char *v = NULL;

	CHECK(parse("[Unlock]\nDevice=/dev/vda2\nLock=off\nPCRBank=sha384\n[Attest]\nServer=https://a.example\n"
		    "FailurePolicy=emergency\nRetries=0\n", &c, err) == 0, "a file to ask");
	CHECK(value_is(c, "Unlock", "Device", "/dev/vda2") && value_is(c, "Attest", "Server", "https://a.example"),
	      "config_value: strings as given");
	CHECK(value_is(c, "Unlock", "Lock", "no") && value_is(c, "Unlock", "PCRBank", "sha384") &&
		      value_is(c, "Attest", "FailurePolicy", "emergency") && value_is(c, "Attest", "Retries", "0"),
	      "config_value: a boolean, a bank, the failure policy and a number as keystrap.conf spells them");
	CHECK(value_is(c, "Attest", "Timeout", "20"), "config_value: a number the file leaves out is its default");
	CHECK(config_value(c, "Attest", "CA", &v) == -ENODATA && !v && config_value(c, "Handoff", "Owner", &v) == -ENODATA,
	      "config_value: a string the file leaves out is not set");
	CHECK(config_value(c, "Attest", "Password", &v) == -ENOENT && config_value(c, "attest", "Server", &v) == -ENOENT &&
		      config_value(c, "Handoff", "Device", &v) == -ENOENT && !v,
	      "config_value: no such key (spelt as in the file, in its own section)");
	config_free(c);
	CHECK(parse("", &c, err) == 0 && value_is(c, "Attest", "FailurePolicy", "continue") &&
		      value_is(c, "Unlock", "Lock", "yes") && value_is(c, "Unlock", "PCRBank", "sha256"),
	      "config_value: an empty file answers the defaults");
	config_free(c);
}

int main(void)
{
	test_value();
	test_example();
	test_defaults();
	test_strict();
	test_secrets();
	test_handoff();
	return TAP_DONE();
}
