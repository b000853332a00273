/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "log-proof.h"

int witness_checkpoint(struct store *s, char **ret_note, uint64_t *ret_size)
{
	int r;

	if ((r = store_checkpoint_sign(s)) < 0)
		return r;
	return store_checkpoint_get(s, ret_size, ret_note);
}

int witness_prove(struct store *s, const char *note, uint64_t size, uint64_t held, struct attest_log *log)
{
	merkle_hash proof[MERKLE_PROOF_MAX];
	size_t n;
	int r;

	if (strlen(note) > ATTEST_CHECKPOINT_MAX)
		return -E2BIG;
	snprintf(log->checkpoint, sizeof(log->checkpoint), "%s", note);
	if ((r = store_log_prove_inclusion(s, log->index, size, proof, &n)) < 0)
		return r;
	memcpy(log->inclusion, proof, n * sizeof(proof[0]));
	log->n_inclusion = n;
	log->has_consistency = false;
	if (held == 0)
		return 0;
	if (held > size) {
		log_warning("a node holds a checkpoint of %" PRIu64 " records, more than the log's %" PRIu64
			    ": no consistency proof exists (a log that lost records, or another log's checkpoint)",
			    held, size);
		return 0;
	}
	if ((r = store_log_prove_consistency(s, held, size, proof, &n)) < 0)
		return r;
	memcpy(log->consistency, proof, n * sizeof(proof[0]));
	log->n_consistency = n;
	log->has_consistency = true;
	return 0;
}
