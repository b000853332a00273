/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "note.h"

#define LINE_MAX_BYTES 4096
#define VALUE_MAX 255
#define PCRS_MAX 2048 /* room for expected digests of every PCR */
#define HEX_RUN_SECRET 32
#define BASE64_RUN_SECRET 24

enum type { T_STRING, T_BOOL, T_UINT, T_BANK, T_FAILURE };

struct key {
	const char *section, *name;
	enum type type;
	size_t offset;
	size_t max_len;
	unsigned min, max, def; /* def: the default, also what an empty value resets to */
	const char *(*check)(const char *value);
	bool digests; /* PCR digests are expected in this value */
	/* A public key, which check() parses as one (a signer's key does not): base64 is expected. */
	bool public_key;
};

static const char *check_device(const char *v)
{
	if (streq(v, "all") || v[0] == '/')
		return NULL;
	if (strncmp(v, "UUID=", 5) == 0 && v[5] && strspn(v + 5, "0123456789abcdefABCDEF-") == strlen(v + 5))
		return NULL;
	return "not an absolute path, UUID=... or \"all\"";
}

static const char *check_name(const char *v)
{
	for (const char *p = v; *p; p++)
		if (*p == '/' || isspace((unsigned char)*p))
			return "not a device-mapper name (no '/' or whitespace)";
	return strlen(v) > 127 ? "not a device-mapper name (at most 127 characters)" : NULL;
}

static const char *check_absolute(const char *v)
{
	return v[0] == '/' ? NULL : "not an absolute path";
}

static const char *check_url(const char *v)
{
	if (strncmp(v, "https://", 8) != 0 || !v[8] || v[8] == '/')
		return "not an https:// URL with a host";
	for (const char *p = v; *p; p++)
		if (isspace((unsigned char)*p))
			return "a URL has no whitespace";
	return NULL;
}

static const char *check_log_key(const char *v)
{
	static char why[256];
	struct note_verifier k;

	return note_verifier_parse(v, &k, why, sizeof(why)) < 0 ? why : NULL;
}

/* A numeric id (safest in an initrd, whose passwd may not know the name) or a user/group name. */
static const char *check_id(const char *v)
{
	if (strspn(v, "0123456789") == strlen(v))
		return strlen(v) > 10 || strtoul(v, NULL, 10) >= 4294967295UL ? "not an id (0-4294967294)" : NULL;
	if (strlen(v) > 32 || !(isalpha((unsigned char)v[0]) || v[0] == '_') ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(v))
		return "neither a numeric id nor a user or group name";
	return NULL;
}

#define FIELD(f) offsetof(struct keystrap_config, f)
static const struct key keys[] = {
	{ "Unlock", "Device", T_STRING, FIELD(device), VALUE_MAX, 0, 0, 0, check_device, false },
	{ "Unlock", "Name", T_STRING, FIELD(name), VALUE_MAX, 0, 0, 0, check_name, false },
	{ "Unlock", "PCRs", T_STRING, FIELD(pcrs), PCRS_MAX, 0, 0, 0, NULL, true },
	{ "Unlock", "PCRBank", T_BANK, FIELD(bank), VALUE_MAX, 0, 0, 0, NULL, false },
	{ "Unlock", "Lock", T_BOOL, FIELD(lock), VALUE_MAX, 0, 1, 1, NULL, false },
	{ "Unlock", "TPM2Signature", T_STRING, FIELD(signature), VALUE_MAX, 0, 0, 0, check_absolute, false },
	{ "Unlock", "Offline", T_BOOL, FIELD(offline), VALUE_MAX, 0, 1, 1, NULL, false },
	{ "Attest", "Server", T_STRING, FIELD(server), VALUE_MAX, 0, 0, 0, check_url, false },
	{ "Attest", "CA", T_STRING, FIELD(ca), VALUE_MAX, 0, 0, 0, check_absolute, false },
	{ "Attest", "Timeout", T_UINT, FIELD(timeout), VALUE_MAX, ATTEST_TIMEOUT_MIN, ATTEST_TIMEOUT_MAX,
	  ATTEST_TIMEOUT_DEFAULT, NULL, false },
	{ "Attest", "Retries", T_UINT, FIELD(retries), VALUE_MAX, 0, ATTEST_RETRIES_MAX, ATTEST_RETRIES_DEFAULT, NULL,
	  false },
	{ "Attest", "FailurePolicy", T_FAILURE, FIELD(emergency), VALUE_MAX, 0, 0, 0, NULL, false },
	{ "Attest", "LogKey", T_STRING, FIELD(log_key), NOTE_KEY_MAX, 0, 0, 0, check_log_key, false, true },
	{ "Handoff", "Owner", T_STRING, FIELD(owner), VALUE_MAX, 0, 0, 0, check_id, false },
	{ "Handoff", "Group", T_STRING, FIELD(group), VALUE_MAX, 0, 0, 0, check_id, false },
};
enum { KEY_DEVICE, KEY_NAME, KEY_PCRS };
#define DEFAULT_BANK "sha256"
static const char *const sections[] = { "Unlock", "Attest", "Handoff" };

struct parser {
	const char *path;
	char *err;
	unsigned line;
	unsigned seen[ELEMENTSOF(keys)]; /* line of each key, 0 = not given */
	bool section_seen[ELEMENTSOF(sections)];
};

static _printf_(3, 4) int fail(struct parser *ps, const struct key *k, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (k)
		n = snprintf(ps->err, CONFIG_ERROR_MAX, "%s:%u: [%s] %s=: ", ps->path, ps->line, k->section,
			     k->name);
	else if (ps->line)
		n = snprintf(ps->err, CONFIG_ERROR_MAX, "%s:%u: ", ps->path, ps->line);
	else
		n = snprintf(ps->err, CONFIG_ERROR_MAX, "%s: ", ps->path);
	if (n < 0 || n >= CONFIG_ERROR_MAX)
		return -EINVAL;
	va_start(ap, fmt);
	(void)vsnprintf(ps->err + n, CONFIG_ERROR_MAX - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool is_hex(char c)
{
	return isxdigit((unsigned char)c);
}

static bool is_base64(char c)
{
	return isalnum((unsigned char)c) || c == '+' || c == '/' || c == '_' || c == '-';
}

/* A URL whose authority carries "user:password@". */
static bool url_with_password(const char *s, size_t n)
{
	const char *p = memmem(s, n, "://", 3);

	while (p) {
		const char *a = p + 3, *end = s + n, *at = NULL;

		for (const char *q = a; q < end && !strchr("/?# \t", *q); q++)
			if (*q == '@')
				at = q;
		if (at && memchr(a, ':', (size_t)(at - a)))
			return true;
		p = memmem(a, (size_t)(end - a), "://", 3);
	}
	return false;
}

const char *config_secret_reason(const char *s, size_t n, bool digests_allowed)
{
	if (memmem(s, n, "-----BEGIN", 10))
		return "it holds a PEM block (reference a file by path instead)";
	if (url_with_password(s, n))
		return "it is a URL with a password";
	for (size_t i = 0; i < n;) {
		size_t j = i;
		bool upper = false, lower = false, digit = false;

		if (!is_base64(s[i])) {
			i++;
			continue;
		}
		for (; j < n && is_base64(s[j]); j++) {
			upper |= isupper((unsigned char)s[j]);
			lower |= islower((unsigned char)s[j]);
			digit |= isdigit((unsigned char)s[j]);
		}
		if (s[i] != '/' && j - i >= BASE64_RUN_SECRET && upper && lower && digit)
			return "it holds a long base64-like string (key material?)";
		for (size_t k = i; k < j && !digests_allowed;) {
			size_t h = k;

			while (h < j && is_hex(s[h]))
				h++;
			if (h - k >= HEX_RUN_SECRET)
				return "it holds a long hex string (key material?)";
			k = h + 1;
		}
		i = j;
	}
	return NULL;
}

static bool secret_key_name(const char *name)
{
	static const char *const words[] = { "pass", "secret", "private", "pin", "token", "psk" };

	for (size_t i = 0; i < ELEMENTSOF(words); i++)
		if (strcasestr(name, words[i]))
			return true;
	return false;
}

static int parse_bool(const char *v, bool *ret)
{
	static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
	static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

	for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *ret = true, 0;
		if (strcasecmp(v, no[i]) == 0)
			return *ret = false, 0;
	}
	return -EINVAL;
}

static int set_value(struct parser *ps, struct keystrap_config *c, const struct key *k, const char *v)
{
	void *field = (char *)c + k->offset;
	const char *why;
	unsigned long n = 0;

	switch (k->type) {
	case T_STRING:
		if (*v && k->check && (why = k->check(v)))
			return fail(ps, k, "'%s' is %s", v, why);
		free(*(char **)field);
		*(char **)field = *v ? strdup(v) : NULL;
		return *v && !*(char **)field ? -ENOMEM : 0;
	case T_BOOL:
		if (!*v)
			return *(bool *)field = k->def, 0;
		if (parse_bool(v, field) < 0)
			return fail(ps, k, "'%s' is not a boolean (yes or no)", v);
		return 0;
	case T_BANK:
		*(const struct pcr_bank **)field = pcr_bank_by_name(*v ? v : DEFAULT_BANK);
		if (!*(const struct pcr_bank **)field)
			return fail(ps, k, "'%s' is not a PCR bank (sha1, sha256, sha384, sha512, sm3_256)", v);
		return 0;
	case T_FAILURE:
		if (!*v || streq(v, "continue"))
			return *(bool *)field = false, 0;
		if (streq(v, "emergency"))
			return *(bool *)field = true, 0;
		return fail(ps, k, "'%s' is neither continue nor emergency", v);
	case T_UINT:
		if (!*v)
			return *(unsigned *)field = k->def, 0;
		if (strspn(v, "0123456789") != strlen(v))
			return fail(ps, k, "'%s' is not a decimal number", v);
		for (const char *p = v; *p && n <= k->max; p++)
			n = n * 10 + (unsigned long)(*p - '0');
		if (n < k->min || n > k->max)
			return fail(ps, k, "%s is out of range (%u-%u)", v, k->min, k->max);
		*(unsigned *)field = (unsigned)n;
		return 0;
	}
	return -EINVAL;
}

static int parse_section(struct parser *ps, const char *s, size_t n, int *section)
{
	if (n < 2 || s[n - 1] != ']')
		return fail(ps, NULL, "'%.*s' is not a [Section] header", (int)n, s);
	for (size_t i = 0; i < ELEMENTSOF(sections); i++)
		if (strlen(sections[i]) == n - 2 && memcmp(sections[i], s + 1, n - 2) == 0) {
			if (ps->section_seen[i])
				return fail(ps, NULL, "section [%s] appears twice", sections[i]);
			ps->section_seen[i] = true;
			*section = (int)i;
			return 0;
		}
	return fail(ps, NULL, "unknown section %.*s (known: [Unlock], [Attest], [Handoff])", (int)n, s);
}

static int parse_assignment(struct parser *ps, struct keystrap_config *c, int section, char *s, size_t n)
{
	char *eq = memchr(s, '=', n), *name = s, *value, *end;
	const struct key *k = NULL;
	const char *why;
	size_t i;

	if (!eq)
		return fail(ps, NULL, "'%.*s' is neither Key=value, a [Section] nor a comment", (int)n, s);
	if (section < 0)
		return fail(ps, NULL, "'%.*s' comes before any [Section]", (int)n, s);
	*eq = 0;
	for (end = eq; end > name && (end[-1] == ' ' || end[-1] == '\t'); end--)
		;
	*end = 0;
	for (value = eq + 1; *value == ' ' || *value == '\t'; value++)
		;
	if ((why = config_secret_reason(name, strlen(name), false)))
		return fail(ps, NULL, "refusing what looks like a secret: %s", why);
	for (i = 0; i < ELEMENTSOF(keys); i++)
		if (streq(keys[i].section, sections[section]) && streq(keys[i].name, name)) {
			k = &keys[i];
			break;
		}
	if (!(k && k->public_key) && (why = config_secret_reason(value, strlen(value), k && k->digests)))
		return fail(ps, NULL, "[%s] %s=: refusing what looks like a secret: %s", sections[section], name,
			    why);
	if (!k) {
		if (secret_key_name(name))
			return fail(ps, NULL, "[%s] %s=: keystrap.conf never holds a secret, and there is no "
				    "such key", sections[section], name);
		return fail(ps, NULL, "[%s] %s=: unknown key", sections[section], name);
	}
	if (ps->seen[i])
		return fail(ps, k, "given twice (first on line %u)", ps->seen[i]);
	ps->seen[i] = ps->line;
	if (strlen(value) > k->max_len)
		return fail(ps, k, "value of %zu bytes is longer than %zu", strlen(value), k->max_len);
	return set_value(ps, c, k, value);
}

static int check_line_bytes(struct parser *ps, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
			return fail(ps, NULL, "control character 0x%02x", (unsigned char)s[i]);
	if (n > 0 && s[n - 1] == '\\')
		return fail(ps, NULL, "a line continuation ('\\' at the end) is not supported");
	return 0;
}

/* Cross-key rules, once every key is known; ps->line points at the offending key. */
static int check_whole(struct parser *ps, struct keystrap_config *c)
{
	struct pcr_spec spec;
	char *bad = NULL;

	if (c->name && !c->device) {
		ps->line = ps->seen[KEY_NAME];
		return fail(ps, &keys[KEY_NAME], "Name= needs Device=");
	}
	if (c->name && c->device && streq(c->device, "all")) {
		ps->line = ps->seen[KEY_NAME];
		return fail(ps, &keys[KEY_NAME], "Device=all opens each volume as luks-UUID: no Name=");
	}
	if (c->pcrs && pcr_spec_parse(c->pcrs, c->bank, &spec, &bad) < 0) {
		ps->line = ps->seen[KEY_PCRS];
		fail(ps, &keys[KEY_PCRS], "'%s' is not a PCR list for %s (like 7,15:0 or 11:HEX)",
		     bad ? bad : c->pcrs, c->bank->name);
		free(bad);
		return -EINVAL;
	}
	return 0;
}

int config_parse(const char *path, const char *text, size_t size, struct keystrap_config **ret, char *err)
{
	_cleanup_config_ struct keystrap_config *c = calloc(1, sizeof(*c));
	struct parser ps = { .path = path, .err = err };
	_cleanup_free_ char *line = malloc(LINE_MAX_BYTES + 1);
	int section = -1, r;

	err[0] = 0;
	if (!c || !line)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		r = set_value(&ps, c, &keys[i], "");
		if (r < 0)
			return r;
	}
	if (size > CONFIG_SIZE_MAX)
		return fail(&ps, NULL, "larger than %u bytes", CONFIG_SIZE_MAX);
	for (size_t off = 0; off < size;) {
		const char *nl = memchr(text + off, '\n', size - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : size - off;
		char *s;

		ps.line++;
		if (n > LINE_MAX_BYTES)
			return fail(&ps, NULL, "line longer than %u bytes", LINE_MAX_BYTES);
		memcpy(line, text + off, n);
		line[n] = 0;
		off += n + 1;
		r = check_line_bytes(&ps, line, n);
		if (r < 0)
			return r;
		for (s = line; *s == ' ' || *s == '\t'; s++)
			;
		while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = 0;
		n = strlen(s);
		if (n == 0)
			continue;
		/* Comments and stray lines too: a pasted key is as public there as anywhere. */
		if (s[0] == '#' || s[0] == ';' || !memchr(s, '=', n)) {
			const char *why = config_secret_reason(s, n, false);

			if (why)
				return fail(&ps, NULL, "refusing what looks like a secret: %s", why);
			if (s[0] == '#' || s[0] == ';')
				continue;
		}
		r = s[0] == '[' ? parse_section(&ps, s, n, &section) : parse_assignment(&ps, c, section, s, n);
		if (r < 0)
			return r;
	}
	r = check_whole(&ps, c);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(c);
	return 0;
}

int config_value(const struct keystrap_config *c, const char *section, const char *name, char **ret)
{
	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		const void *field = (const char *)c + keys[i].offset;
		char *v = NULL;

		if (!streq(keys[i].section, section) || !streq(keys[i].name, name))
			continue;
		switch (keys[i].type) {
		case T_STRING:
			if (!*(char *const *)field)
				return -ENODATA;
			v = strdup(*(char *const *)field);
			break;
		case T_BOOL:
			v = strdup(*(const bool *)field ? "yes" : "no");
			break;
		case T_BANK:
			v = strdup((*(const struct pcr_bank *const *)field)->name);
			break;
		case T_FAILURE:
			v = strdup(*(const bool *)field ? "emergency" : "continue");
			break;
		case T_UINT:
			if (asprintf(&v, "%u", *(const unsigned *)field) < 0)
				v = NULL;
			break;
		}
		if (!v)
			return -ENOMEM;
		*ret = v;
		return 0;
	}
	return -ENOENT;
}

void config_free(struct keystrap_config *c)
{
	if (!c)
		return;
	free(c->device);
	free(c->name);
	free(c->signature);
	free(c->pcrs);
	free(c->server);
	free(c->ca);
	free(c->log_key);
	free(c->owner);
	free(c->group);
	free(c);
}
