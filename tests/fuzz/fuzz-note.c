/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a witnessing node reads from a server it does not yet trust: a signed note and the
 * checkpoint in it (opened with the Go note package's vector key), and an audit record's
 * leaf bytes. Besides "no crash": an opened note's text is a prefix of the input ending in a
 * newline, a parsed leaf's fields lie inside it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "audit-leaf.h"
#include "note.h"

static void must(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char vkey[] = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
	const char *text = (const char *)data;
	struct note_verifier v;
	struct checkpoint c;
	struct audit_leaf l;
	char why[256];
	size_t n = 0;
	int r;

	must(note_verifier_parse(vkey, &v, why, sizeof(why)) == 0);
	r = note_open(text, size, &v, &n, why, sizeof(why));
	if (r == 0)
		must(n > 0 && n < size && text[n - 1] == '\n');
	else
		must(r == -EBADMSG || r == -ENOKEY || r == -EKEYREJECTED);
	r = checkpoint_parse(text, size, &c, why, sizeof(why));
	must(r == 0 || r == -EBADMSG);
	(void)checkpoint_open(text, size, &v, &c, why, sizeof(why));
	if (audit_leaf_parse(data, size, &l) == 0) {
		const char *end = text + size;

		must(l.peer >= text && l.peer + l.peer_len <= end && l.reasons + l.reasons_len <= end);
	}
	return 0;
}
