/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * An audit record as a leaf of the log's Merkle tree: version byte 0x01, then seq, time_us
 * (decimal), peer, EK hash, node id, action, decision and reasons, each as a 4-byte big-endian
 * length and its bytes. The server writes it; a witnessing node reads its own record from it.
 */
#define AUDIT_LEAF_VERSION 0x01
#define AUDIT_LEAF_FIELDS 8
#define AUDIT_LEAF_MAX 8192

struct audit_leaf {
	int64_t seq, time_us;
	/* Into the parsed bytes, not NUL-terminated: field and its length. */
	const char *peer, *ek_hash, *node_id, *action, *decision, *reasons;
	size_t peer_len, ek_hash_len, node_id_len, action_len, decision_len, reasons_len;
};

/* Any field NULL is empty. Text longer than the leaf allows is cut (reasons last). */
int audit_leaf_encode(int64_t seq, int64_t time_us, const char *peer, const char *ek_hash, const char *node_id,
		      const char *action, const char *decision, const char *reasons, uint8_t *ret, size_t *ret_size);
/* -EBADMSG on anything that is not exactly one such record. */
int audit_leaf_parse(const uint8_t *p, size_t size, struct audit_leaf *ret);
/* field (of len bytes) equals the NUL-terminated s. */
int audit_leaf_field_is(const char *field, size_t len, const char *s);
