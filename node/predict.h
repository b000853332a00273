/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eventlog.h"
#include "pcr.h"
#include "replay.h"

/*
 * Predicted PCRs: this boot's firmware event log replayed again with some measurements
 * swapped for the ones the next boot will make. Events are found by their digests, never by
 * assuming a boot chain: whatever measured the old kernel, EFI binary or initrd (firmware in
 * PCR 4 by its Authenticode digest, GRUB in PCR 9 by its plain digest, the kernel's initrd
 * event), the new one takes its place there. Pure code on buffers the caller owns.
 */

/* "matched no event" reasons and the like fit. */
#define PREDICT_ERROR_MAX 320

/* One side of a --replace: a file (its plain digest, and its Authenticode digest if it is a
 * PE image) in every bank, or a digest given in hex (every bank of that size). */
struct predict_image {
	const char *name; /* as the operator gave it, for messages */
	bool hex;
	uint32_t plain, authenticode; /* banks (by index) whose digest of that kind is known */
	uint8_t plain_digest[PCR_BANKS][PCR_DIGEST_MAX];
	uint8_t authenticode_digest[PCR_BANKS][PCR_DIGEST_MAX];
};

struct predict_replace {
	struct predict_image old, new;
	/* Filled by predict_run: */
	size_t n_matched;  /* events */
	size_t first_event; /* the first one's number, when n_matched > 0 */
	uint32_t pcrs;      /* PCRs of the events matched */
};

/* How a boot loader measured the kernel command line (the forms predict knows). */
enum predict_cmdline_form {
	PREDICT_CMDLINE_UTF16,        /* systemd-boot (PCR 8, 12) and systemd-stub (PCR 12): EV_IPL, UTF-16 with NUL */
	PREDICT_CMDLINE_GRUB_KERNEL,  /* GRUB: PCR 8 EV_IPL "kernel_cmdline: PATH ARGS" */
	PREDICT_CMDLINE_GRUB_COMMAND, /* GRUB: PCR 8 EV_IPL "grub_cmd: linux PATH ARGS" */
	/* The Linux EFI stub's tagged event 0x8F3B22ED "LOADED_IMAGE::LoadOptions" (PCR 9) holds no
	 * text: its form is the one in which the current command line reproduces its digest. */
	PREDICT_CMDLINE_STUB_UTF16,      /* UTF-16LE with its NUL (OVMF direct boot) */
	PREDICT_CMDLINE_STUB_UTF16_BARE, /* UTF-16LE without it */
	PREDICT_CMDLINE_STUB_UTF8,       /* UTF-8 with its NUL */
	PREDICT_CMDLINE_STUB_UTF8_BARE,  /* UTF-8 without it */
	_PREDICT_CMDLINE_FORMS,
};

struct predict_cmdline {
	const char *string; /* NULL: the command line stays */
	/* This boot's command line as /proc/cmdline shows it (no newline): what the Linux EFI
	 * stub's event is matched against. NULL: unknown, that event cannot be recomputed. */
	const char *current;
	/* Filled by predict_run: */
	size_t n_matched;
	uint32_t pcrs;
	uint32_t forms; /* 1 << enum predict_cmdline_form */
	/* An event that measured the command line in a form predict cannot recompute. */
	bool unsupported;
	size_t unsupported_event;
	/* That event is the Linux EFI stub's and current reproduces its digest in more than one
	 * form (an empty command line, with and without UTF-16): which one is not known. */
	bool ambiguous;
};

/* A file's digests (authenticode only if it parses as a PE image) in every bank of banks. */
int predict_image_from_file(struct predict_image *img, const char *name, const uint8_t *data, size_t size,
			    uint32_t banks, char err[static PREDICT_ERROR_MAX]);
/* A digest in hex: -EINVAL (err says so) when its length is no bank's. */
int predict_image_from_hex(struct predict_image *img, const char *hex, char err[static PREDICT_ERROR_MAX]);

const char *predict_cmdline_form_name(enum predict_cmdline_form f);

/*
 * Replays log into ret with every event whose digest (in any bank) is a replace[i].old digest
 * measured again as replace[i].new, and with the command-line events measuring
 * cmdline->string. A bank whose new digest cannot be known (a hex digest of another bank)
 * makes that PCR unknown in that bank. -EBADMSG with err for a new image that cannot stand in
 * for the old one (OLD matched as a PE image, NEW is not one), -ENOMEM.
 */
int predict_run(const struct eventlog *log, struct predict_replace *replace, size_t n_replace,
		struct predict_cmdline *cmdline, struct pcr_replay *ret, char err[static PREDICT_ERROR_MAX]);
