/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"
#include "pcr.h"

/*
 * /etc/keystrap/keystrap.conf: systemd-style INI, parsed strictly (unknown sections or
 * keys, a key given twice, oversize values and out-of-range numbers are errors naming the
 * file, line and key) and refused when anything in it looks like a secret — the file ends
 * up in a public initramfs. Pure code: config_parse takes the bytes, never a path to open,
 * so that what keystrap measures and what it parses are the same bytes.
 */

#define CONFIG_PATH "/etc/keystrap/keystrap.conf"

/* [Attest] Timeout= and keystrap attest --timeout: seconds per request to the server. */
#define ATTEST_TIMEOUT_MIN 1
#define ATTEST_TIMEOUT_MAX 300
#define ATTEST_TIMEOUT_DEFAULT 20
/* [Attest] Retries= and keystrap attest --retries: further tries in all (node/attest.h). */
#define ATTEST_RETRIES_MAX 20
#define ATTEST_RETRIES_DEFAULT 4
#define CONFIG_SIZE_MAX 65536
#define CONFIG_ERROR_MAX 512

struct keystrap_config {
	/* [Unlock] */
	char *device;   /* LUKS2 device, UUID=..., or "all" */
	char *name;     /* device-mapper name (not with Device=all) */
	char *pcrs;     /* what enroll binds, --pcrs syntax */
	const struct pcr_bank *bank;
	bool lock;      /* extend PCR 15 once the volumes are open */
	char *signature; /* systemd's PCR signature file for signed-policy tokens (tpm2-signature=) */
	/* Offline=: strict TPM-only tokens are kept beside an attested one (yes) or not (no:
	 * enroll --attested removes them, unlock ignores them where an attested token is) */
	bool offline;
	/* [Attest] */
	char *server;   /* https:// URL of keystrap-server */
	char *ca;       /* path of the CA certificate that signs the server's */
	unsigned timeout; /* seconds */
	unsigned retries; /* further tries in all, within timeout x (retries + 1) */
	bool emergency;   /* FailurePolicy=emergency: no credentials stops the boot */
	char *log_key;    /* LogKey=: the server's audit log key; the node witnesses the log */
	/* [Handoff] */
	char *owner;    /* the consumer's uid (or user name) that may read the credentials */
	char *group;    /* the group (gid or name) that may read them */
};

/*
 * Parses size bytes of text; path only names the file in messages. On failure returns
 * -EINVAL (or -ENOMEM) and writes "PATH:LINE: [Section] Key=: reason" to err
 * (CONFIG_ERROR_MAX bytes).
 */
int config_parse(const char *path, const char *text, size_t size, struct keystrap_config **ret, char *err);
void config_free(struct keystrap_config *c);
static inline void config_freep(struct keystrap_config **c)
{
	config_free(*c);
}
#define _cleanup_config_ _cleanup_(config_freep)

/*
 * The value of [section] name= in c, malloc'ed, as keystrap.conf spells it, defaults included:
 * yes/no, a number, the bank's name, continue/emergency, the string. -ENOENT: no such key;
 * -ENODATA: a key without a default that the file does not set.
 */
int config_value(const struct keystrap_config *c, const char *section, const char *name, char **ret);

/*
 * The rule that keeps secrets out: NULL if s may stand in a config file, else why not. In
 * values and comments alike: a PEM block, a URL with a password, a hex run of 32 or more
 * digits (128 bits; PCR digests belong in PCRs= only), or a run of 24 or more base64
 * characters mixing upper case, lower case and digits (not starting with '/', which is a path).
 */
const char *config_secret_reason(const char *s, size_t n, bool digests_allowed);
