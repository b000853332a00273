/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/rand.h>
#include <tss2/tss2_mu.h>

#include "credential.h"
#include "encode.h"
#include "evidence.h"
#include "handshake.h"
#include "log.h"
#include "ossl.h"
#include "quote.h"
#include "secbuf.h"
#include "tpmpub.h"

/* A refusal of class why (refusal.h); deny leaves the class to the status. */
static int deny_as(struct reply *r, enum refusal why, int status, const char *fmt, ...) _printf_(4, 5);
static int deny_as(struct reply *r, enum refusal why, int status, const char *fmt, ...)
{
	va_list ap;

	r->status = status;
	r->refusal = why;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	return 0;
}
#define deny(r, status, ...) deny_as(r, REFUSAL_NONE, status, __VA_ARGS__)

static int fail_internal(struct reply *r, const char *what, int err)
{
	return deny(r, 500, "internal error: %s: %s", what, strerror(-err));
}

/* A verdict of _verify as the reply: true when it is a refusal. */
static bool verdict(const struct reply *v, struct reply *r)
{
	if (v->status == 0)
		return false;
	r->status = v->status;
	r->refusal = v->refusal;
	memcpy(r->reason, v->reason, sizeof(r->reason));
	return true;
}

/*
 * The registry's key: the EK's identity (tpm_ek_identity), in hex. Only a TCG-template EK has
 * one (-EKEYREJECTED, reason filled in), so re-wrapping a certified key makes no second node.
 */
static int ek_hash(const struct tpm_pub *ek, char ret[EK_HASH_HEX + 1], char *reason)
{
	uint8_t d[TPM_EK_ID_SIZE];
	int r = tpm_ek_identity(ek, d, reason);

	if (r < 0)
		return r;
	hex_encode(d, sizeof(d), ret);
	return 0;
}

/* Refuses anything but an approved node; records an unknown EK as an enrollment request. */
static int node_admit(struct server *s, const char *peer, struct reply *r, struct node_rec *ret)
{
	int64_t counts[_NODE_STATE_MAX];
	int k = store_node_get(s->store, r->ek_hash, ret);

	/* The cached count lags what operators approved or removed since the last tick: recount. */
	if (k == -ENOENT && s->enroll_max > 0 && s->enroll_pending >= s->enroll_max &&
	    store_node_count(s->store, counts) >= 0)
		s->enroll_pending = counts[NODE_REQUESTED];
	if (k == -ENOENT && s->enroll_max > 0 && s->enroll_pending >= s->enroll_max) {
		deny_as(r, REFUSAL_ENROLLMENT_CLOSED, 503,
			"enrollment requests are closed: %lld await an operator (max_pending_enrollments)",
			(long long)s->enroll_pending);
		return -EBUSY;
	}
	if (k == -ENOENT) {
		k = store_node_request(s->store, r->ek_hash, peer, now_usec());
		if (k < 0) {
			fail_internal(r, "recording the enrollment request", k);
			return k;
		}
		s->enroll_pending++;
		deny_as(r, REFUSAL_ENROLLMENT_REQUESTED, 403, "node is not approved: enrollment request recorded for EK %s",
			r->ek_hash);
		return -EPERM;
	}
	if (k < 0) {
		fail_internal(r, "node registry", k);
		return k;
	}
	snprintf(r->node_id, sizeof(r->node_id), "%s", ret->node_id);
	if (ret->state == NODE_REQUESTED) {
		deny_as(r, REFUSAL_NOT_APPROVED, 403,
			"node is not approved yet: its enrollment request (EK %s) awaits an operator", r->ek_hash);
		return -EPERM;
	}
	if (ret->state == NODE_REVOKED) {
		deny_as(r, REFUSAL_REVOKED, 403, "%s", ATTEST_REVOKED_REASON);
		return -EPERM;
	}
	return 0;
}

/* The signed policy in force, or a 503 naming why there is none: attestation fails closed. */
static int policy_admit(struct server *s, struct reply *r, const struct policy **ret)
{
	char why[ATTEST_REASON_MAX];
	int k = policy_cache_current(&s->policy, s->store, s->config, now_usec(), ret, why);

	if (k < 0) {
		deny_as(r,
			k == -ENOENT ? REFUSAL_POLICY_MISSING :
			k == -ETIME ? REFUSAL_POLICY_EXPIRED :
			k == -EKEYREJECTED || k == -EBADMSG ? REFUSAL_POLICY_UNTRUSTED : REFUSAL_STORE,
			503, "%s", why);
		return -EPERM;
	}
	return 0;
}

/*
 * A start in three steps, as a finish (below): _prepare on the loop thread parses, checks the
 * EK, its certificate and the AK and admits the node under the policy in force; _verify,
 * anywhere, draws the session, nonce and activation secret and makes the credential (the
 * ECDH or RSA-OAEP that is most of a start's CPU), touching nothing but w; _complete, back on
 * the loop thread, stores the nonce and formats the challenge.
 */
struct start_work {
	struct tpm_pub ek, ak;
	struct attest_challenge c;
	struct nonce_rec n;
	struct reply v; /* _verify's verdict (status 0: passed) */
};

void start_work_free(struct start_work *w)
{
	if (!w)
		return;
	/* The nonce's verifier checks a proof but cannot make one; wiped all the same. */
	secmem_wipe(w, sizeof(*w));
	free(w);
}

int handshake_start_prepare(struct server *s, const char *peer, const char *body, size_t size, struct reply *r,
			    struct start_work **ret)
{
	_cleanup_free_ struct start_work *w = NULL;
	const struct policy *p;
	struct attest_start m;
	struct node_rec node;
	const char *ak_why = NULL;
	char why[ATTEST_REASON_MAX];
	int k;

	r->action = "attest-start";
	*ret = NULL;
	if (!(w = calloc(1, sizeof(*w))))
		return fail_internal(r, "the start", -ENOMEM);
	if (attest_start_parse(body, size, &m, why) < 0)
		return deny(r, 400, "%s", why);
	if (tpm_pub_parse(m.ek_pub, m.ek_pub_size, &w->ek) < 0)
		return deny(r, 400, "field 'ek_pub' is not a usable TPM2B_PUBLIC (RSA or ECC)");
	if ((k = ek_hash(&w->ek, r->ek_hash, why)) == -EKEYREJECTED)
		return deny(r, 403, "the EK is refused: %s", why);
	if (k < 0)
		return fail_internal(r, "hashing the EK", k);
	if (tpm_pub_parse(m.ak_pub, m.ak_pub_size, &w->ak) < 0)
		return deny(r, 400, "field 'ak_pub' is not a usable TPM2B_PUBLIC (RSA or ECC)");
	if (tpm_pub_check_ak(&w->ak, &ak_why) < 0)
		return deny(r, 403, "the AK is refused: %s", ak_why);
	/* On this thread: the pki's cache of EK certificates already checked is not shared. */
	if ((k = pki_ek_cert_check(s->pki, m.ek_cert, m.ek_cert_size, &w->ek, why)) == -EKEYREJECTED)
		return deny(r, 403, "%s", why);
	if (k < 0)
		return fail_internal(r, "checking the EK certificate", k);
	if (node_admit(s, peer, r, &node) < 0 || policy_admit(s, r, &p) < 0)
		return 0;
	if (!policy_version_valid(m.version))
		return deny(r, 400, "field 'version' is not a dotted keystrap version");
	/* Not a check: the version is the node's own claim, so it only annotates the record. What
	 * pins the keystrap binary is the initrd digest in PCR 9, which the policy's references hold. */
	/* The reason a 200 will carry, while the policy is at hand; a refusal later replaces it. No
	 * session id: the reason goes to the log and the audit trail, which others read. */
	if (policy_version_compare(m.version, p->min_version) < 0)
		snprintf(r->reason, sizeof(r->reason),
			 "challenge issued under policy %lld; the node reports keystrap %s, older than "
			 "min_keystrap_version %s (advisory, not enforced)",
			 (long long)p->version, m.version, p->min_version);
	else
		snprintf(r->reason, sizeof(r->reason), "challenge issued under policy %lld", (long long)p->version);
	w->c.bank = p->bank;
	w->c.mask = p->mask;
	memcpy(w->n.ek_hash, r->ek_hash, sizeof(w->n.ek_hash));
	memcpy(w->n.ak_pub, m.ak_pub, m.ak_pub_size);
	w->n.ak_pub_size = m.ak_pub_size;
	*ret = TAKE_PTR(w);
	return 0;
}

void handshake_start_verify(struct start_work *w)
{
	_cleanup_secbuf_ struct secbuf *secret = secbuf_new(ATTEST_SECRET_SIZE);
	struct reply *r = &w->v;
	TPM2B_ID_OBJECT blob;
	TPM2B_ENCRYPTED_SECRET seed;
	uint8_t session[ATTEST_SESSION_SIZE], proof[ATTEST_PROOF_SIZE];
	size_t off;
	int k;

	if (!secret) {
		fail_internal(r, "the activation secret", -ENOMEM);
		return;
	}
	if (RAND_bytes(session, sizeof(session)) != 1 || RAND_bytes(w->n.nonce, sizeof(w->n.nonce)) != 1 ||
	    RAND_bytes(secret->data, (int)secret->size) != 1) {
		fail_internal(r, "random", -EIO);
		return;
	}
	hex_encode(session, sizeof(session), w->n.session);
	k = credential_make(&w->ek, &w->ak.name, secret->data, secret->size, &blob, &seed);
	if (k < 0) {
		deny(r, 400, "MakeCredential to this EK failed: %s", strerror(-k));
		return;
	}
	/* The secret leaves in the credential only: what is stored checks a proof but cannot make one. */
	k = attest_proof(secret->data, secret->size, w->n.nonce, proof);
	if (k >= 0)
		k = attest_proof_verifier(proof, w->n.verifier);
	secmem_wipe(proof, sizeof(proof));
	if (k < 0) {
		fail_internal(r, "the proof's verifier", k);
		return;
	}
	memcpy(w->c.session, w->n.session, sizeof(w->c.session));
	memcpy(w->c.nonce, w->n.nonce, sizeof(w->c.nonce));
	off = 0;
	if (Tss2_MU_TPM2B_ID_OBJECT_Marshal(&blob, w->c.credential_blob, sizeof(w->c.credential_blob), &off) != 0) {
		fail_internal(r, "marshalling the credential", -EIO);
		return;
	}
	w->c.credential_blob_size = off;
	off = 0;
	if (Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(&seed, w->c.credential_seed, sizeof(w->c.credential_seed), &off) != 0) {
		fail_internal(r, "marshalling the credential", -EIO);
		return;
	}
	w->c.credential_seed_size = off;
}

int handshake_start_complete(struct server *s, struct start_work *w, struct reply *r)
{
	int k;

	if (verdict(&w->v, r))
		return 0;
	w->n.expires_us = now_usec() + s->config->nonce_lifetime * 1000000;
	if ((k = store_nonce_put(s->store, &w->n, now_usec())) < 0)
		return fail_internal(r, "storing the nonce", k);
	if ((k = attest_challenge_format(&w->c, &r->body)) < 0)
		return fail_internal(r, "formatting the challenge", k);
	r->status = 200;
	return 0;
}

int handshake_start(struct server *s, const char *peer, const char *body, size_t size, struct reply *r)
{
	struct start_work *w;
	int k;

	handshake_start_prepare(s, peer, body, size, r, &w);
	if (!w)
		return 0;
	handshake_start_verify(w);
	k = handshake_start_complete(s, w, r);
	start_work_free(w);
	return k;
}

/* The finish carries the start's EK again: it must be the one this session's nonce was issued to. */
static int session_ek(const struct attest_finish *m, const struct nonce_rec *n, struct tpm_pub *ret)
{
	char h[EK_HASH_HEX + 1], why[TPM_PUB_REASON_MAX];

	if (tpm_pub_parse(m->ek_pub, m->ek_pub_size, ret) < 0 || ek_hash(ret, h, why) < 0 || !streq(h, n->ek_hash))
		return -EPERM;
	return 0;
}

/*
 * What the node receives besides its certificate: the issuing CA, the expiry, the policy version
 * and its group's secrets sealed for its TPM (an empty payload when it has none). A probe node
 * receives none, even from a policy that lists some for its group; *ret_withheld says how many.
 */
static int result_fill(struct server *s, const struct policy *p, const struct node_rec *node, const struct tpm_pub *ek,
		       const struct tpm_pub *ak, struct seal_key *key, const char *session,
		       const struct payload_item *shares, size_t n_shares, struct attest_result *res, struct reply *r,
		       size_t *ret_withheld)
{
	const struct policy_group *g = p ? policy_group(p, node->group) : NULL;
	char why[ATTEST_REASON_MAX];
	int k;

	*ret_withheld = 0;
	if (g && streq(node->group, NODE_GROUP_PROBE)) {
		*ret_withheld = g->n_secrets;
		g = NULL;
	}

	if ((k = pki_ca_pem(s->pki, &res->chain)) < 0) {
		fail_internal(r, "the certificate chain", k);
		return k;
	}
	res->policy_version = p ? p->version : 0;
	k = evidence_seal(s->store, g ? g->secrets : NULL, g ? g->n_secrets : 0, shares, n_shares, ek, &ak->name,
			  key, session, &res->payload, why);
	if (k == -ENOENT || k == -EINVAL || k == -EBADMSG)
		deny(r, 500, "%s", why);
	else if (k == -EKEYREJECTED) {
		/* Soon: the new KEK file of a rotation is being put in place here. */
		deny(r, 503, "%s", why);
		r->retry_after = 5;
	}
	else if (k < 0)
		fail_internal(r, "sealing the secrets", k);
	return k;
}

/* The disk shares a finish asks for (disk_shares_get), as the payload carries them: disk.UUID. */
struct shares {
	char names[ATTEST_DISK_SHARES_MAX][sizeof(ATTEST_DISK_SHARE_PREFIX) + ATTEST_VOLUME_LEN];
	struct payload_item items[ATTEST_DISK_SHARES_MAX];
	size_t n;
	bool missing[ATTEST_DISK_SHARES_MAX]; /* none stored for this node and volume */
};

static void shares_done(struct shares *sh)
{
	for (size_t i = 0; i < sh->n; i++)
		secbuf_free((struct secbuf *)sh->items[i].value);
	sh->n = 0;
}

/* After the attestation passed: what the store holds for this node of each volume asked for. */
static int shares_get(struct server *s, const struct attest_finish *m, struct reply *r, struct shares *ret)
{
	for (size_t i = 0; i < m->n_shares_get; i++) {
		struct secbuf *v = NULL;
		int k = store_disk_share_get(s->store, r->ek_hash, m->shares_get[i], &v);

		if (k == -ENOENT) {
			ret->missing[i] = true;
			continue;
		}
		if (k == -EKEYREJECTED) {
			deny(r, 503, "the disk share of volume %s is wrapped by a KEK this server does not hold yet",
			     m->shares_get[i]);
			r->retry_after = 5;
			return k;
		}
		if (k < 0) {
			deny(r, 500, "internal error: the disk share of volume %s: %s", m->shares_get[i],
			     k == -EBADMSG ? "its row does not decrypt (altered, or moved from another node or volume)" :
					     strerror(-k));
			return k;
		}
		snprintf(ret->names[ret->n], sizeof(ret->names[ret->n]), ATTEST_DISK_SHARE_PREFIX "%s", m->shares_get[i]);
		ret->items[ret->n] = (struct payload_item){ .name = ret->names[ret->n], .value = v };
		ret->n++;
	}
	return 0;
}

/* One audit record of a disk share: stored, released or refused, naming the volume. */
static int share_audit(struct server *s, const char *peer, const struct reply *r, const char *action, bool allow,
		       const char *volume, const char *why)
{
	char reasons[ATTEST_REASON_MAX + 64];
	struct audit_rec a = { .time_us = now_usec(), .peer = peer, .ek_hash = r->ek_hash, .node_id = r->node_id,
			       .action = action, .decision = allow ? "allow" : "deny", .reasons = reasons };

	snprintf(reasons, sizeof(reasons), "volume %s: %s", volume, why);
	return store_audit_append(s->store, &a);
}

/*
 * A finish in three steps, so that its pure CPU work can run on a worker thread (workers.h):
 * handshake_finish_prepare on the loop thread parses and reads the nonce; _verify, anywhere,
 * checks the proof, the CSR, the quote and replays the logs, touching nothing but w; _complete,
 * back on the loop thread, looks at the registry and the policy as they are then, judges the
 * replayed evidence and does the writes. The refusals come in the order one pass made them.
 */
struct finish_work {
	struct attest_finish m;
	struct nonce_rec n;
	struct pki *pki; /* only its digest, which a reload keeps until the workers have drained */
	bool verify;     /* false: prepare decided the reply, _complete only audits the refusal */
	/* The verdicts of _verify (status 0: passed): the first before the registry and policy
	 * checks, the second after them. */
	struct reply v1, v2;
	uint8_t *spki;
	size_t spki_size;
	struct tpm_pub ek, ak;
	TPMS_ATTEST attest;
	struct evidence ev;
	struct seal_key seal; /* made by _verify once the evidence verified (no key: made in _complete) */
};

void finish_work_free(struct finish_work *w)
{
	if (!w)
		return;
	attest_finish_done(&w->m);
	evidence_done(&w->ev);
	seal_key_done(&w->seal);
	free(w->spki);
	free(w);
}

static int finish_stage1(struct finish_work *w, uint8_t extra[32])
{
	struct reply *r = &w->v1;
	uint8_t verifier[32];
	char why[ATTEST_REASON_MAX];
	int k;

	/*
	 * The proof first, and nothing spent on a refusal: a finish by anyone who merely knows the
	 * session id must not use up the nonce of the node that owns it.
	 */
	k = attest_proof_verifier(w->m.proof, verifier);
	if (k >= 0 && !secmem_equal(verifier, w->n.verifier, sizeof(verifier)))
		k = -EKEYREJECTED;
	if (k >= 0)
		k = pki_csr_key(w->pki, w->m.csr, &w->spki, &w->spki_size, why) < 0 ? -EBADMSG : 0;
	if (k >= 0)
		k = attest_extra_data(w->n.nonce, w->m.proof, w->spki, w->spki_size, extra);
	if (k == -EKEYREJECTED)
		return deny(r, 403, "proof of activation does not match: the credential was not activated by the EK's TPM");
	if (k == -EBADMSG)
		return deny(r, 400, "%s", why);
	if (k < 0)
		return fail_internal(r, "proof", k);
	if (session_ek(&w->m, &w->n, &w->ek) < 0)
		return deny(r, 403, "field 'ek_pub' is not the EK this session was issued to");
	return 0;
}

static int finish_stage2(struct finish_work *w, const uint8_t extra[32])
{
	const struct attest_finish *m = &w->m;
	struct reply *r = &w->v2;
	TPM2B_NAME ak_parents[2];
	struct quote_expect e;
	char why[ATTEST_REASON_MAX];
	int k;

	if (tpm_pub_parse(w->n.ak_pub, w->n.ak_pub_size, &w->ak) < 0)
		return fail_internal(r, "stored AK", -EBADMSG);
	/* The AK as keystrap makes it (an endorsement primary) or as tpm2_createak does (a child of the EK). */
	tpm_name_hierarchy(TPM2_RH_ENDORSEMENT, &ak_parents[0]);
	if ((k = tpm_name_qualify(&ak_parents[0], &w->ek.name, &ak_parents[1])) < 0)
		return fail_internal(r, "the EK's qualified name", k);
	e = (struct quote_expect){
		.ak = &w->ak,
		.ak_parents = ak_parents,
		.n_ak_parents = ELEMENTSOF(ak_parents),
		.extra_data = extra,
		.extra_data_size = 32,
		.bank = m->bank,
		.mask = m->mask,
		.pcr_values = (const uint8_t(*)[PCR_DIGEST_MAX])m->pcr_values,
	};
	if (quote_verify(&e, m->attest, m->attest_size, m->signature, m->signature_size, &w->attest, why) < 0)
		return deny_as(r, REFUSAL_EVIDENCE, 403, "%s", why);
	k = evidence_replay(m, &w->ev, why);
	if (k == -EBADMSG)
		return deny(r, 400, "%s", why);
	if (k == -EPERM)
		return deny_as(r, REFUSAL_EVIDENCE, 403, "%s", why);
	if (k < 0)
		return fail_internal(r, "replaying the logs", k);
	return 0;
}

void handshake_finish_verify(struct finish_work *w)
{
	uint8_t extra[32];

	if (!w->verify)
		return;
	finish_stage1(w, extra);
	if (w->v1.status == 0)
		finish_stage2(w, extra);
	/* Before the judging: the key seals no secret yet, and a refusal only wipes it. A failure
	 * here leaves it to _complete, which makes it again and reports why. */
	if (w->v1.status == 0 && w->v2.status == 0)
		(void)evidence_seal_key(&w->ek, &w->ak.name, &w->seal);
}

int handshake_finish_prepare(struct server *s, const char *body, size_t size, struct reply *r,
			     struct finish_work **ret)
{
	struct finish_work *w;
	char why[ATTEST_REASON_MAX];
	int k;

	r->action = "attest-finish";
	*ret = NULL;
	if (!(w = calloc(1, sizeof(*w))))
		return fail_internal(r, "the finish", -ENOMEM);
	if (attest_finish_parse(body, size, &w->m, why) < 0) {
		finish_work_free(w);
		return deny(r, 400, "%s", why);
	}
	*ret = w;
	w->pki = s->pki;
	k = store_nonce_get(s->store, w->m.session, &w->n);
	if (k == -ENOENT)
		return deny_as(r, REFUSAL_SESSION, 403, "unknown session");
	if (k < 0)
		return fail_internal(r, "reading the nonce", k);
	memcpy(r->ek_hash, w->n.ek_hash, sizeof(r->ek_hash));
	if (w->n.used)
		return deny_as(r, REFUSAL_SESSION, 403, "nonce already used: a replayed or repeated finish");
	if (now_usec() > w->n.expires_us)
		return deny_as(r, REFUSAL_SESSION, 403, "nonce expired");
	w->verify = true;
	return 0;
}

static int finish(struct server *s, const char *peer, struct finish_work *w, struct reply *r);

int handshake_finish_complete(struct server *s, const char *peer, struct finish_work *w, struct reply *r)
{
	int k;

	if (w->verify)
		finish(s, peer, w, r);
	if (r->status == 200)
		return 0;
	/* Refused before anything was released: each volume asked for is audited as refused. */
	for (size_t i = 0; i < w->m.n_shares_get; i++)
		if ((k = share_audit(s, peer, r, "disk-share-release", false, w->m.shares_get[i], r->reason)) < 0)
			return fail_internal(r, "auditing a disk share", k);
	if (w->m.has_share_put &&
	    (k = share_audit(s, peer, r, "disk-share-store", false, w->m.share_volume, r->reason)) < 0)
		return fail_internal(r, "auditing a disk share", k);
	return 0;
}

int handshake_finish(struct server *s, const char *peer, const char *body, size_t size, struct reply *r)
{
	struct finish_work *w;
	int k;

	handshake_finish_prepare(s, body, size, r, &w);
	if (!w)
		return 0;
	handshake_finish_verify(w);
	k = handshake_finish_complete(s, peer, w, r);
	finish_work_free(w);
	return k;
}

static int finish(struct server *s, const char *peer, struct finish_work *w, struct reply *r)
{
	const struct attest_finish *m = &w->m;
	const TPMS_ATTEST *attest = &w->attest;
	_cleanup_free_ char *pem = NULL, *refused = NULL;
	const struct policy *p;
	struct shares sh __attribute__((cleanup(shares_done))) = {};
	struct attest_result res __attribute__((cleanup(attest_result_done))) = { 0 };
	struct node_rec node;
	size_t withheld = 0;
	int64_t lifetime;
	char serial[41], why[ATTEST_REASON_MAX];
	int64_t not_before;
	int k;

	if (verdict(&w->v1, r))
		return 0;
	/* Approval can have been revoked since the challenge (or while the evidence was checked);
	 * a 503 leaves the nonce for the retry. */
	if (node_admit(s, peer, r, &node) < 0 || policy_admit(s, r, &p) < 0)
		return 0;
	/*
	 * The policy in force now: one loaded since the challenge may select other PCRs. The logs are
	 * replayed in the quoted bank only, so a policy's bank must be the quote's.
	 */
	if (m->bank != p->bank)
		return deny_as(r, REFUSAL_EVIDENCE, 403,
			       "reported PCRs are not the requested selection: the quote covers bank %s, policy %lld checks %s",
			       m->bank->name, (long long)p->version, p->bank->name);
	if (m->mask != p->mask)
		return deny_as(r, REFUSAL_EVIDENCE, 403, "reported PCRs are not the requested selection");
	if (verdict(&w->v2, r))
		return 0;
	/* The logs replayed to the quote: now its values and events against the policy. */
	k = evidence_judge(p, m, &w->ev, why, &refused);
	if (k < 0)
		return fail_internal(r, "judging the evidence", k);
	if (k > 0) {
		r->refused = TAKE_PTR(refused);
		r->refused_policy = p->version;
		return deny_as(r, REFUSAL_EVIDENCE, 403, "%s", why);
	}
	if ((int64_t)attest->clockInfo.resetCount < node.reset_count ||
	    ((int64_t)attest->clockInfo.resetCount == node.reset_count &&
	     (int64_t)attest->clockInfo.restartCount < node.restart_count))
		return deny_as(r, REFUSAL_SESSION, 403,
			       "the TPM's resetCount/restartCount went backwards (%u/%u after %lld/%lld)",
			       attest->clockInfo.resetCount, attest->clockInfo.restartCount, (long long)node.reset_count,
			       (long long)node.restart_count);
	/*
	 * The evidence passed: spend the nonce before anything is issued. Of finishes racing for
	 * one nonce (the same finish twice, on two workers at once) a single one spends it; the
	 * others are refused here, later ones in prepare.
	 */
	k = store_nonce_take(s->store, m->session, now_usec());
	if (k == -EALREADY)
		return deny_as(r, REFUSAL_SESSION, 403, "nonce already used: a replayed or repeated finish");
	if (k < 0)
		return fail_internal(r, "spending the nonce", k);
	if ((k = store_node_set_counters(s->store, r->ek_hash, attest->clockInfo.resetCount,
					 attest->clockInfo.restartCount)) < 0)
		return fail_internal(r, "node counters", k);
	/* The policy's lifetime, within the ceiling this server is configured with. */
	lifetime = p->credential_lifetime < s->config->certificate_lifetime ? p->credential_lifetime :
									    s->config->certificate_lifetime;
	k = pki_issue(s->pki, w->spki, w->spki_size, node.node_id, lifetime, &pem, serial, &not_before, &res.not_after);
	if (k == -ETIME)
		return deny(r, 500, "the server's clock is outside its CA certificate's validity: nothing issued");
	if (k < 0)
		return fail_internal(r, "issuing the certificate", k);
	snprintf(res.node_id, sizeof(res.node_id), "%s", node.node_id);
	res.certificate = TAKE_PTR(pem);
	if (shares_get(s, m, r, &sh) < 0)
		return 0;
	if (result_fill(s, p, &node, &w->ek, &w->ak, &w->seal, m->session, sh.items, sh.n, &res, r, &withheld) < 0)
		return 0;
	/* Stored only now: a finish refused or failed above leaves the previous share in place. */
	if (m->has_share_put) {
		_cleanup_secbuf_ struct secbuf *share = secbuf_dup(m->share, sizeof(m->share));

		if (!share)
			return fail_internal(r, "the disk share", -ENOMEM);
		if ((k = store_disk_share_put(s->store, r->ek_hash, m->share_volume, share, now_usec())) < 0)
			return fail_internal(r, "storing the disk share", k);
		if ((k = share_audit(s, peer, r, "disk-share-store", true, m->share_volume,
				     "share stored, encrypted under the KEK, after the attestation passed")) < 0)
			return fail_internal(r, "auditing a disk share", k);
	}
	for (size_t i = 0; i < m->n_shares_get; i++) {
		k = share_audit(s, peer, r, "disk-share-release", !sh.missing[i], m->shares_get[i],
				sh.missing[i] ? "no share is stored for this node and volume" :
						"share released in the payload sealed to this TPM");
		if (k < 0)
			return fail_internal(r, "auditing a disk share", k);
	}
	/* What node list shows as last attested: a certificate the reply carries. */
	if ((k = store_node_set_certificate(s->store, r->ek_hash, now_usec(), serial, not_before, res.not_after)) < 0)
		return fail_internal(r, "recording the certificate", k);
	if ((k = attest_result_format(&res, &r->body)) < 0)
		return fail_internal(r, "formatting the result", k);
	r->status = 200;
	r->witness = m->witness;
	r->witness_size = m->log_size;
	snprintf(r->reason, sizeof(r->reason), "certificate %s issued under policy %lld, resetCount %u restartCount %u%s",
		 serial, (long long)p->version, attest->clockInfo.resetCount, attest->clockInfo.restartCount,
		 withheld ? ", probe node: the group's secrets withheld" : "");
	return 0;
}
