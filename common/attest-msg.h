/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

#include "macro.h"
#include "pcr.h"

/*
 * The attestation protocol's JSON messages (issue 5), parsed and formatted in one place for
 * keystrap attest and keystrap-server. Pure code: no I/O. Parsing is strict: the body is one
 * JSON object and nothing else, every field has one type, unknown fields are refused, binary
 * fields are strict base64 (TPM structures marshalled as the TPM does), and every refusal
 * names the field in a one-line reason of at most ATTEST_REASON_MAX bytes.
 *
 *   POST /v1/attest/start   attest_start → attest_challenge
 *   POST /v1/attest/finish  attest_finish → attest_result
 */

#define ATTEST_REASON_MAX 1024 /* room for six PCRs or events named in full SHA-256 digests */
/* The 403 reason for a revoked node, word for word: what keystrap verify acts on (docs/protocol.md). */
#define ATTEST_REVOKED_REASON "node is revoked"
#define ATTEST_NONCE_SIZE 32
#define ATTEST_SECRET_SIZE 32
#define ATTEST_PROOF_SIZE 32
#define ATTEST_SESSION_SIZE 16
#define ATTEST_SESSION_HEX (2 * ATTEST_SESSION_SIZE)
#define ATTEST_CERT_MAX 4096 /* an EK certificate, DER */
#define ATTEST_CSR_MAX 4096  /* PEM */
#define ATTEST_VERSION_MAX 32
#define ATTEST_NODE_ID_MAX 64
/*
 * Logs travel in the finish message: a firmware event log (binary, base64) and keystrap's CEL
 * log (text). Real firmware logs run to some 30 KiB; both limits together stay well inside
 * ATTEST_MESSAGE_MAX, which is what the server's max_body defaults to.
 */
#define ATTEST_EVENTLOG_MAX (256u << 10)
#define ATTEST_CEL_MAX (128u << 10)
#define ATTEST_MESSAGE_MAX (1u << 20)
#define ATTEST_CHAIN_MAX 16384   /* PEM */
#define ATTEST_PAYLOAD_MAX 262144 /* the sealed secrets: ciphertext and tag */
/*
 * The transparency log the node witnesses (issue 14): the signed checkpoint (a C2SP signed
 * note), the bytes of this attestation's audit record and the proofs, hashes of 32 bytes. A
 * tree of 2^64 leaves has inclusion proofs of at most 64 hashes, consistency proofs of at most
 * twice that.
 */
#define ATTEST_LOG_HASH_SIZE 32
#define ATTEST_LOG_PROOF_MAX 128
#define ATTEST_CHECKPOINT_MAX 4096
#define ATTEST_LOG_RECORD_MAX 8192
#define ATTEST_IV_SIZE 12
#define ATTEST_TAG_SIZE 16
/*
 * How far a node's clock may be from the server's (its HTTP Date header) and still attest: an
 * initramfs often starts from a wrong RTC. The server backdates notBefore by as much, so a
 * node this far behind can use a certificate issued this second; a node further off stops
 * before the finish (nothing is issued), since its TLS check of the server used that clock.
 */
#define ATTEST_CLOCK_SKEW_MAX 300
/* An attestation-gated keyslot's server share (disk_share_put / disk_shares_get), per volume. */
#define ATTEST_VOLUME_LEN 36      /* a LUKS2 UUID, canonical lowercase 8-4-4-4-12 */
#define ATTEST_DISK_SHARE_SIZE 32
#define ATTEST_DISK_SHARES_MAX 8  /* volumes one finish may ask shares of */
#define ATTEST_DISK_SHARE_PREFIX "disk." /* a released share's name in the payload: disk.UUID */

struct attest_start {
	char version[ATTEST_VERSION_MAX + 1];
	uint8_t ek_cert[ATTEST_CERT_MAX]; /* DER (sent as PEM or base64 DER) */
	size_t ek_cert_size;
	uint8_t ek_pub[sizeof(TPM2B_PUBLIC)]; /* marshalled TPM2B_PUBLIC */
	size_t ek_pub_size;
	uint8_t ak_pub[sizeof(TPM2B_PUBLIC)];
	size_t ak_pub_size;
};

struct attest_challenge {
	char session[ATTEST_SESSION_HEX + 1];
	uint8_t nonce[ATTEST_NONCE_SIZE];
	uint8_t credential_blob[sizeof(TPM2B_ID_OBJECT)];   /* marshalled TPM2B_ID_OBJECT */
	size_t credential_blob_size;
	uint8_t credential_seed[sizeof(TPM2B_ENCRYPTED_SECRET)]; /* marshalled TPM2B_ENCRYPTED_SECRET */
	size_t credential_seed_size;
	const struct pcr_bank *bank; /* what to quote */
	uint32_t mask;
};

struct attest_finish {
	char session[ATTEST_SESSION_HEX + 1];
	uint8_t proof[ATTEST_PROOF_SIZE];
	uint8_t attest[sizeof(TPMS_ATTEST)]; /* the TPMS_ATTEST bytes the AK signed */
	size_t attest_size;
	uint8_t signature[sizeof(TPMT_SIGNATURE)]; /* marshalled TPMT_SIGNATURE */
	size_t signature_size;
	const struct pcr_bank *bank;
	uint32_t mask; /* the PCRs whose values follow */
	uint8_t pcr_values[PCR_COUNT][PCR_DIGEST_MAX];
	char csr[ATTEST_CSR_MAX + 1]; /* PKCS#10, PEM */
	uint8_t ek_pub[sizeof(TPM2B_PUBLIC)]; /* the start's EK again: the payload is wrapped to it */
	size_t ek_pub_size;
	uint8_t *event_log; /* firmware TCG event log, malloc'ed; NULL when the node has none */
	size_t event_log_size;
	char *cel_log; /* keystrap's measurement log (CEL-JSON text), malloc'ed; NULL when empty */
	size_t cel_log_size;
	/*
	 * The node witnesses the log: the result must carry a checkpoint and the inclusion proof
	 * of this attestation's record and, when log_size > 0 (the size of the checkpoint the
	 * node holds), a consistency proof from that size. false: the field is absent, as from
	 * a node that pins no log key.
	 */
	bool witness;
	uint64_t log_size;
	/* disk_share_put: the share the server keeps for this node and volume, stored once the
	 * attestation passed (wiped by attest_finish_done). */
	bool has_share_put;
	char share_volume[ATTEST_VOLUME_LEN + 1];
	uint8_t share[ATTEST_DISK_SHARE_SIZE];
	/* disk_shares_get: the volumes whose shares go into the sealed payload, distinct. */
	char shares_get[ATTEST_DISK_SHARES_MAX][ATTEST_VOLUME_LEN + 1];
	size_t n_shares_get;
};

/*
 * The node's secrets, sealed so that only its TPM opens them: AES-256-GCM (AAD: the session)
 * under a fresh key K, and K wrapped with MakeCredential to the EK and the AK's name.
 */
struct attest_payload {
	uint8_t credential_blob[sizeof(TPM2B_ID_OBJECT)];
	size_t credential_blob_size;
	uint8_t credential_seed[sizeof(TPM2B_ENCRYPTED_SECRET)];
	size_t credential_seed_size;
	uint8_t iv[ATTEST_IV_SIZE];
	uint8_t *ciphertext; /* ciphertext || tag, malloc'ed */
	size_t ciphertext_size;
};

/* What a witnessing node is shown of the log (attest_finish.witness). */
struct attest_log {
	char checkpoint[ATTEST_CHECKPOINT_MAX + 1]; /* the signed note, text */
	uint64_t index;                             /* the record's leaf index */
	uint8_t record[ATTEST_LOG_RECORD_MAX];      /* the leaf's bytes: this attestation's audit record */
	size_t record_size;
	uint8_t inclusion[ATTEST_LOG_PROOF_MAX][ATTEST_LOG_HASH_SIZE];
	size_t n_inclusion;
	bool has_consistency; /* from the finish's log_size to the checkpoint */
	uint8_t consistency[ATTEST_LOG_PROOF_MAX][ATTEST_LOG_HASH_SIZE];
	size_t n_consistency;
};

struct attest_result {
	char node_id[ATTEST_NODE_ID_MAX + 1];
	char *certificate; /* PEM, malloc'ed */
	char *chain;       /* PEM of the issuing CA, malloc'ed */
	int64_t not_after; /* the certificate's expiry, Unix seconds */
	int64_t policy_version; /* 0: no policy loaded */
	struct attest_payload payload;
	bool has_log; /* the "log" field: only in answer to a witnessing finish */
	struct attest_log log;
};

/* A formatted result (attest_result_format's) with the log object added: *body replaced. */
int attest_result_add_log(char **body, const struct attest_log *log);

struct json_object;
/* One JSON object filling the input exactly, with no field outside allowed[] (NULL-terminated). */
int attest_json_object(const char *json, size_t size, const char *const *allowed, struct json_object **ret,
		       char *reason);
/*
 * The same, with string values of at least long_min bytes set without json-c reading them
 * (json_long_values; attest_json_object: 1024). For the tests and the fuzzer, which hold
 * long_min 1 against SIZE_MAX (json-c reads everything): the same answer, object and reason.
 */
int attest_json_object_ex(const char *json, size_t size, const char *const *allowed, size_t long_min,
			  struct json_object **ret, char *reason);

/* Writes the one-line reason (at most ATTEST_REASON_MAX bytes) and returns -EBADMSG. */
int attest_fail(char *reason, const char *fmt, ...) _printf_(2, 3);

/* Every error reply: {"error": REASON}. */
int attest_start_parse(const char *json, size_t size, struct attest_start *ret, char *reason);
int attest_challenge_parse(const char *json, size_t size, struct attest_challenge *ret, char *reason);
int attest_finish_parse(const char *json, size_t size, struct attest_finish *ret, char *reason);
int attest_result_parse(const char *json, size_t size, struct attest_result *ret, char *reason);
int attest_error_parse(const char *json, size_t size, char *reason);
/* What the parses allocate; the structs may then be parsed into again. */
void attest_finish_done(struct attest_finish *m);
void attest_result_done(struct attest_result *m);

/* Formatting: a malloc'ed NUL-terminated JSON string. */
int attest_start_format(const struct attest_start *m, char **ret);
int attest_challenge_format(const struct attest_challenge *m, char **ret);
int attest_finish_format(const struct attest_finish *m, char **ret);
int attest_result_format(const struct attest_result *m, char **ret);
int attest_error_format(const char *reason, char **ret);

/* The node id rule (a DNS label run: [a-z0-9-.], 1..64, no leading '-' or '.'). */
int attest_node_id_valid(const char *s);
/* A LUKS2 UUID as the protocol carries it: canonical lowercase 8-4-4-4-12 hex. */
bool attest_volume_valid(const char *s);

/* What proves the node activated the credential: HMAC-SHA256(secret, "keystrap-proof" || nonce). */
int attest_proof(const uint8_t *secret, size_t secret_size, const uint8_t nonce[ATTEST_NONCE_SIZE],
		 uint8_t ret[ATTEST_PROOF_SIZE]);
/*
 * What the server keeps to check a proof: SHA-256(proof). It holds neither the secret nor the
 * proof, so whoever reads the server's database cannot answer the challenge without the TPM.
 */
int attest_proof_verifier(const uint8_t proof[ATTEST_PROOF_SIZE], uint8_t ret[32]);
/*
 * The quote's extraData: SHA-256(nonce || proof || SubjectPublicKeyInfo DER of the CSR key),
 * binding the quote to this challenge, to the TPM that activated it and to the key certified.
 * The proof, not the secret: the server, which keeps only the proof's verifier, learns the
 * proof from the finish it checks.
 */
int attest_extra_data(const uint8_t nonce[ATTEST_NONCE_SIZE], const uint8_t proof[ATTEST_PROOF_SIZE],
		      const uint8_t *spki, size_t spki_size, uint8_t ret[32]);
