/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystrap-server ca rotate|retire|show|bundle: the CA that signs node certificates, replaced
 * without a day on which nodes' certificates stop verifying, or (--compromised) at once.
 *
 * rotate puts a new CA in place (made here, or an operator's chain and key) and moves the one
 * it replaces to ca_previous, which stays in the bundle nodes receive as their chain: consumers
 * that pin it accept both CAs' certificates while nodes renew. retire takes the previous CAs
 * out once every certificate they issued has expired (rotation + certificate_lifetime), or at
 * once with --force. Nothing is renamed into place before everything new has been checked and
 * written beside it, fsynced: a refusal leaves the CA in force as it was. The renames run
 * previous, certificate, key; a run interrupted between the last two leaves the new key beside
 * the old one (CA_KEY.new), which the server names and rotate run again finishes.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "admin.h"
#include "attest-msg.h"
#include "ca-chain.h"
#include "fileio.h"
#include "keyref.h"
#include "log.h"
#include "ossl.h"
#include "pki.h"
#include "policy-cache.h"
#include "server-config.h"
#include "store.h"

static const char usage[] =
	"keystrap-server ca rotate [--certificate CHAIN --key KEY | --subject CN [--days N]] [--compromised] --config FILE\n"
	"       keystrap-server ca retire [--force] --config FILE\n"
	"       keystrap-server ca show --config FILE\n"
	"       keystrap-server ca bundle --config FILE\n"
	"       keystrap-server ca crl [--pem] [--out FILE] --config FILE";

#define WHY_MAX (PATH_MAX + 512)

struct ca_paths {
	char cert_new[PATH_MAX], key_new[PATH_MAX], previous_new[PATH_MAX];
};

/* "0123456789abcdef (CN = keystrap CA)": a CA as records and messages name it. */
static void ca_name(X509 *x, char *buf, size_t size)
{
	char fp[CA_FINGERPRINT_HEX + 1], subject[256];

	ca_fingerprint(x, fp);
	ca_subject(x, subject, sizeof(subject));
	snprintf(buf, size, "%.16s (%s)", fp, subject);
}

static int key_read(const char *path, EVP_PKEY **ret, char *why, size_t size)
{
	char detail[KEYREF_WHY_MAX];

	/* As the server loads it (keyref.h): a file only its owner can read, or a key in hardware. */
	if (keyref_load_private(path, ret, detail, sizeof(detail)) < 0) {
		snprintf(why, size, "CA key %s", detail);
		return -EINVAL;
	}
	return 0;
}

static int ext_add(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	ok = e && X509_add_ext(x, e, -1) == 1;
	X509_EXTENSION_free(e);
	return ok ? 0 : -EIO;
}

/* A self-signed ECDSA P-256 CA, valid from the clock skew nodes are allowed for days. */
int admin_ca_generate(const char *cn, int64_t days, EVP_PKEY **ret_key, STACK_OF(X509) **ret_chain)
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = EVP_EC_gen("P-256");
	_cleanup_(X509_freep) X509 *x = X509_new();
	_cleanup_(BN_freep) BIGNUM *bn = NULL;
	STACK_OF(X509) *chain;
	uint8_t serial[20];
	time_t now = time(NULL);

	if (!k || !x || RAND_bytes(serial, sizeof(serial)) != 1)
		return -EIO;
	serial[0] = (serial[0] & 0x7f) | 0x01;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || X509_set_version(x, X509_VERSION_3) != 1 || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    !X509_time_adj_ex(X509_getm_notBefore(x), 0, -ATTEST_CLOCK_SKEW_MAX, &now) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, &now) ||
	    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
				       0) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 || X509_set_pubkey(x, k) != 1 ||
	    ext_add(x, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    ext_add(x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    ext_add(x, NID_subject_key_identifier, "hash") < 0 ||
	    ext_add(x, NID_authority_key_identifier, "keyid:always") < 0 || X509_sign(x, k, EVP_sha256()) <= 0 ||
	    !(chain = sk_X509_new_null()) || sk_X509_push(chain, x) <= 0) {
		ERR_clear_error();
		return -EIO;
	}
	x = NULL;
	*ret_key = TAKE_PTR(k);
	*ret_chain = chain;
	return 0;
}

/* The key as PKCS#8 PEM, in memory OpenSSL wipes when it frees it, written beside as owner-only. */
int admin_key_write(EVP_PKEY *k, const char *path)
{
	BIO *b = BIO_new(BIO_s_secmem());
	BUF_MEM *mem;
	int r = -ENOMEM;

	if (b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1) {
		BIO_get_mem_ptr(b, &mem);
		r = write_file_new(path, mem->data, mem->length, 0600);
	}
	BIO_free(b);
	ERR_clear_error();
	return r;
}

int admin_chain_write(STACK_OF(X509) *chain, const char *path)
{
	_cleanup_free_ char *pem = NULL;
	int r = ca_chain_pem_append(chain, &pem);

	if (r < 0)
		return r;
	return write_file_new(path, pem ? pem : "", pem ? strlen(pem) : 0, 0644);
}

/* Files an interrupted run left beside the real ones are its own: they go before this run writes. */
static void paths_make(const struct server_config *c, struct ca_paths *p)
{
	snprintf(p->cert_new, sizeof(p->cert_new), "%s.new", c->ca_certificate);
	snprintf(p->key_new, sizeof(p->key_new), "%s.new", c->ca_key);
	snprintf(p->previous_new, sizeof(p->previous_new), "%s.new", c->ca_previous);
}

static void paths_clean(const struct ca_paths *p, bool key_too)
{
	(void)unlink(p->cert_new);
	(void)unlink(p->previous_new);
	if (key_too)
		(void)unlink(p->key_new);
}

/* The chain and key a rotation goes to, checked as the server will load them. */
static int new_ca_load(const char *cert_path, const char *key_path, EVP_PKEY **ret_key, STACK_OF(X509) **ret_chain,
		       char *why, size_t size)
{
	_cleanup_chain_ STACK_OF(X509) *chain = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
	int r;

	if ((r = ca_chain_read(cert_path, &chain, why, size)) < 0 || (r = ca_chain_check(cert_path, chain, why, size)) < 0 ||
	    (r = key_read(key_path, &k, why, size)) < 0)
		return r;
	if (X509_check_private_key(sk_X509_value(chain, 0), k) != 1) {
		ERR_clear_error();
		snprintf(why, size, "CA certificate '%s' is not the certificate of key '%s'", cert_path, key_path);
		return -EINVAL;
	}
	*ret_key = TAKE_PTR(k);
	*ret_chain = TAKE_PTR(chain);
	return 0;
}

/* -EEXIST and why when the new CA's key is the current CA's or a previous one's. */
static int key_unused(X509 *fresh, STACK_OF(X509) *current, STACK_OF(X509) *previous, char *why, size_t size)
{
	char a[CA_FINGERPRINT_HEX + 1], b[CA_FINGERPRINT_HEX + 1], name[512];

	ca_key_fingerprint(fresh, a);
	for (int i = 0; i < sk_X509_num(current) + (previous ? sk_X509_num(previous) : 0); i++) {
		bool cur = i < sk_X509_num(current);
		X509 *x = cur ? sk_X509_value(current, i) : sk_X509_value(previous, i - sk_X509_num(current));

		ca_key_fingerprint(x, b);
		if (streq(a, b)) {
			ca_name(x, name, sizeof(name));
			snprintf(why, size, "the new CA's key %.16s is already in use: it is the key of %s CA %s", a,
				 cur ? "the current" : "a previous", name);
			return -EEXIST;
		}
	}
	return 0;
}

static int valid_now(X509 *x, char *why, size_t size)
{
	time_t now = time(NULL);
	char name[512];

	if (X509_cmp_time(X509_get0_notBefore(x), &now) < 0 && X509_cmp_time(X509_get0_notAfter(x), &now) > 0)
		return 0;
	ca_name(x, name, sizeof(name));
	snprintf(why, size, "the new CA %s is not valid now", name);
	return -ETIME;
}

/* The key file the last rotation renamed the certificate for: renamed too, finishing it. */
static int finish_interrupted(const struct server_config *c, struct store *s, const struct ca_paths *p)
{
	_cleanup_chain_ STACK_OF(X509) *chain = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
	char why[WHY_MAX], name[512], what[2 * WHY_MAX];
	int r;

	if (access(p->key_new, F_OK) < 0 || new_ca_load(c->ca_certificate, p->key_new, &k, &chain, why, sizeof(why)) < 0)
		return 0; /* nothing of ours to finish: the usual checks say what is wrong */
	if ((r = file_replace(p->key_new, c->ca_key)) < 0)
		return admin_refuse("cannot move '%s' to '%s': %s", p->key_new, c->ca_key, strerror(-r));
	ca_name(sk_X509_value(chain, 0), name, sizeof(name));
	snprintf(what, sizeof(what), "CA rotation to %s finished: the key an interrupted ca rotate left is in place", name);
	if (store_begin(s) >= 0 && (admin_audit(s, "ca-rotate", "allow", what) < 0 || store_commit(s) < 0))
		store_rollback(s);
	printf("%s; reload the server (SIGHUP)\n", what);
	return 2;
}

struct rotate_args {
	const char *cert, *key, *subject;
	int64_t days;
	bool compromised;
};

static int rotate(const struct server_config *c, struct store *s, const struct rotate_args *o)
{
	_cleanup_chain_ STACK_OF(X509) *current = NULL, *previous = NULL, *fresh = NULL;
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *cur_key = NULL, *key = NULL;
	char why[WHY_MAX], old_name[512], new_name[512], what[2 * WHY_MAX], until[21], cn[128], stamp[32];
	struct ca_paths p;
	time_t now = time(NULL);
	int64_t days = o->days;
	int r;

	/* It writes the new key beside the old and renames it into place: a token or a TPM is no directory. */
	if (!keyref_file(c->ca_key) || (o->key && !keyref_file(o->key))) {
		keyref_display(keyref_file(c->ca_key) ? o->key : c->ca_key, why, sizeof(why));
		return admin_refuse("ca rotate replaces a CA key file, and '%s' is in hardware: make the new key there, "
				    "its certificate, and point ca_key and ca_certificate at them", why);
	}
	paths_make(c, &p);
	if ((r = finish_interrupted(c, s, &p)) != 0)
		return r == 2 ? 0 : r;
	/* The CA in force must load as the server loads it: it is what goes into the overlap. */
	if (new_ca_load(c->ca_certificate, c->ca_key, &cur_key, &current, why, sizeof(why)) < 0)
		return admin_denied(s, "ca-rotate", "the CA in force does not load: %s", why);
	r = ca_chain_read(c->ca_previous, &previous, why, sizeof(why));
	if (r < 0 && r != -ENOENT)
		return admin_denied(s, "ca-rotate", "%s", why);
	if (o->cert) {
		if (new_ca_load(o->cert, o->key, &key, &fresh, why, sizeof(why)) < 0)
			return admin_denied(s, "ca-rotate", "%s", why);
	} else {
		/* As long-lived as the CA it replaces, unless told otherwise. */
		if (days == 0) {
			int64_t life = cert_time_unix(X509_get0_notAfter(sk_X509_value(current, 0))) -
				       cert_time_unix(X509_get0_notBefore(sk_X509_value(current, 0)));

			days = life > 86400 ? (life + 86399) / 86400 : 1;
		}
		/* A name of its own: tools that build chains by name never take one CA for the other. */
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime(&now));
		if (o->subject)
			snprintf(cn, sizeof(cn), "%s", o->subject);
		else
			snprintf(cn, sizeof(cn), "keystrap CA %s", stamp);
		if ((r = admin_ca_generate(cn, days, &key, &fresh)) < 0)
			return admin_refuse("cannot make a CA key and certificate: %s", strerror(-r));
	}
	if (key_unused(sk_X509_value(fresh, 0), current, previous, why, sizeof(why)) < 0 ||
	    valid_now(sk_X509_value(fresh, 0), why, sizeof(why)) < 0)
		return admin_denied(s, "ca-rotate", "%s", why);
	/* The new CA's certificates must be accepted before any is issued: a compromised CA's never again. */
	if (!o->compromised) {
		for (int i = 0; i < sk_X509_num(current); i++)
			if (!previous && !(previous = sk_X509_new_null()))
				return admin_refuse("out of memory");
			else if (sk_X509_push(previous, X509_dup(sk_X509_value(current, i))) <= 0)
				return admin_refuse("out of memory");
	}
	paths_clean(&p, true);
	if ((r = admin_chain_write(fresh, p.cert_new)) < 0 || (r = file_owner_like(p.cert_new, c->ca_certificate)) < 0 ||
	    (r = admin_key_write(key, p.key_new)) < 0 || (r = file_owner_like(p.key_new, c->ca_key)) < 0 ||
	    (previous && sk_X509_num(previous) > 0 &&
	     ((r = admin_chain_write(previous, p.previous_new)) < 0 || (r = file_owner_like(p.previous_new, c->ca_certificate)) < 0))) {
		paths_clean(&p, true);
		return admin_refuse("cannot write the new CA beside '%s': %s; the CA in force is unchanged", c->ca_certificate,
			      strerror(-r));
	}
	ca_name(sk_X509_value(current, 0), old_name, sizeof(old_name));
	ca_name(sk_X509_value(fresh, 0), new_name, sizeof(new_name));
	policy_time_format(((int64_t)now + c->certificate_lifetime) * 1000000, until);
	if (o->compromised)
		snprintf(what, sizeof(what), "CA %s declared compromised and replaced by CA %s: out of the bundle at once, "
			 "its certificates are no longer accepted by consumers pinning it", old_name, new_name);
	else
		snprintf(what, sizeof(what), "CA %s replaced by CA %s; the old CA stays in the bundle until ca retire "
			 "(its certificates expire by %s)", old_name, new_name, until);
	if ((r = store_begin(s)) < 0) {
		paths_clean(&p, true);
		return admin_refuse("cannot write to the store: %s; the CA in force is unchanged", strerror(-r));
	}
	r = admin_audit(s, "ca-rotate", "allow", what);
	/* The previous CAs first: from the moment the new CA is in force its certificates verify. */
	if (r >= 0 && previous && sk_X509_num(previous) > 0)
		r = file_replace(p.previous_new, c->ca_previous);
	else if (r >= 0 && unlink(c->ca_previous) < 0 && errno != ENOENT)
		r = -errno;
	if (r >= 0 && (r = file_replace(p.cert_new, c->ca_certificate)) >= 0 &&
	    (r = file_replace(p.key_new, c->ca_key)) >= 0 && (r = store_commit(s)) < 0) {
		store_rollback(s);
		return admin_refuse("the new CA is in place, but its audit record could not be committed: %s (record the "
				    "rotation by hand: %s)", strerror(-r), what);
	}
	if (r < 0) {
		store_rollback(s);
		paths_clean(&p, false);
		return admin_refuse("CA rotation failed: %s%s", strerror(-r),
			      access(p.key_new, F_OK) == 0 ? " (run it again to finish)" : "");
	}
	printf("%s\nreload the server (systemctl reload keystrap-server) to issue from the new CA\n", what);
	return 0;
}

struct last_rotation {
	int64_t time_us;
};

static int last_rotation_find(const struct audit_rec *a, void *userdata)
{
	struct last_rotation *l = userdata;

	if (streq(a->action, "ca-rotate") && streq(a->decision, "allow"))
		l->time_us = a->time_us;
	return 0;
}

static int retire(const struct server_config *c, struct store *s, bool force)
{
	_cleanup_chain_ STACK_OF(X509) *previous = NULL;
	struct last_rotation l = {};
	char why[WHY_MAX], names[WHY_MAX], rotated[21], until[21], what[WHY_MAX * 2];
	size_t n = 0;
	int r = ca_chain_read(c->ca_previous, &previous, why, sizeof(why));

	if (r == -ENOENT)
		return admin_denied(s, "ca-retire", "nothing to retire: there is no previous CA ('%s' does not exist)",
			      c->ca_previous);
	if (r < 0)
		return admin_denied(s, "ca-retire", "%s", why);
	names[0] = 0;
	for (int i = 0; i < sk_X509_num(previous); i++) {
		char name[512];

		ca_name(sk_X509_value(previous, i), name, sizeof(name));
		n += (size_t)snprintf(names + n, n < sizeof(names) ? sizeof(names) - n : 0, "%s%s", i ? ", " : "", name);
	}
	if ((r = store_audit_foreach(s, last_rotation_find, &l)) < 0)
		return admin_refuse("cannot read the audit log: %s", strerror(-r));
	policy_time_format(l.time_us, rotated);
	policy_time_format(l.time_us + c->certificate_lifetime * 1000000, until);
	if (!force && !l.time_us)
		return admin_denied(s, "ca-retire", "no ca rotate on record: cannot tell when %s's last certificates expire "
			      "(--force retires it now)", names);
	if (!force && l.time_us + c->certificate_lifetime * 1000000 > now_usec())
		return admin_denied(s, "ca-retire", "certificates from %s may be valid until %s (rotated %s, certificate_lifetime "
			      "%lld s): retire then, or now with --force, refusing them", names, until, rotated,
			      (long long)c->certificate_lifetime);
	snprintf(what, sizeof(what), "CA %s retired%s: out of the bundle", names, force ? " (forced)" : "");
	if ((r = store_begin(s)) < 0)
		return admin_refuse("cannot write to the store: %s", strerror(-r));
	r = admin_audit(s, "ca-retire", "allow", what);
	if (r >= 0 && unlink(c->ca_previous) < 0)
		r = -errno;
	if (r >= 0 && (r = fsync_parent_dir(c->ca_previous)) >= 0)
		r = store_commit(s);
	if (r < 0) {
		store_rollback(s);
		return admin_refuse("CA not retired: %s", strerror(-r));
	}
	printf("%s\nreload the server (systemctl reload keystrap-server) to stop handing it out\n", what);
	return 0;
}

static int show(const struct server_config *c, bool bundle)
{
	_cleanup_chain_ STACK_OF(X509) *chain = NULL, *previous = NULL;
	_cleanup_free_ char *pem = NULL;
	char why[WHY_MAX], name[512], until[21];
	int r;

	if (ca_chain_read(c->ca_certificate, &chain, why, sizeof(why)) < 0 ||
	    ca_chain_check(c->ca_certificate, chain, why, sizeof(why)) < 0)
		return admin_refuse("%s", why);
	r = ca_chain_read(c->ca_previous, &previous, why, sizeof(why));
	if (r < 0 && r != -ENOENT)
		return admin_refuse("%s", why);
	if (bundle) {
		if (ca_chain_pem_append(chain, &pem) < 0 || (previous && ca_chain_pem_append(previous, &pem) < 0))
			return admin_refuse("out of memory");
		fputs(pem, stdout);
		return 0;
	}
	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);

		ca_name(x, name, sizeof(name));
		policy_time_format(cert_time_unix(X509_get0_notAfter(x)) * 1000000, until);
		printf("%s %s until %s\n", i ? "chain" : "issuing", name, until);
	}
	for (int i = 0; previous && i < sk_X509_num(previous); i++) {
		ca_name(sk_X509_value(previous, i), name, sizeof(name));
		printf("previous %s (in the bundle until ca retire)\n", name);
	}
	return 0;
}

/*
 * A CRL made now (the server's own is made the same way, from the same store): to stdout, or
 * written beside FILE and renamed over it, so a web server publishing FILE never serves half.
 */
static int crl(const struct server_config *c, struct store *s, bool pem, const char *out)
{
	struct pki *p = NULL;
	struct pki_crl_info info;
	const uint8_t *data;
	char why[WHY_MAX], until[21], beside[PATH_MAX];
	size_t size;
	int r;

	if (out && (size_t)snprintf(beside, sizeof(beside), "%s.new", out) >= sizeof(beside))
		return admin_refuse("--out '%s' is too long a path", out);
	if (pki_load(c, &p) < 0)
		return 1; /* pki_load said why */
	r = pki_crl(p, s, c->crl_lifetime, pem, &data, &size, &info, why, sizeof(why));
	if (r < 0) {
		pki_free(p);
		return admin_refuse("no CRL: %s", why);
	}
	if (!out) {
		r = write_full(STDOUT_FILENO, data, size);
		pki_free(p);
		if (r < 0)
			return admin_refuse("cannot write the CRL to stdout: %s", strerror(-r));
		return 0;
	}
	(void)unlink(beside);
	if ((r = write_file_new(beside, data, size, 0644)) < 0 || (r = file_replace(beside, out)) < 0) {
		(void)unlink(beside);
		pki_free(p);
		return admin_refuse("cannot write the CRL to '%s': %s", out, strerror(-r));
	}
	pki_free(p);
	policy_time_format(info.next_update * 1000000, until);
	printf("CRL %lld listing %lld certificate%s written to %s, next update %s\n", (long long)info.number,
	       (long long)info.entries, info.entries == 1 ? "" : "s", out, until);
	return 0;
}

int cmd_ca(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "certificate", required_argument, NULL, 'C' },
					      { "key", required_argument, NULL, 'k' },
					      { "subject", required_argument, NULL, 's' },
					      { "days", required_argument, NULL, 'd' },
					      { "compromised", no_argument, NULL, 'x' },
					      { "force", no_argument, NULL, 'f' },
					      { "pem", no_argument, NULL, 'p' },
					      { "out", required_argument, NULL, 'o' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	_cleanup_server_config_ struct server_config *c = NULL;
	_cleanup_store_ struct store *s = NULL;
	struct rotate_args ra = {};
	const char *config = NULL, *verb, *out = NULL;
	bool force = false, pem = false;
	char *end;
	int o, r;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'C':
			ra.cert = optarg;
			break;
		case 'k':
			ra.key = optarg;
			break;
		case 's':
			ra.subject = optarg;
			break;
		case 'd':
			errno = 0;
			ra.days = strtoll(optarg, &end, 10);
			if (!*optarg || *end || errno || ra.days < 1 || ra.days > 36500)
				return admin_refuse("--days '%s' is not a number of days from 1 to 36500", optarg);
			break;
		case 'x':
			ra.compromised = true;
			break;
		case 'f':
			force = true;
			break;
		case 'p':
			pem = true;
			break;
		case 'o':
			if (!*optarg)
				return admin_refuse("--out '' names no file");
			out = optarg;
			break;
		case 'h':
			printf("Usage: %s\n", usage);
			return EXIT_HELP;
		default:
			goto bad;
		}
	if (!config || argc - optind != 1)
		goto bad;
	verb = argv[optind];
	if (!streq(verb, "rotate") && (ra.cert || ra.key || ra.subject || ra.days || ra.compromised))
		goto bad;
	if (!streq(verb, "retire") && force)
		goto bad;
	if (!streq(verb, "crl") && (pem || out))
		goto bad;
	if (streq(verb, "rotate") && (!ra.cert != !ra.key || (ra.cert && (ra.subject || ra.days))))
		goto bad;
	if (!streq(verb, "rotate") && !streq(verb, "retire") && !streq(verb, "show") && !streq(verb, "bundle") &&
	    !streq(verb, "crl"))
		goto bad;
	if ((r = admin_load(config, &c, &s)) != 0)
		return r;
	if (streq(verb, "rotate"))
		return rotate(c, s, &ra);
	if (streq(verb, "retire"))
		return retire(c, s, force);
	if (streq(verb, "crl"))
		return crl(c, s, pem, out);
	return show(c, streq(verb, "bundle"));
bad:
	fprintf(stderr, "Usage: %s\n", usage);
	return EXIT_USAGE;
}
