/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>
#include <tss2/tss2_mu.h>

#include "credential.h"
#include "evidence.h"
#include "payload.h"
#include "secbuf.h"

void evidence_done(struct evidence *e)
{
	eventlog_free(e->firmware);
	cel_done(&e->cel);
	for (size_t i = 0; i < PCR_COUNT; i++)
		free(e->events[i]);
	memset(e, 0, sizeof(*e));
}

static int note_event(struct evidence *e, unsigned pcr, const uint8_t *digest, size_t size)
{
	uint8_t(*p)[PCR_DIGEST_MAX];

	if (pcr >= PCR_COUNT)
		return 0;
	p = reallocarray(e->events[pcr], e->n_events[pcr] + 1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	memset(p[e->n_events[pcr]], 0, PCR_DIGEST_MAX);
	memcpy(p[e->n_events[pcr]++], digest, size);
	e->events[pcr] = p;
	return 0;
}

/* The events' digests in bank, for the allowed-events check (the replay itself is the parsers'). */
static int collect(struct evidence *e, const struct pcr_bank *bank)
{
	int r;

	for (size_t i = 0; e->firmware && i < e->firmware->n_events; i++) {
		const struct eventlog_event *ev = &e->firmware->events[i];

		if (ev->type == EV_NO_ACTION)
			continue;
		for (unsigned j = 0; j < ev->n_digests; j++)
			if (ev->digests[j].bank == bank &&
			    (r = note_event(e, ev->pcr, e->firmware->data + ev->digests[j].offset, bank->size)) < 0)
				return r;
	}
	for (size_t i = 0; i < e->cel.n_records; i++) {
		const struct cel_record *rec = &e->cel.records[i];

		for (unsigned j = 0; j < rec->n_digests; j++)
			if (rec->digests[j].bank == bank && (r = note_event(e, rec->pcr, rec->digests[j].value, bank->size)) < 0)
				return r;
	}
	return 0;
}

static int replay(const struct attest_finish *m, struct evidence *e, char *reason)
{
	char err[EVENTLOG_ERROR_MAX > CEL_ERROR_MAX ? EVENTLOG_ERROR_MAX : CEL_ERROR_MAX];
	size_t b = pcr_bank_index(m->bank);
	int r;

	if (m->event_log_size) {
		r = eventlog_parse(m->event_log, m->event_log_size, &e->firmware, err);
		if (r == -EBADMSG)
			snprintf(reason, ATTEST_REASON_MAX, "firmware event log does not parse: %.150s", err);
		if (r < 0)
			return r;
		e->replay = e->firmware->replay;
	} else
		pcr_replay_init(&e->replay, 0); /* no firmware log: the TPM started at locality 0 */
	if (m->cel_log_size) {
		r = cel_parse(&e->cel, 0, m->cel_log, m->cel_log_size, err);
		if (r == -EBADMSG)
			snprintf(reason, ATTEST_REASON_MAX, "measurement log does not parse: %.150s", err);
		if (r < 0)
			return r;
		if ((r = cel_replay(&e->cel, &e->replay)) < 0)
			return r;
	}
	for (unsigned i = 0; i < PCR_COUNT; i++) {
		if (!(m->mask & (1u << i)))
			continue;
		if (e->replay.unknown[b] & (1u << i)) {
			snprintf(reason, ATTEST_REASON_MAX, "event log has no %s digest for an event of PCR %u (offset %zu)",
				 m->bank->name, i, e->replay.unknown_offset[b][i]);
			return -EPERM;
		}
		if (memcmp(e->replay.values[b][i], m->pcr_values[i], m->bank->size) != 0) {
			snprintf(reason, ATTEST_REASON_MAX, "event log does not replay to quoted PCR %u (%s)", i,
				 m->bank->name);
			return -EPERM;
		}
	}
	return collect(e, m->bank);
}

int evidence_replay(const struct attest_finish *m, struct evidence *ret, char reason[ATTEST_REASON_MAX])
{
	int r;

	memset(ret, 0, sizeof(*ret));
	r = replay(m, ret, reason);
	if (r < 0)
		evidence_done(ret);
	return r;
}

static void items_free(struct payload_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		secbuf_free((struct secbuf *)items[i].value);
	free(items);
}

static int seal(struct secbuf *plain, const struct tpm_pub *ek, const TPM2B_NAME *ak_name, const char *session,
		struct attest_payload *ret)
{
	_cleanup_secbuf_ struct secbuf *key = secbuf_new(PAYLOAD_KEY_SIZE);
	TPM2B_ID_OBJECT blob;
	TPM2B_ENCRYPTED_SECRET seed;
	size_t off = 0;
	int r;

	if (!key)
		return -ENOMEM;
	if (RAND_priv_bytes(key->data, PAYLOAD_KEY_SIZE) != 1)
		return -EIO;
	if ((r = credential_make(ek, ak_name, key->data, key->size, &blob, &seed)) < 0 ||
	    (r = payload_encrypt(key->data, session, plain, ret->iv, &ret->ciphertext, &ret->ciphertext_size)) < 0)
		return r;
	if (Tss2_MU_TPM2B_ID_OBJECT_Marshal(&blob, ret->credential_blob, sizeof(ret->credential_blob), &off) != 0)
		return -EIO;
	ret->credential_blob_size = off;
	off = 0;
	if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(&seed, ret->credential_seed, sizeof(ret->credential_seed), &off) !=
	    0)
		return -EIO;
	ret->credential_seed_size = off;
	return 0;
}

int evidence_seal(struct store *s, char (*const names)[65], size_t n, const struct tpm_pub *ek,
		  const TPM2B_NAME *ak_name, const char *session, struct attest_payload *ret,
		  char reason[ATTEST_REASON_MAX])
{
	_cleanup_secbuf_ struct secbuf *plain = NULL;
	struct payload_item *items = calloc(n ? n : 1, sizeof(*items));
	size_t got = 0, bad = 0;
	int r = 0;

	memset(ret, 0, sizeof(*ret));
	if (!items)
		return -ENOMEM;
	for (; got < n; got++) {
		struct secbuf *v = NULL;

		r = store_secret_get(s, names[got], &v);
		if (r == -ENOENT)
			snprintf(reason, ATTEST_REASON_MAX, "the policy names secret '%s', which is not set", names[got]);
		if (r < 0)
			break;
		items[got] = (struct payload_item){ .name = names[got], .value = v };
	}
	if (r >= 0) {
		r = payload_encode(items, n, &plain, &bad);
		if (r == -EINVAL)
			snprintf(reason, ATTEST_REASON_MAX, "secret '%s' cannot be sent (name or size)", names[bad]);
	}
	items_free(items, got);
	if (r < 0)
		return r;
	r = seal(plain, ek, ak_name, session, ret);
	if (r < 0) {
		free(ret->ciphertext);
		ret->ciphertext = NULL;
	}
	return r;
}
