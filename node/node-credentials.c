/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "node-credentials.h"
#include "payload.h"

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
	free(c->checkpoint);
	node_secrets_free(c->secrets, c->n_secrets);
	secmem_wipe(c, sizeof(*c));
	free(c);
}
