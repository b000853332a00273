/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <json-c/json.h>

#include "encode.h"
#include "fileio.h"
#include "log.h"
#include "server.h"

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
	free(c->tls_certificate);
	free(c->tls_key);
	free(c->database);
	for (size_t i = 0; i < c->n_ek_ca; i++)
		free(c->ek_ca[i]);
	free(c->ca_certificate);
	free(c->ca_key);
	free(c);
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

static int reference(const char *path, json_object *o, struct server_config *c)
{
	json_object *bank, *pcrs;

	if (json_object_object_get_ex(o, "pcr_bank", &bank)) {
		if (!json_object_is_type(bank, json_type_string) ||
		    !(c->bank = pcr_bank_by_name(json_object_get_string(bank))))
			return bad(path, "pcr_bank", "names no known PCR bank");
	}
	if (!json_object_object_get_ex(o, "reference_pcrs", &pcrs) || !json_object_is_type(pcrs, json_type_object))
		return bad(path, "reference_pcrs", "is not an object of PCR index → hex digest");
	json_object_object_foreach(pcrs, key, val)
	{
		char *end;
		long i = strtol(key, &end, 10);

		if (!*key || *end || i < 0 || i >= PCR_COUNT || (key[0] == '0' && key[1]))
			return bad(path, "reference_pcrs", "has a key that is not a PCR index");
		if (!json_object_is_type(val, json_type_string) ||
		    (size_t)json_object_get_string_len(val) != 2u * c->bank->size ||
		    hex_decode(json_object_get_string(val), c->reference[i], c->bank->size) < 0)
			return log_error_errno(-EINVAL, "%s: reference PCR %ld is not a %s digest in hex", path, i,
					       c->bank->name);
		c->mask |= 1u << i;
	}
	if (!c->mask)
		return bad(path, "reference_pcrs", "is empty");
	return 0;
}

int server_config_load(const char *path, struct server_config **ret)
{
	static const char *const fields[] = { "listen", "tls_certificate", "tls_key", "database", "ek_ca",
					      "ca_certificate", "ca_key", "certificate_lifetime", "nonce_lifetime",
					      "max_body", "pcr_bank", "reference_pcrs", "rate_limit", "rate_burst",
					      "max_pending_enrollments", NULL };
	_cleanup_server_config_ struct server_config *c = NULL;
	_cleanup_free_ uint8_t *text = NULL;
	json_object *o = NULL, *cas;
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
	c->bank = pcr_bank_by_name("sha256");
	if ((r = str(path, o, "listen", true, &c->listen)) < 0 || (r = str(path, o, "database", true, &c->database)) < 0 ||
	    (r = str(path, o, "tls_certificate", true, &c->tls_certificate)) < 0 ||
	    (r = str(path, o, "tls_key", true, &c->tls_key)) < 0 ||
	    (r = str(path, o, "ca_certificate", true, &c->ca_certificate)) < 0 ||
	    (r = str(path, o, "ca_key", true, &c->ca_key)) < 0 ||
	    (r = num(path, o, "certificate_lifetime", 60, 90LL * 86400, &c->certificate_lifetime)) < 0 ||
	    (r = num(path, o, "nonce_lifetime", 1, 3600, &c->nonce_lifetime)) < 0 ||
	    (r = num(path, o, "max_body", 1024, 1 << 20, &c->max_body)) < 0 ||
	    (r = rate(path, o, &c->rate_limit)) < 0 || (r = num(path, o, "rate_burst", 1, 1000000, &c->rate_burst)) < 0 ||
	    (r = num(path, o, "max_pending_enrollments", 1, 10000000, &c->max_pending_enrollments)) < 0 ||
	    (r = reference(path, o, c)) < 0)
		goto out;
	if (!json_object_object_get_ex(o, "ek_ca", &cas) || !json_object_is_type(cas, json_type_array) ||
	    json_object_array_length(cas) == 0 || json_object_array_length(cas) > EK_CA_MAX) {
		r = bad(path, "ek_ca", "is not a list of 1 to 8 CA certificate files");
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(cas); i++) {
		json_object *v = json_object_array_get_idx(cas, i);

		if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0) {
			r = bad(path, "ek_ca", "holds something other than file names");
			goto out;
		}
		if (!(c->ek_ca[c->n_ek_ca++] = strdup(json_object_get_string(v)))) {
			r = -ENOMEM;
			goto out;
		}
	}
	*ret = TAKE_PTR(c);
	r = 0;
out:
	json_object_put(o);
	return r;
}
