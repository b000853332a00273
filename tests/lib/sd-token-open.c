/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test oracle: asks systemd's own libcryptsetup-token-systemd-tpm2 plugin to unseal a
 * volume's token through the given TPM device string ("swtpm:host=…,port=…") and check
 * that the key opens its keyslot. name=NULL means no device-mapper is needed.
 * Usage: sd-token-open IMAGE TPM2-DEVICE
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libcryptsetup.h>

/* systemd 252's cryptsetup-token-systemd-tpm2 usrptr (src/cryptsetup/cryptsetup-tokens). */
struct systemd_tpm2_plugin_params {
	uint32_t search_pcr_mask;
	const char *device;
	const char *signature_path;
};

int main(int argc, char **argv)
{
	struct crypt_device *cd = NULL;
	struct systemd_tpm2_plugin_params params = { .search_pcr_mask = UINT32_MAX };
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: %s IMAGE TPM2-DEVICE\n", argv[0]);
		return 2;
	}
	params.device = argv[2];
	if (getenv("SD_TOKEN_DEBUG"))
		crypt_set_debug_level(CRYPT_DEBUG_ALL);
	r = crypt_init(&cd, argv[1]);
	if (r == 0)
		r = crypt_load(cd, CRYPT_LUKS2, NULL);
	if (r == 0)
		r = crypt_activate_by_token_pin(cd, NULL, "systemd-tpm2", CRYPT_ANY_TOKEN, NULL, 0,
						&params, 0);
	crypt_free(cd);
	if (r < 0) {
		fprintf(stderr, "systemd-tpm2 token did not open %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	printf("systemd-tpm2 plugin opened keyslot %d of %s\n", r, argv[1]);
	return 0;
}
