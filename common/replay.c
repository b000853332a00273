/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "replay.h"

void pcr_replay_init(struct pcr_replay *r, uint32_t banks, uint8_t locality)
{
	memset(r, 0, sizeof(*r));
	r->banks = banks & PCR_BANKS_ALL;
	pcr_replay_set_locality(r, locality);
}

void pcr_replay_set_locality(struct pcr_replay *r, uint8_t locality)
{
	/* TPM 2.0 Part 1, "PCR reset": a TPM started from locality L resets PCR 0 to 0...0L. */
	for (size_t b = 0; b < PCR_BANKS; b++) {
		const struct pcr_bank *bank = pcr_bank_by_index(b);

		r->values[b][0][bank->size - 1] = locality;
	}
}

int pcr_replay_extend(struct pcr_replay *r, struct pcr_hashes *h, const struct pcr_bank *bank, unsigned pcr,
		      const uint8_t *digest)
{
	size_t b = pcr_bank_index(bank);
	int k;

	if (pcr >= PCR_COUNT)
		return -ERANGE;
	if (!(r->banks & (1u << b)))
		return -EINVAL;
	k = pcr_hashes_extend(h, bank, r->values[b][pcr], digest);
	if (k < 0)
		return k;
	r->extended[b] |= 1u << pcr;
	return 0;
}

void pcr_replay_missing(struct pcr_replay *r, const struct pcr_bank *bank, unsigned pcr, size_t offset)
{
	size_t b = pcr_bank_index(bank);

	if (pcr >= PCR_COUNT)
		return;
	if (!(r->unknown[b] & (1u << pcr)))
		r->unknown_offset[b][pcr] = offset;
	r->unknown[b] |= 1u << pcr;
	r->extended[b] |= 1u << pcr;
}

int pcr_replay_event(struct pcr_replay *r, struct pcr_hashes *h, unsigned pcr, size_t offset, unsigned n,
		     const struct pcr_bank *const banks[], const uint8_t *const digests[],
		     const struct pcr_bank **ret_bad)
{
	for (size_t b = 0; b < PCR_BANKS; b++) {
		const struct pcr_bank *bank = pcr_bank_by_index(b);
		const uint8_t *d = NULL;
		int k;

		for (unsigned i = 0; r->banks & (1u << b) && i < n && !d; i++)
			if (banks[i] == bank)
				d = digests[i];
		if (!d) {
			pcr_replay_missing(r, bank, pcr, offset);
			continue;
		}
		k = pcr_replay_extend(r, h, bank, pcr, d);
		if (k < 0) {
			if (ret_bad)
				*ret_bad = bank;
			return k;
		}
	}
	return 0;
}

uint32_t pcr_replay_touched(const struct pcr_replay *r)
{
	uint32_t m = 0;

	for (size_t b = 0; b < PCR_BANKS; b++)
		m |= r->extended[b];
	return m;
}
