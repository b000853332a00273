/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LD_PRELOAD fault for server-http.bats: SSL_new fails (NULL, as when OpenSSL is out of memory)
 * while the file that $SSL_NEW_FAULT names exists, so a test can turn it on and off under a
 * running server.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>
#include <openssl/ssl.h>

SSL *SSL_new(SSL_CTX *ctx)
{
	static SSL *(*real)(SSL_CTX *);
	const char *f = getenv("SSL_NEW_FAULT");

	if (f && access(f, F_OK) == 0)
		return NULL;
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "SSL_new");
	return real ? real(ctx) : NULL;
}
