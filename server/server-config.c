/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "encode.h"
#include "fileio.h"
#include "keyref.h"
#include "log.h"
#include "operator.h"
#include "server-config.h"

#define CONFIG_MAX 65536

int64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void server_config_free(struct server_config *c)
{
	if (!c)
		return;
	free(c->listen);
	free(c->admin_listen);
	free(c->tls_certificate);
	free(c->tls_key);
	free(c->database);
	free(c->kek);
	for (size_t i = 0; i < c->n_ek_ca; i++)
		free(c->ek_ca[i]);
	free(c->ca_certificate);
	free(c->ca_key);
	free(c->log_key);
	free(c->checkpoint_file);
	free(c->log_key_next);
	free(c->log_name);
	free(c->ca_previous);
	operator_keys_free(c->operators);
	free(c);
}

/* The default of workers: one verification thread per online CPU, at least one. */
static int64_t online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > WORKERS_MAX ? WORKERS_MAX : n;
}

static int bad(const char *path, const char *key, const char *why)
{
	return log_error_errno(-EINVAL, "%s: '%s' %s", path, key, why);
}

static int str(const char *path, json_object *o, const char *key, bool required, char **ret)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return required ? bad(path, key, "is missing") : 0;
	if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0)
		return bad(path, key, "is not a non-empty string");
	*ret = strdup(json_object_get_string(v));
	return *ret ? 0 : -ENOMEM;
}

static int num(const char *path, json_object *o, const char *key, int64_t min, int64_t max, int64_t *ret)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return 0; /* the default stays */
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < min || json_object_get_int64(v) > max)
		return log_error_errno(-EINVAL, "%s: '%s' is not a number from %lld to %lld", path, key,
				       (long long)min, (long long)max);
	*ret = json_object_get_int64(v);
	return 0;
}

/* Requests per second: a number (fractions allowed, e.g. 0.5) from 0 (no limit) to 1000000. */
static int rate(const char *path, json_object *o, double *ret)
{
	json_object *v;
	double d;

	if (!json_object_object_get_ex(o, "rate_limit", &v))
		return 0;
	d = json_object_get_double(v);
	if ((!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) || !(d >= 0) ||
	    d > 1000000)
		return bad(path, "rate_limit", "is not a number of requests per second from 0 to 1000000");
	*ret = d;
	return 0;
}

/* A list of 1..max non-empty strings (file names). */
static int files(const char *path, json_object *o, const char *key, size_t max, char **list, size_t *n)
{
	json_object *a;

	if (!json_object_object_get_ex(o, key, &a) || !json_object_is_type(a, json_type_array) ||
	    json_object_array_length(a) == 0 || json_object_array_length(a) > max)
		return log_error_errno(-EINVAL, "%s: '%s' is not a list of 1 to %zu file names", path, key, max);
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *v = json_object_array_get_idx(a, i);

		if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0)
			return bad(path, key, "holds something other than file names");
		if (!(list[(*n)++] = strdup(json_object_get_string(v))))
			return -ENOMEM;
	}
	return 0;
}

/* n operator keys and a threshold k with 1 <= k <= n. */
static int operators(const char *path, json_object *o, struct server_config *c)
{
	char *keys[OPERATOR_KEYS_CONFIG_MAX] = {};
	size_t n = 0;
	int r;

	r = files(path, o, "operator_keys", OPERATOR_KEYS_CONFIG_MAX, keys, &n);
	if (r >= 0)
		r = num(path, o, "policy_threshold", 1, OPERATOR_KEYS_CONFIG_MAX, &c->policy_threshold);
	if (r >= 0 && c->policy_threshold > (int64_t)n)
		r = log_error_errno(-EINVAL, "%s: 'policy_threshold' %lld is more than the %zu operator keys", path,
				    (long long)c->policy_threshold, n);
	if (r >= 0)
		r = operator_keys_load(keys, n, &c->operators);
	if (r >= 0 && c->policy_threshold == 1)
		log_warning("%s: 'policy_threshold' 1 lets any single operator key change what nodes must boot", path);
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	return r;
}

int server_config_load(const char *path, struct server_config **ret)
{
	static const char *const fields[] = { "listen", "tls_certificate", "tls_key", "database", "ek_ca",
					      "ca_certificate", "ca_key", "certificate_lifetime", "nonce_lifetime",
					      "max_body", "rate_limit", "rate_burst", "max_pending_enrollments", "operator_keys",
					      "policy_threshold", "max_connections", "max_connections_per_address",
					      "request_timeout", "kek", "ca_previous", "crl_lifetime", "log_key",
					      "log_key_next", "log_name", "checkpoint_file", "admin_listen", "max_queue_delay",
					      "retry_after", "workers", NULL };
	_cleanup_server_config_ struct server_config *c = NULL;
	_cleanup_free_ uint8_t *text = NULL;
	json_object *o = NULL;
	char reason[ATTEST_REASON_MAX];
	size_t size;
	int r;

	r = read_file(path, CONFIG_MAX, &text, &size);
	if (r < 0)
		return log_error_errno(r, "cannot read configuration '%s': %s", path, strerror(-r));
	r = attest_json_object((const char *)text, size, fields, &o, reason);
	if (r < 0)
		return log_error_errno(r, "%s: %s", path, reason);
	c = calloc(1, sizeof(*c));
	if (!c) {
		json_object_put(o);
		return -ENOMEM;
	}
	c->certificate_lifetime = 3600;
	c->nonce_lifetime = 60;
	c->max_body = ATTEST_MESSAGE_MAX;
	c->rate_limit = 20;
	c->rate_burst = 100;
	c->max_pending_enrollments = 10000;
	c->policy_threshold = 2;
	c->max_connections = 4096;
	c->max_connections_per_address = 128;
	c->request_timeout = 10;
	c->max_queue_delay = 500;
	c->retry_after = 2;
	c->workers = online_cpus();
	c->crl_lifetime = 86400;
	if ((r = str(path, o, "listen", true, &c->listen)) < 0 || (r = str(path, o, "database", true, &c->database)) < 0 ||
	    (r = str(path, o, "kek", true, &c->kek)) < 0 ||
	    (r = str(path, o, "tls_certificate", true, &c->tls_certificate)) < 0 ||
	    (r = str(path, o, "tls_key", true, &c->tls_key)) < 0 ||
	    (r = str(path, o, "ca_certificate", true, &c->ca_certificate)) < 0 ||
	    (r = str(path, o, "ca_key", true, &c->ca_key)) < 0 ||
	    (r = str(path, o, "ca_previous", false, &c->ca_previous)) < 0 ||
	    (r = str(path, o, "log_key", false, &c->log_key)) < 0 ||
	    (r = str(path, o, "checkpoint_file", false, &c->checkpoint_file)) < 0 ||
	    (r = str(path, o, "log_key_next", false, &c->log_key_next)) < 0 ||
	    (r = str(path, o, "log_name", false, &c->log_name)) < 0 ||
	    (r = str(path, o, "admin_listen", false, &c->admin_listen)) < 0 ||
	    (r = num(path, o, "certificate_lifetime", 60, 90LL * 86400, &c->certificate_lifetime)) < 0 ||
	    (r = num(path, o, "nonce_lifetime", 1, 3600, &c->nonce_lifetime)) < 0 ||
	    (r = num(path, o, "max_body", 1024, 1 << 20, &c->max_body)) < 0 ||
	    (r = rate(path, o, &c->rate_limit)) < 0 || (r = num(path, o, "rate_burst", 1, 1000000, &c->rate_burst)) < 0 ||
	    (r = num(path, o, "max_pending_enrollments", 1, 10000000, &c->max_pending_enrollments)) < 0 ||
	    (r = num(path, o, "max_connections", 1, CONNECTIONS_MAX, &c->max_connections)) < 0 ||
	    (r = num(path, o, "max_connections_per_address", 1, CONNECTIONS_MAX, &c->max_connections_per_address)) < 0 ||
	    (r = num(path, o, "request_timeout", 1, 3600, &c->request_timeout)) < 0 ||
	    (r = num(path, o, "max_queue_delay", 1, 60000, &c->max_queue_delay)) < 0 ||
	    (r = num(path, o, "retry_after", 1, 3600, &c->retry_after)) < 0 ||
	    (r = num(path, o, "workers", 0, WORKERS_MAX, &c->workers)) < 0 ||
	    (r = num(path, o, "crl_lifetime", 300, 30LL * 86400, &c->crl_lifetime)) < 0 ||
	    (r = files(path, o, "ek_ca", EK_CA_MAX, c->ek_ca, &c->n_ek_ca)) < 0 || (r = operators(path, o, c)) < 0)
		goto out;
	if (c->admin_listen && (strncmp(c->admin_listen, "unix:/", 6) != 0 || strlen(c->admin_listen) > 5 + 107)) {
		r = bad(path, "admin_listen", "is not unix:/ABSOLUTE/PATH (at most 107 bytes)");
		goto out;
	}
	r = -ENOMEM;
	if (!c->ca_previous && asprintf(&c->ca_previous, "%s.previous", c->ca_certificate) < 0) {
		c->ca_previous = NULL;
		goto out;
	}
	/* A key in hardware has no file for a next one to go beside: its rotation names the next key. */
	if (c->log_key && !c->log_key_next && keyref_file(c->log_key) &&
	    asprintf(&c->log_key_next, "%s.next", c->log_key) < 0) {
		c->log_key_next = NULL;
		goto out;
	}
	*ret = TAKE_PTR(c);
	r = 0;
out:
	json_object_put(o);
	return r;
}
