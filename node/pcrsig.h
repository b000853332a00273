/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "pcr.h"

/*
 * systemd 252's PCR signature file, what `systemd-measure sign` writes and systemd-stub puts
 * in the initrd from a UKI's .pcrsig section:
 * {"sha256":[{"pcrs":[11],"pkfp":HEX,"pol":HEX,"sig":BASE64},...],...}, one entry per phase
 * and key. Untrusted: the TPM checks the signature, this only picks the entry to hand it.
 */
#define PCRSIG_NAME "tpm2-pcr-signature.json"
#define PCRSIG_FILE_MAX 65536
#define PCRSIG_SIG_MAX 512

/*
 * Reads path, or with path NULL the first PCRSIG_NAME in systemd 252's search list
 * (/etc/systemd, /run/systemd, /usr/local/lib/systemd, /usr/lib/systemd, and /.extra when
 * /etc/initrd-release says this is an initrd). *ret_path is the file read, or what was looked
 * for; the caller frees it, success or not. -ENOENT: not there; -EBADMSG: not a JSON object.
 */
int pcrsig_load(const char *path, json_object **ret, char **ret_path);

/*
 * The signature of the entry for bank and exactly the PCRs in mask, by the key whose SHA-256
 * of its DER public key (i2d_PublicKey; RSA: PKCS#1 RSAPublicKey) is fp, over the policy digest pol. On failure *ret_reason
 * says why (static): -ENOENT nothing for this bank and these PCRs, -EKEYREJECTED only other
 * keys' signatures, -ESTALE none for pol (other PCR values), -EBADMSG a malformed entry.
 */
int pcrsig_find(json_object *root, const struct pcr_bank *bank, uint32_t mask, const uint8_t fp[32],
		const uint8_t pol[32], uint8_t *ret_sig, size_t max, size_t *ret_size,
		const char **ret_reason);
