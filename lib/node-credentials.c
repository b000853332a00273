/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "node-credentials.h"

static void free_wiped(char *s)
{
	if (s)
		secmem_wipe(s, strlen(s));
	free(s);
}

void node_credentials_free(struct node_credentials *c)
{
	if (!c)
		return;
	EVP_PKEY_free(c->key); /* in OpenSSL's secure heap: wiped there */
	free_wiped(c->certificate);
	free_wiped(c->chain);
	for (size_t i = 0; i < c->n_secrets; i++)
		secbuf_free(c->secrets[i].value);
	free(c->secrets);
	secmem_wipe(c, sizeof(*c));
	free(c);
}
