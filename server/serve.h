/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The service: loads config, listens and answers until SIGTERM or SIGINT; returns the exit code. */
int serve_run(const char *config);
