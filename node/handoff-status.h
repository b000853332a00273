/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The non-secret facts keystrap handoff leaves next to the credentials (the "status" key),
 * for keystrap status and keystrap verify: "name=value" lines. Pure code; the parser is
 * fuzzed (whoever may write the key could feed it anything).
 */

#define HANDOFF_STATUS_PCRS_MAX 2400 /* sha256 values of PCRs 0-23 as "N=HEX," */
#define HANDOFF_GENERATION_SIZE 16    /* random bytes; hex in the status */
#define HANDOFF_CHECKPOINT_MAX 1100   /* base64 of a checkpoint note of up to 824 bytes */


struct handoff_status {
	char node_id[65];
	char server[256];
	int64_t policy_version;
	int64_t attested_at;  /* Unix seconds */
	int64_t not_after;    /* Unix seconds, the certificate's (the server's clock) */
	int64_t clock_skew;   /* this node's clock minus the server's at the attestation, seconds */
	char result[32];      /* "attested" */
	int64_t uid, gid;     /* the consumer; -1: none */
	char pcrs[HANDOFF_STATUS_PCRS_MAX + 1]; /* "sha256:0=HEX,1=HEX,..." read after the handoff; may be "" */
	/* Names this keyring's contents: every handoff makes a new one; "" in a status from before. */
	char generation[2 * HANDOFF_GENERATION_SIZE + 1];
	/* When keystrap verify (or a renewal) heard the server say this node is revoked and took the
	 * credentials away, Unix seconds; 0: not revoked. A revoked keyring holds this status only. */
	int64_t revoked_at;
	/* The audit log checkpoint the node holds, base64 of its note; "" when it does not witness. */
	char checkpoint[HANDOFF_CHECKPOINT_MAX + 1];
};

/* When the keys time out, by this node's clock (the kernel's). */
static inline int64_t handoff_status_expiry(const struct handoff_status *s)
{
	return s->not_after + s->clock_skew;
}

/* The held checkpoint's note from the status (malloc'ed), NULL when there is none or it is malformed. */
char *handoff_status_checkpoint(const struct handoff_status *s);
/* s->checkpoint from a note; -E2BIG when it is too long to keep. */
int handoff_status_set_checkpoint(struct handoff_status *s, const char *note);

/* The text, NUL-terminated, in a malloc'd string. */
int handoff_status_format(const struct handoff_status *s, char **ret);

/* -EBADMSG naming nothing secret: unknown or repeated names, oversize or malformed values. */
int handoff_status_parse(const char *text, size_t size, struct handoff_status *ret);

/*
 * The hex value of PCR index in a "sha256:N=HEX,..." list: 0 and hex copied (at most 128
 * digits), -ENOENT when the list does not name it, -EBADMSG when it is malformed.
 */
int handoff_pcrs_get(const char *pcrs, unsigned index, char hex[129]);
