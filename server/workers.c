/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "deadline.h"
#include "log.h"
#include "workers.h"

struct workers {
	pthread_mutex_t lock;
	pthread_cond_t work, idle; /* a job queued or stop set; a run ended */
	struct worker_job *todo, **todo_tail, *done, **done_tail;
	size_t in_flight, queue_max; /* submitted and not yet handed to done() */
	size_t running;              /* queued or running: what drain waits for */
	bool stop;
	pthread_t *threads;
	unsigned n_threads;
	int efd;
	struct event *ev;
};

static void *worker_main(void *arg)
{
	struct workers *w = arg;
	struct worker_job *j;
	bool wake;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->todo && !w->stop)
			pthread_cond_wait(&w->work, &w->lock);
		if (!w->todo)
			break;
		j = w->todo;
		w->todo = j->next;
		if (!w->todo)
			w->todo_tail = &w->todo;
		pthread_mutex_unlock(&w->lock);
		j->run(j);
		pthread_mutex_lock(&w->lock);
		j->next = NULL;
		wake = !w->done;
		*w->done_tail = j;
		w->done_tail = &j->next;
		if (--w->running == 0)
			pthread_cond_broadcast(&w->idle);
		/* One wake-up for a list the loop has not collected yet. */
		if (wake) {
			uint64_t one = 1;

			(void)!write(w->efd, &one, sizeof(one));
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* On the loop thread: done() of every job whose run ended, in that order. */
static void collect(struct workers *w)
{
	struct worker_job *j, *next;
	uint64_t v;

	(void)!read(w->efd, &v, sizeof(v));
	pthread_mutex_lock(&w->lock);
	j = w->done;
	w->done = NULL;
	w->done_tail = &w->done;
	pthread_mutex_unlock(&w->lock);
	for (; j; j = next) {
		next = j->next;
		pthread_mutex_lock(&w->lock);
		w->in_flight--;
		pthread_mutex_unlock(&w->lock);
		j->done(j);
	}
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	collect(arg);
}

int workers_new(struct event_base *base, unsigned n, size_t queue_max, struct workers **ret)
{
	struct workers *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->idle, NULL);
	w->todo_tail = &w->todo;
	w->done_tail = &w->done;
	w->queue_max = queue_max ? queue_max : 1;
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	w->threads = calloc(n ? n : 1, sizeof(*w->threads));
	if (w->efd < 0 || !w->threads || !(w->ev = event_new(base, w->efd, EV_READ | EV_PERSIST, on_done, w)) ||
	    event_add(w->ev, NULL) < 0) {
		r = w->efd < 0 ? -errno : -ENOMEM;
		goto fail;
	}
	for (w->n_threads = 0; w->n_threads < (n ? n : 1); w->n_threads++)
		if ((r = -pthread_create(&w->threads[w->n_threads], NULL, worker_main, w)) < 0)
			goto fail;
	*ret = w;
	return 0;
fail:
	workers_free(w);
	return r;
}

int workers_submit(struct workers *w, struct worker_job *j)
{
	pthread_mutex_lock(&w->lock);
	if (w->in_flight >= w->queue_max) {
		pthread_mutex_unlock(&w->lock);
		return -EAGAIN;
	}
	j->next = NULL;
	j->queued_us = mono_us();
	*w->todo_tail = j;
	w->todo_tail = &j->next;
	w->in_flight++;
	w->running++;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

int64_t workers_wait_us(const struct workers *w)
{
	int64_t since = 0, now;

	if (!w)
		return 0;
	pthread_mutex_lock((pthread_mutex_t *)&w->lock);
	if (w->todo)
		since = w->todo->queued_us;
	pthread_mutex_unlock((pthread_mutex_t *)&w->lock);
	now = mono_us();
	return since > 0 && now > since ? now - since : 0;
}

void workers_drain(struct workers *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	while (w->running > 0)
		pthread_cond_wait(&w->idle, &w->lock);
	pthread_mutex_unlock(&w->lock);
	collect(w);
}

void workers_free(struct workers *w)
{
	if (!w)
		return;
	if (w->n_threads > 0)
		workers_drain(w);
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->work);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->n_threads; i++)
		pthread_join(w->threads[i], NULL);
	if (w->ev)
		event_free(w->ev);
	if (w->efd >= 0)
		close(w->efd);
	free(w->threads);
	pthread_cond_destroy(&w->work);
	pthread_cond_destroy(&w->idle);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
