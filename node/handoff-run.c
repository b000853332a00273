/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The steps of keystrap handoff (and verify) that come before the keyring: the measured
 * configuration, the PCR snapshot recorded with the credentials, the status read back.
 */
#include <errno.h>
#include <stdio.h>

#include "attest.h"
#include "encode.h"
#include "handoff-status.h"
#include "handoff.h"
#include "keyring.h"
#include "log.h"
#include "measure.h"
#include "open.h"
#include "pcr.h"

int pcr_snapshot(char *buf, size_t size)
{
	_cleanup_tpm_ struct tpm *t = NULL;
	const struct pcr_bank *bank = pcr_bank_by_name("sha256");
	static uint8_t values[PCR_COUNT][PCR_DIGEST_MAX];
	size_t off;
	int r;

	if ((r = tpm_connect(&t)) < 0)
		return r;
	r = tpm_pcr_read(t, bank, PCR_SNAPSHOT_MASK, values);
	if (r < 0)
		return log_error_errno(r, "cannot read the PCRs: %s", tpm_failure_reason(r));
	off = (size_t)snprintf(buf, size, "sha256:");
	for (unsigned i = 0; i < PCR_COUNT && off + 72 < size; i++) {
		char hex[2 * PCR_DIGEST_MAX + 1];

		if (!(PCR_SNAPSHOT_MASK & (1u << i)))
			continue;
		hex_encode(values[i], bank->size, hex);
		off += (size_t)snprintf(buf + off, size - off, "%s%u=%s", off > 7 ? "," : "", i, hex);
	}
	return 0;
}

int handoff_config(const char *path, struct keystrap_config **ret)
{
	_cleanup_config_ struct keystrap_config *cfg = NULL;

	/* Measured (PCR 12, once per boot) before anything in it is used. */
	if (config_load(NULL, path, &cfg) < 0)
		return -EINVAL;
	if (!cfg->server || !cfg->ca)
		return log_error_errno(-EINVAL, "%s: [Attest] Server= and CA= are needed to attest", path);
	*ret = TAKE_PTR(cfg);
	return 0;
}

int handoff_status_read(struct handoff_status *ret)
{
	_cleanup_secbuf_ struct secbuf *b = NULL;
	int32_t ring;
	int r;

	if ((r = keyring_find_for_caller(&ring)) < 0 || (r = keyring_read(ring, "status", &b)) < 0)
		return r;
	return handoff_status_parse((const char *)b->data, b->size, ret);
}

int handoff_status_write(const struct handoff_status *s)
{
	_cleanup_free_ char *text = NULL;
	int32_t ring;
	int r;

	if ((r = handoff_status_format(s, &text)) < 0 || (r = keyring_find_for_caller(&ring)) < 0)
		return r;
	return keyring_update(ring, "status", text, strlen(text));
}

int handoff_attest(const struct keystrap_config *cfg, enum tpm_ek_kind kind, const char *checkpoint,
		   struct node_credentials **ret, enum attest_failure *failure)
{
	struct attest_options a;

	attest_options_from_config(cfg, kind, &a);
	a.checkpoint = checkpoint;
	return attest_run(&a, ret, failure);
}
