/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What keystrap get and status parse from the kernel: /proc/keys (whose descriptions anyone
 * who grants us view permission chooses), KEYCTL_DESCRIBE strings, the "status" key and its PCR list.
 * The first byte picks the parser. Besides "no crash": candidates are real ids, a parsed
 * status round-trips through handoff_status_format.
 */
#include <stdlib.h>
#include <string.h>

#include "handoff-status.h"
#include "keyring.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size < 1)
		return 0;
	text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = 0;
	switch (data[0] % 4) {
	case 0: {
		int32_t *ids = NULL;
		size_t n = 0;

		if (keyring_proc_candidates(text, size - 1, KEYRING_NAME, &ids, &n) == 0)
			for (size_t i = 0; i < n; i++)
				if (ids[i] <= 0)
					abort();
		free(ids);
		break;
	}
	case 1: {
		char type[32], desc[KEYRING_DESC_MAX + 1];
		uid_t uid;
		gid_t gid;
		uint32_t perm;

		if (keyring_describe_parse(text, type, sizeof(type), &uid, &gid, &perm, desc, sizeof(desc)) == 0 &&
		    (!type[0] || strchr(type, ';')))
			abort();
		break;
	}
	case 3: {
		char hex[129];

		for (unsigned i = 0; i < 24; i++)
			if (handoff_pcrs_get(text, i, hex) == 0 && (!hex[0] || strlen(hex) > 128))
				abort();
		break;
	}
	default: {
		struct handoff_status s, t;
		char *out = NULL;

		if (handoff_status_parse(text, size - 1, &s) == 0) {
			if (handoff_status_format(&s, &out) == 0) {
				if (handoff_status_parse(out, strlen(out), &t) != 0 || !streq(s.node_id, t.node_id) ||
				    !streq(s.server, t.server) || !streq(s.result, t.result) || !streq(s.pcrs, t.pcrs) ||
				    s.policy_version != t.policy_version || s.attested_at != t.attested_at ||
				    s.not_after != t.not_after || s.uid != t.uid || s.gid != t.gid ||
				    s.revoked_at != t.revoked_at || !streq(s.generation, t.generation))
					abort();
				free(out);
			}
		}
		break;
	}
	}
	free(text);
	return 0;
}
