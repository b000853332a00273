/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "audit-leaf.h"
#include "encode.h"
#include "log.h"
#include "note.h"
#include "ossl.h"
#include "witness.h"

static int held_open(const struct note_verifier *v, const char *held, struct checkpoint *ret)
{
	char why[256];

	if (!held || !*held) {
		*ret = (struct checkpoint){ 0 };
		return 0;
	}
	if (checkpoint_open(held, strlen(held), v, ret, why, sizeof(why)) < 0)
		return log_error_errno(-EPROTO, "the checkpoint this node holds does not verify with the log key: %s", why);
	return 0;
}

int witness_request_size(const char *log_key, const char *held, uint64_t *ret_size)
{
	struct note_verifier v;
	struct checkpoint c;
	char why[256];
	int r;

	if (note_verifier_parse(log_key, &v, why, sizeof(why)) < 0)
		return log_error_errno(-EINVAL, "[Attest] LogKey='%s': %s", log_key, why);
	if ((r = held_open(&v, held, &c)) < 0)
		return r;
	*ret_size = c.size;
	return 0;
}

/* The certificate's serial as the server's audit record writes it: 40 lowercase hex digits. */
static int serial_of(const char *pem, char ret[41])
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIGNUM *bn = x ? ASN1_INTEGER_to_BN(X509_get_serialNumber(x), NULL) : NULL;
	uint8_t b[20];
	int r = bn && BN_bn2binpad(bn, b, sizeof(b)) == sizeof(b) ? 0 : -EBADMSG;

	if (r == 0)
		hex_encode(b, sizeof(b), ret);
	BN_free(bn);
	X509_free(x);
	BIO_free(bio);
	return r;
}

static bool record_is_ours(const struct audit_leaf *l, const char *ek_hash, const char *node_id, const char *serial)
{
	char prefix[64];

	snprintf(prefix, sizeof(prefix), "certificate %s issued", serial);
	return audit_leaf_field_is(l->action, l->action_len, "attest-finish") &&
	       audit_leaf_field_is(l->decision, l->decision_len, "allow") &&
	       audit_leaf_field_is(l->ek_hash, l->ek_hash_len, ek_hash) &&
	       audit_leaf_field_is(l->node_id, l->node_id_len, node_id) && l->reasons_len >= strlen(prefix) &&
	       memcmp(l->reasons, prefix, strlen(prefix)) == 0;
}

int witness_check(const char *log_key, const char *held, const char *ek_hash, const struct attest_result *res,
		  char **ret_note)
{
	const struct attest_log *g = &res->log;
	struct note_verifier v;
	struct checkpoint now, before;
	struct audit_leaf leaf;
	merkle_hash leaf_hash;
	char why[256], serial[41];
	char *note;

	if (note_verifier_parse(log_key, &v, why, sizeof(why)) < 0)
		return log_error_errno(-EINVAL, "[Attest] LogKey='%s': %s", log_key, why);
	if (held_open(&v, held, &before) < 0)
		return -EPROTO;
	if (!res->has_log)
		return log_error_errno(-EPROTO, "the server sent no proof of its audit log (it keeps no signed log, or "
						"is older): this node witnesses the log and refuses the reply");
	if (checkpoint_open(g->checkpoint, strlen(g->checkpoint), &v, &now, why, sizeof(why)) < 0)
		return log_error_errno(-EPROTO, "the server's checkpoint does not verify: %s", why);
	if (audit_leaf_parse(g->record, g->record_size, &leaf) < 0 || leaf.seq < 1 || (uint64_t)leaf.seq != g->index + 1)
		return log_error_errno(-EPROTO, "the server's audit record is malformed or not at its index");
	if (serial_of(res->certificate, serial) < 0 || !record_is_ours(&leaf, ek_hash, res->node_id, serial))
		return log_error_errno(-EPROTO, "the audit record the server proved is not this attestation's (node %s, "
						"EK %s, certificate %s)",
				       res->node_id, ek_hash, serial);
	if (merkle_leaf_hash(g->record, g->record_size, leaf_hash) < 0 ||
	    merkle_verify_inclusion(g->index, now.size, leaf_hash, (const merkle_hash *)g->inclusion, g->n_inclusion,
				    now.root) < 0)
		return log_error_errno(-EPROTO, "the inclusion proof of this attestation's record (%" PRIu64
						" in %" PRIu64 ") does not verify against the checkpoint",
				       g->index + 1, now.size);
	if (before.size > 0) {
		if (!g->has_consistency)
			return log_error_errno(-EPROTO, "the server gave no consistency proof from the checkpoint this node "
							"holds (%" PRIu64 " records) to its new one (%" PRIu64
							" records): its log lost records or forked",
					       before.size, now.size);
		if (merkle_verify_consistency(before.size, now.size, before.root, now.root,
					      (const merkle_hash *)g->consistency, g->n_consistency) < 0)
			return log_error_errno(-EPROTO, "the server's log (%" PRIu64 " records) does not extend the "
							"checkpoint this node holds (%" PRIu64
							" records): it was forked or rewritten",
					       now.size, before.size);
	}
	if (!(note = strdup(g->checkpoint)))
		return -ENOMEM;
	*ret_note = note;
	return 0;
}
