/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What keystrap measures and how: phases and its configuration extended into their PCR in every
 * active bank, each event appended to the CEL measurement log (once per boot where that matters).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cel.h"
#include "encode.h"
#include "fileio.h"
#include "log.h"
#include "measure.h"
#include "open.h"

#define MEASURE_LOG_MAX (16u << 20)
#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"
#define CONFIG_EVENT "keystrap:config:"

/*
 * Where each phase goes. volumes-unlocked is the lock: PCR 15, which disk keys are sealed
 * to at its boot value (zero). Everything else keystrap measures goes to PCR 12 so that PCR
 * 15 is still zero when unlock needs it, and so that what keystrap measures can never be
 * mistaken for systemd's phases in PCR 11 (which signed UKI policies predict exactly).
 */
static const struct {
	const char *name;
	unsigned pcr;
} phases[] = {
	{ "enter-initrd", MEASURE_PCR },
	{ "volumes-unlocked", LOCK_PCR },
	{ "attested", MEASURE_PCR },
	{ "leave-initrd", MEASURE_PCR },
};

static const char *log_override;

void measure_log_use(const char *path)
{
	log_override = path;
}

const char *measure_log_path(void)
{
	const char *e = secure_getenv("KEYSTRAP_MEASURE_LOG");

	if (log_override)
		return log_override;
	return e && *e ? e : MEASURE_LOG_DEFAULT;
}

static int mkdir_parents(const char *path)
{
	char dir[PATH_MAX];

	if (strlen(path) >= sizeof(dir))
		return -ENAMETOOLONG;
	strcpy(dir, path);
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

/* Opened and locked before the PCR moves, as systemd does: nobody appends in between. */
static int log_open(const char *path)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	int r;

	r = mkdir_parents(path);
	if (r < 0)
		return r;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX) < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADFD;
	r = fd;
	fd = -1;
	return r;
}

static int write_all(int fd, const char *s, size_t n)
{
	int r = write_full(fd, s, n);

	return r < 0 ? r : fsync(fd) < 0 ? -errno : 0;
}

static int boot_id(char ret[CEL_BOOT_ID_SIZE])
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t size, n = 0;
	int r;

	r = read_file(BOOT_ID_PATH, 64, &data, &size);
	if (r < 0)
		return r;
	for (size_t i = 0; i < size && n < CEL_BOOT_ID_SIZE - 1; i++)
		if (data[i] != '-' && data[i] != '\n')
			ret[n++] = (char)data[i];
	ret[n] = 0;
	return n == CEL_BOOT_ID_SIZE - 1 ? 0 : -EINVAL;
}

/* Whether the log already holds this event for this boot (read under the lock). */
static int logged_before(const char *path, unsigned pcr, const char *string, const char *boot)
{
	_cleanup_free_ uint8_t *data = NULL;
	struct cel c = { 0 };
	char err[CEL_ERROR_MAX];
	size_t size;
	int r, found = 0;

	r = read_file(path, MEASURE_LOG_MAX, &data, &size);
	if (r < 0)
		return log_error_errno(r, "cannot read measurement log '%s': %s", path, strerror(-r));
	r = cel_parse(&c, 0, (const char *)data, size, err);
	if (r == -EBADMSG)
		return log_error_errno(r, "measurement log '%s' is corrupt (%s): cannot tell what was measured",
				       path, err);
	if (r < 0)
		return log_error_errno(r, "cannot parse measurement log '%s': %s", path, strerror(-r));
	for (size_t i = 0; i < c.n_records && !found; i++)
		found = c.records[i].pcr == pcr && c.records[i].string && streq(c.records[i].string, string) &&
			streq(c.records[i].boot_id, boot);
	cel_done(&c);
	return found;
}

/*
 * Extends pcr with string in every active bank and logs it. Returns 1 without extending
 * when once is set and this boot's log already has the event. The PCR is extended even if
 * the log cannot be written (a lock must never be skipped); that still fails, loudly.
 */
static int measure_event(struct tpm *t, unsigned pcr, const char *string, const char *event_type, bool once)
{
	_cleanup_tpm_ struct tpm *own = NULL;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *record = NULL;
	const char *path = measure_log_path();
	struct cel_digest digests[PCR_BANKS];
	TPML_DIGEST_VALUES values;
	char boot[CEL_BOOT_ID_SIZE] = "";
	struct timespec ts = { 0 };
	unsigned n = 0;
	int r;

	fd = log_open(path);
	if (boot_id(boot) < 0)
		log_debug("no boot ID in " BOOT_ID_PATH);
	if (once && fd >= 0) {
		r = logged_before(path, pcr, string, boot);
		if (r != 0)
			return r;
	}
	if (!t) {
		r = tpm_connect(&own);
		if (r < 0)
			return r;
		t = own;
	}
	r = tpm_pcr_extend(t, pcr, string, strlen(string), &values);
	if (r < 0)
		return log_error_errno(r, "cannot extend PCR %u: %s", pcr, tpm_failure_reason(r));
	if (fd < 0)
		return log_error_errno(fd, "PCR %u extended with \"%s\", but the measurement log '%s' cannot be "
				       "opened: %s", pcr, string, path, strerror(-fd));
	for (uint32_t i = 0; i < values.count && n < PCR_BANKS; i++) {
		const struct pcr_bank *bank = pcr_bank_by_alg(values.digests[i].hashAlg);

		/* A bank keystrap has no name for cannot be logged; its PCR stays unverifiable. */
		if (!bank)
			continue;
		digests[n].bank = bank;
		memcpy(digests[n].value, &values.digests[i].digest, bank->size);
		n++;
	}
	(void)clock_gettime(CLOCK_BOOTTIME, &ts);
	r = cel_format(pcr, digests, n, string, event_type, boot,
		       (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u, &record);
	if (r >= 0)
		r = write_all(fd, record, strlen(record));
	if (r < 0)
		return log_error_errno(r, "PCR %u extended with \"%s\", but appending to the measurement log '%s' "
				       "failed: %s", pcr, string, path, strerror(-r));
	return 0;
}

int measure_phase_pcr(const char *phase)
{
	for (size_t i = 0; i < ELEMENTSOF(phases); i++)
		if (streq(phases[i].name, phase))
			return (int)phases[i].pcr;
	return -EINVAL;
}

int measure_phase(struct tpm *t, const char *phase)
{
	int pcr = measure_phase_pcr(phase);
	char event[64];

	if (pcr < 0)
		return log_error_errno(pcr, "unknown phase '%s'", phase);
	snprintf(event, sizeof(event), "keystrap:%s", phase);
	return measure_event(t, (unsigned)pcr, event, "phase", false);
}

static int config_read(const char *path, uint8_t **ret_data, size_t *ret_size, struct keystrap_config **ret)
{
	_cleanup_free_ uint8_t *data = NULL;
	char err[CONFIG_ERROR_MAX];
	size_t size;
	int r;

	r = read_file(path, CONFIG_SIZE_MAX, &data, &size);
	if (r < 0)
		return log_error_errno(r, "cannot read configuration '%s': %s", path,
				       r == -EFBIG ? "larger than 64 KiB" : strerror(-r));
	r = config_parse(path, (const char *)data, size, ret, err);
	if (r == -EINVAL)
		return log_error_errno(r, "%s", err);
	if (r < 0)
		return log_error_errno(r, "cannot parse '%s': %s", path, strerror(-r));
	*ret_data = TAKE_PTR(data);
	*ret_size = size;
	return 0;
}

int config_check(const char *path, struct keystrap_config **ret)
{
	_cleanup_config_ struct keystrap_config *c = NULL;
	_cleanup_free_ uint8_t *data = NULL;
	size_t size;
	int r;

	r = config_read(path, &data, &size, &c);
	if (r < 0)
		return r;
	if (ret)
		*ret = TAKE_PTR(c);
	return 0;
}

int config_load(struct tpm *t, const char *path, struct keystrap_config **ret)
{
	_cleanup_config_ struct keystrap_config *c = NULL;
	_cleanup_free_ uint8_t *data = NULL;
	uint8_t digest[32];
	char event[sizeof(CONFIG_EVENT) + 64], hex[65];
	size_t size;
	int r;

	/* The bytes parsed are the bytes measured: the file is read once. */
	r = config_read(path, &data, &size, &c);
	if (r < 0)
		return r;
	r = pcr_bank_digest(pcr_bank_by_name("sha256"), data, size, digest);
	if (r < 0)
		return log_error_errno(r, "cannot hash '%s': %s", path, strerror(-r));
	hex_encode(digest, sizeof(digest), hex);
	snprintf(event, sizeof(event), CONFIG_EVENT "%s", hex);
	r = measure_event(t, MEASURE_PCR, event, NULL, true);
	if (r < 0)
		return r;
	if (r == 0)
		printf("PCR %d extended with configuration %s (%s)\n", MEASURE_PCR, path, event);
	else
		printf("configuration %s was measured earlier in this boot (%s)\n", path, event);
	/* In the journal this line must precede what is done with the configuration. */
	fflush(stdout);
	*ret = TAKE_PTR(c);
	return 0;
}
