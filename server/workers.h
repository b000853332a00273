/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

/*
 * A pool of threads for the pure CPU work of a request (signature checks, log replay), so the
 * event loop's thread only parses, reads and writes the store, and replies. A job's run() is
 * called on a worker thread and must touch nothing the loop thread writes meanwhile (no store,
 * no libevent, no metrics); its done() is then called on the loop thread, from an event the
 * workers wake through an eventfd, in the order the runs ended. Nothing of libevent is used
 * off the loop's thread, so libevent needs no threading support.
 */
struct worker_job {
	void (*run)(struct worker_job *j);
	void (*done)(struct worker_job *j);
	struct worker_job *next;
	int64_t queued_us; /* mono_us() at submit: how long it has waited for a thread */
};

struct workers;

/* n threads (at least 1), at most queue_max jobs submitted and not yet done. */
int workers_new(struct event_base *base, unsigned n, size_t queue_max, struct workers **ret);
/* -EAGAIN: the queue is full (the caller does the work itself, or refuses it). */
int workers_submit(struct workers *w, struct worker_job *j);
/* How long (µs) the oldest job not yet on a thread has waited: the workers' share of the queue
 * in time, beside the loop's own lag. 0 when none waits, and for NULL. */
int64_t workers_wait_us(const struct workers *w);
/* Waits until every job submitted has run, then calls their done() here, on the loop thread. */
void workers_drain(struct workers *w);
/* Drains, then stops and joins the threads. NULL is fine. */
void workers_free(struct workers *w);
