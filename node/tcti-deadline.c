/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <tss2/tss2_tctildr.h>
#include <tss2/tss2_tpm2_types.h>

#include "deadline.h"
#include "secbuf.h"
#include "tcti-deadline.h"

#define DEADLINE_MAGIC 0x6b7374696d656f75ULL

/*
 * One job for the TPM's side, shared by the caller and the thread that does it: loading the
 * TCTI (conf set; some TCTIs talk to the TPM as they start), or one command and its response.
 */
struct exchange {
	int refs;
	int done_fd;     /* eventfd, written by the thread once rc (and the response) are in */
	bool joined;     /* the thread is done */
	bool owns_inner; /* abandoned: the last one out finalizes inner */
	TSS2_TCTI_CONTEXT *inner;
	char *conf;
	pthread_t thread;
	unsigned timeout_ms;
	int64_t deadline_ms;
	TSS2_RC rc;
	size_t cmd_size, rsp_size;
	uint8_t cmd[TPM2_MAX_COMMAND_SIZE];
	uint8_t rsp[TPM2_MAX_RESPONSE_SIZE];
};

struct deadline_tcti {
	TSS2_TCTI_CONTEXT_COMMON_V2 common;
	TSS2_TCTI_CONTEXT *inner; /* NULL once an abandoned exchange holds it */
	unsigned timeout_ms;
	struct exchange *pending; /* sent, its response not yet taken */
	bool expired;
	uint32_t expired_cc;
	unsigned expired_ms;
};

static struct deadline_tcti *deadline_cast(TSS2_TCTI_CONTEXT *ctx)
{
	struct deadline_tcti *d = (struct deadline_tcti *)ctx;

	return d && d->common.v1.magic == DEADLINE_MAGIC ? d : NULL;
}

static uint32_t command_code(const uint8_t *cmd)
{
	/* TPM command header: tag(2) size(4) commandCode(4), big-endian. */
	return (uint32_t)cmd[6] << 24 | (uint32_t)cmd[7] << 16 | (uint32_t)cmd[8] << 8 | cmd[9];
}

static bool generates_key(uint32_t cc)
{
	return cc == TPM2_CC_CreatePrimary || cc == TPM2_CC_Create || cc == TPM2_CC_CreateLoaded;
}

static void exchange_unref(struct exchange *ex)
{
	if (__atomic_sub_fetch(&ex->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	if (ex->owns_inner && ex->inner)
		Tss2_TctiLdr_Finalize(&ex->inner);
	if (ex->done_fd >= 0)
		close(ex->done_fd);
	free(ex->conf);
	/* Parameter encryption keeps secrets out of these buffers; wipe them all the same. */
	secmem_wipe(ex, sizeof(*ex));
	free(ex);
}

static void *exchange_run(void *p)
{
	struct exchange *ex = p;

	if (ex->conf)
		ex->rc = Tss2_TctiLdr_Initialize(ex->conf, &ex->inner);
	else {
		ex->rc = Tss2_Tcti_Transmit(ex->inner, ex->cmd_size, ex->cmd);
		if (ex->rc == TSS2_RC_SUCCESS) {
			ex->rsp_size = sizeof(ex->rsp);
			ex->rc = Tss2_Tcti_Receive(ex->inner, &ex->rsp_size, ex->rsp, TSS2_TCTI_TIMEOUT_BLOCK);
		}
	}
	(void)eventfd_write(ex->done_fd, 1);
	exchange_unref(ex);
	return NULL;
}

static struct exchange *exchange_new(unsigned timeout_ms)
{
	struct exchange *ex = calloc(1, sizeof(*ex));

	if (!ex)
		return NULL;
	ex->refs = 1;
	ex->timeout_ms = timeout_ms;
	ex->done_fd = eventfd(0, EFD_CLOEXEC);
	if (ex->done_fd < 0) {
		exchange_unref(ex);
		return NULL;
	}
	return ex;
}

static int exchange_start(struct exchange *ex)
{
	sigset_t all, old;
	int r;

	ex->deadline_ms = mono_ms() + ex->timeout_ms;
	ex->refs = 2;
	/* Signals stay with the thread that can act on them. */
	sigfillset(&all);
	(void)pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&ex->thread, NULL, exchange_run, ex);
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		ex->refs = 1;
	return -r;
}

/* Waits for ex until its deadline: false if its thread is not done by then. */
static bool exchange_wait(struct exchange *ex)
{
	if (fd_wait(ex->done_fd, POLLIN, ex->deadline_ms) < 0)
		return false;
	(void)pthread_join(ex->thread, NULL);
	ex->joined = true;
	return true;
}

/* Leaves ex, and the TCTI it is inside, to its thread: whichever of us is last frees them. */
static void exchange_abandon(struct exchange *ex)
{
	ex->owns_inner = true;
	(void)pthread_detach(ex->thread);
	exchange_unref(ex);
}

/* An exchange of d's missed its deadline: d gives the TPM up. */
static void deadline_expire(struct deadline_tcti *d, struct exchange *ex)
{
	d->expired = true;
	d->expired_cc = command_code(ex->cmd);
	d->expired_ms = ex->timeout_ms;
	d->inner = NULL;
	d->pending = NULL;
}

/* What every call checks first; a TPM given up fails at once. */
static TSS2_RC deadline_usable(const struct deadline_tcti *d, const void *arg)
{
	if (!d)
		return TSS2_TCTI_RC_BAD_CONTEXT;
	if (!arg)
		return TSS2_TCTI_RC_BAD_REFERENCE;
	return d->expired ? TSS2_TCTI_RC_IO_ERROR : TSS2_RC_SUCCESS;
}

static TSS2_RC deadline_transmit(TSS2_TCTI_CONTEXT *ctx, size_t size, const uint8_t *command)
{
	struct deadline_tcti *d = deadline_cast(ctx);
	TSS2_RC rc = deadline_usable(d, command);
	struct exchange *ex;
	uint32_t cc;

	if (rc != TSS2_RC_SUCCESS)
		return rc;
	if (d->pending)
		return TSS2_TCTI_RC_BAD_SEQUENCE;
	if (size < 10 || size > TPM2_MAX_COMMAND_SIZE)
		return TSS2_TCTI_RC_BAD_VALUE;
	cc = command_code(command);
	ex = exchange_new(d->timeout_ms * (generates_key(cc) ? TCTI_DEADLINE_KEYGEN_FACTOR : 1));
	if (!ex)
		return TSS2_TCTI_RC_MEMORY;
	ex->inner = d->inner;
	ex->cmd_size = size;
	memcpy(ex->cmd, command, size);
	if (exchange_start(ex) < 0) {
		exchange_unref(ex);
		return TSS2_TCTI_RC_MEMORY;
	}
	d->pending = ex;
	return TSS2_RC_SUCCESS;
}

/*
 * keystrap's ESAPI calls are synchronous and pass TSS2_TCTI_TIMEOUT_BLOCK: the deadline is
 * this TCTI's own. SAPI asks for the size first (response NULL), then for the bytes.
 */
static TSS2_RC deadline_receive(TSS2_TCTI_CONTEXT *ctx, size_t *size, uint8_t *response, int32_t timeout)
{
	struct deadline_tcti *d = deadline_cast(ctx);
	TSS2_RC rc = deadline_usable(d, size);
	struct exchange *ex;

	(void)timeout;
	if (rc != TSS2_RC_SUCCESS)
		return rc;
	ex = d->pending;
	if (!ex)
		return TSS2_TCTI_RC_BAD_SEQUENCE;
	if (!ex->joined && !exchange_wait(ex)) {
		deadline_expire(d, ex);
		exchange_abandon(ex);
		return TSS2_TCTI_RC_IO_ERROR;
	}
	rc = ex->rc;
	if (rc == TSS2_RC_SUCCESS && !response) {
		*size = ex->rsp_size;
		return TSS2_RC_SUCCESS;
	}
	if (rc == TSS2_RC_SUCCESS && ex->rsp_size > *size) {
		*size = ex->rsp_size;
		return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
	}
	if (rc == TSS2_RC_SUCCESS) {
		memcpy(response, ex->rsp, ex->rsp_size);
		*size = ex->rsp_size;
	}
	d->pending = NULL;
	exchange_unref(ex);
	return rc;
}

int tcti_deadline_open(const char *conf, unsigned timeout_ms, TSS2_TCTI_CONTEXT **ret, TSS2_RC *ret_rc)
{
	struct deadline_tcti *d;
	struct exchange *ex;

	if (!conf || timeout_ms == 0)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	ex = exchange_new(timeout_ms);
	if (!ex || !(ex->conf = strdup(conf)) || exchange_start(ex) < 0) {
		if (ex)
			exchange_unref(ex);
		free(d);
		return -ENOMEM;
	}
	if (!exchange_wait(ex)) {
		exchange_abandon(ex);
		free(d);
		return -ETIMEDOUT;
	}
	if (ex->rc != TSS2_RC_SUCCESS) {
		*ret_rc = ex->rc;
		exchange_unref(ex);
		free(d);
		return -ENODEV;
	}
	d->common.v1.magic = DEADLINE_MAGIC;
	d->common.v1.version = 2;
	d->common.v1.transmit = deadline_transmit;
	d->common.v1.receive = deadline_receive;
	d->inner = TAKE_PTR(ex->inner);
	d->timeout_ms = timeout_ms;
	exchange_unref(ex);
	*ret = (TSS2_TCTI_CONTEXT *)d;
	return 0;
}

void tcti_deadline_free(TSS2_TCTI_CONTEXT *ctx)
{
	struct deadline_tcti *d = deadline_cast(ctx);

	if (!d)
		return;
	/* Sent but never received (ESAPI gave up in between): it still gets no more than its deadline. */
	if (d->pending && (d->pending->joined || exchange_wait(d->pending)))
		exchange_unref(d->pending);
	else if (d->pending) {
		struct exchange *ex = d->pending;

		deadline_expire(d, ex);
		exchange_abandon(ex);
	}
	if (d->inner)
		Tss2_TctiLdr_Finalize(&d->inner);
	d->common.v1.magic = 0;
	free(d);
}

bool tcti_deadline_expired(TSS2_TCTI_CONTEXT *ctx, uint32_t *ret_cc, unsigned *ret_ms)
{
	struct deadline_tcti *d = deadline_cast(ctx);

	if (!d || !d->expired)
		return false;
	if (ret_cc)
		*ret_cc = d->expired_cc;
	if (ret_ms)
		*ret_ms = d->expired_ms;
	return true;
}
