/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Reads a whole (non-secret) file of at most max bytes, NUL-terminated after the data.
 * Reads to EOF rather than trusting st_size: securityfs and procfs files report 0.
 * -EFBIG when the file is larger than max.
 */
int read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_size);

/* Writes all n bytes to fd, retrying on EINTR and short writes; 0 or -errno. */
int write_full(int fd, const void *p, size_t n);

/* Reads from fd until EOF or cap bytes, retrying on EINTR; returns the count or -errno. */
ssize_t read_full(int fd, uint8_t *buf, size_t cap);

/*
 * For a file that holds secrets (a private key, a database): 0 when group and others have no
 * access to it. -EACCES when they do, -errno when it cannot be examined; either way why names
 * the file and (for -EACCES) its mode, as one line.
 */
int file_check_private(const char *path, char *why, size_t size);

/* fsync of the directory holding path: a file created or renamed there survives a crash. */
int fsync_parent_dir(const char *path);

/*
 * A file made whole before anyone can take it for the real one: path is created (O_EXCL,
 * never followed through a symlink, mode whatever the umask), written and fsynced; on any
 * failure it is removed again. With file_replace, "write beside and rename".
 */
int write_file_new(const char *path, const void *p, size_t n, mode_t mode);
/*
 * path given the owner and group of like, when run as root: a file an administrator replaces
 * stays readable by the service that read the old one. A like that does not exist: nothing.
 */
int file_owner_like(const char *path, const char *like);
/* rename(from, to) and the directory synced: to is the old file or the new one after a crash. */
int file_replace(const char *from, const char *to);
