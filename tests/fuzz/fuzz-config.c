/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * config_parse on arbitrary bytes: keystrap.conf comes from a public, writable-by-whoever-
 * builds-it initramfs. Besides "no crash": a refusal names the file; what is accepted
 * keeps every promise the parser makes (limits, ranges, no control characters, nothing
 * that looks like a secret).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static void must(int cond)
{
	if (!cond)
		abort();
}

static void must_be_clean(const char *s, bool digests)
{
	if (!s)
		return;
	must(*s && strlen(s) <= 2048 && !config_secret_reason(s, strlen(s), digests));
	for (const char *p = s; *p; p++)
		must((unsigned char)*p >= 0x20 || *p == '\t');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct keystrap_config *c = NULL;
	char err[CONFIG_ERROR_MAX];
	int r;

	r = config_parse("fuzz.conf", (const char *)data, size, &c, err);
	if (r < 0) {
		must(r == -EINVAL && !c && strncmp(err, "fuzz.conf", 9) == 0 && memchr(err, 0, sizeof(err)));
		return 0;
	}
	must(c->bank && c->timeout >= 1 && c->timeout <= 300);
	must_be_clean(c->device, false);
	must_be_clean(c->name, false);
	must_be_clean(c->pcrs, true);
	must_be_clean(c->server, false);
	must_be_clean(c->ca, false);
	must(!c->name || (c->device && strcmp(c->device, "all") != 0));
	must(!c->server || strncmp(c->server, "https://", 8) == 0);
	config_free(c);
	return 0;
}
