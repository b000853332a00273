/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "encode.h"
#include "fileio.h"
#include "json-cleanup.h"
#include "macro.h"
#include "pcrsig.h"
#include "token.h"

static const char *const search_dirs[] = {
	"/etc/systemd", "/run/systemd", "/usr/local/lib/systemd", "/usr/lib/systemd",
};

static int load_one(const char *path, json_object **ret)
{
	_cleanup_free_ uint8_t *text = NULL;
	size_t size = 0;
	int r;

	r = read_file(path, PCRSIG_FILE_MAX, &text, &size);
	if (r < 0)
		return r;
	*ret = json_parse_object((const char *)text, size, PCRSIG_FILE_MAX);
	return *ret ? 0 : -EBADMSG;
}

int pcrsig_load(const char *path, json_object **ret, char **ret_path)
{
	char *p;
	int r;

	*ret_path = NULL;
	if (path) {
		*ret_path = strdup(path);
		return *ret_path ? load_one(path, ret) : -ENOMEM;
	}
	for (size_t i = 0; i <= ELEMENTSOF(search_dirs); i++) {
		const char *dir = i < ELEMENTSOF(search_dirs) ? search_dirs[i] : "/.extra";

		/* systemd-stub's drop box is only trusted as far as an initrd trusts its own root. */
		if (i == ELEMENTSOF(search_dirs) && access("/etc/initrd-release", F_OK) < 0)
			break;
		if (asprintf(&p, "%s/%s", dir, PCRSIG_NAME) < 0)
			return -ENOMEM;
		r = load_one(p, ret);
		if (r != -ENOENT) {
			*ret_path = p;
			return r;
		}
		free(p);
	}
	*ret_path = strdup(PCRSIG_NAME);
	return *ret_path ? -ENOENT : -ENOMEM;
}

static bool pcrs_equal(json_object *a, uint32_t mask)
{
	uint32_t have = 0;

	if (!json_object_is_type(a, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i);
		int64_t p = json_object_get_int64(e);

		if (!json_object_is_type(e, json_type_int) || p < 0 || p >= PCR_COUNT)
			return false;
		have |= 1u << p;
	}
	return have == mask;
}

static bool hex_is(json_object *o, const char *key, const uint8_t want[32])
{
	uint8_t have[32];
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) &&
	       hex_decode(json_object_get_string(v), have, sizeof(have)) == 0 &&
	       memcmp(have, want, sizeof(have)) == 0;
}

int pcrsig_find(json_object *root, const struct pcr_bank *bank, uint32_t mask, const uint8_t fp[32],
		const uint8_t pol[32], uint8_t *ret_sig, size_t max, size_t *ret_size,
		const char **ret_reason)
{
	json_object *entries, *e, *v;
	int r = -ENOENT;
	long n;

	*ret_reason = "it holds no signature for this bank and exactly these PCRs";
	if (!json_object_object_get_ex(root, bank->name, &entries) ||
	    !json_object_is_type(entries, json_type_array))
		return r;
	for (size_t i = 0; i < json_object_array_length(entries); i++) {
		e = json_object_array_get_idx(entries, i);
		if (!json_object_is_type(e, json_type_object) || !json_object_object_get_ex(e, "pcrs", &v) ||
		    !pcrs_equal(v, mask))
			continue;
		if (!hex_is(e, "pkfp", fp)) {
			if (r == -ENOENT) {
				r = -EKEYREJECTED;
				*ret_reason = "its signatures for these PCRs are by another key: none has "
					      "the pkfp (SHA-256 fingerprint) of the token's tpm2_pubkey";
			}
			continue;
		}
		if (!hex_is(e, "pol", pol)) {
			r = -ESTALE;
			*ret_reason = "none of its signatures by the token's key is for the current PCR "
				      "values (no pol matches)";
			continue;
		}
		if (!json_object_object_get_ex(e, "sig", &v) || !json_object_is_type(v, json_type_string) ||
		    (n = base64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v),
				       ret_sig, max)) <= 0) {
			*ret_reason = "the entry for the current PCR values has a sig that is not base64 "
				      "of at most 512 bytes";
			return -EBADMSG;
		}
		*ret_size = (size_t)n;
		*ret_reason = NULL;
		return 0;
	}
	return r;
}
