/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The audit log is a hash chain. Each record's hash is SHA-256(prev_hash || seq || time ||
 * peer || EK hash || node id || action || decision || reasons), every field length-prefixed,
 * and prev_hash is the previous record's hash (zeros for seq 1). The store computes it when it
 * appends a record; `keystrap-server audit verify` recomputes it for every record.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ossl.h"
#include "store.h"

static int put_field(EVP_MD_CTX *c, const void *p, size_t n)
{
	uint8_t len[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };

	return EVP_DigestUpdate(c, len, sizeof(len)) && EVP_DigestUpdate(c, p, n) ? 0 : -EIO;
}

static int put_str(EVP_MD_CTX *c, const char *s)
{
	return put_field(c, s ? s : "", s ? strlen(s) : 0);
}

int audit_rec_hash(const struct audit_rec *r, uint8_t ret[32])
{
	_cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *c = EVP_MD_CTX_new();
	char seq[24], t[24];

	snprintf(seq, sizeof(seq), "%" PRId64, r->seq);
	snprintf(t, sizeof(t), "%" PRId64, r->time_us);
	if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) || !EVP_DigestUpdate(c, r->prev_hash, 32) ||
	    put_str(c, seq) < 0 || put_str(c, t) < 0 || put_str(c, r->peer) < 0 || put_str(c, r->ek_hash) < 0 ||
	    put_str(c, r->node_id) < 0 || put_str(c, r->action) < 0 || put_str(c, r->decision) < 0 ||
	    put_str(c, r->reasons) < 0 || !EVP_DigestFinal_ex(c, ret, NULL))
		return -EIO;
	return 0;
}
