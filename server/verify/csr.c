/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "csr.h"

/* SubjectPublicKeyInfo { id-ecPublicKey, prime256v1 }, BIT STRING of 66 bytes, 0 unused bits, 0x04. */
static const uint8_t p256_spki_prefix[] = {
	0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
	0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
};
/* AlgorithmIdentifier { ecdsa-with-SHA256 }, parameters absent as RFC 5758 requires. */
static const uint8_t ecdsa_sha256[] = { 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 };

struct tlv {
	const uint8_t *start, *value;
	size_t size; /* of the value */
};

/* One DER element with this tag at *p, within end; definite minimal lengths only. */
static int tlv_next(const uint8_t **p, const uint8_t *end, uint8_t tag, struct tlv *ret)
{
	const uint8_t *q = *p;
	size_t len;

	if (end - q < 2 || q[0] != tag)
		return -EBADMSG;
	len = q[1];
	q += 2;
	if (len & 0x80) {
		size_t n = len & 0x7f;

		/* 0x80 is BER's indefinite length; more than 3 octets is more than any request. */
		if (n == 0 || n > 3 || (size_t)(end - q) < n || q[0] == 0)
			return -EBADMSG;
		len = 0;
		for (size_t i = 0; i < n; i++)
			len = len << 8 | *q++;
		if (len < 0x80)
			return -EBADMSG; /* DER: the short form was due */
	}
	if ((size_t)(end - q) < len)
		return -EBADMSG;
	ret->start = *p;
	ret->value = q;
	ret->size = len;
	*p = q + len;
	return 0;
}

int csr_parse_p256(const uint8_t *der, size_t size, struct csr *ret)
{
	const uint8_t *p = der, *end = der + size, *q, *info_end;
	struct tlv req, info, version, subject, spki, attrs, alg, sig;

	/* CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature } */
	if (tlv_next(&p, end, 0x30, &req) < 0 || p != end)
		return -EBADMSG;
	p = req.value;
	end = req.value + req.size;
	if (tlv_next(&p, end, 0x30, &info) < 0 || tlv_next(&p, end, 0x30, &alg) < 0 ||
	    tlv_next(&p, end, 0x03, &sig) < 0 || p != end)
		return -EBADMSG;

	/* CertificationRequestInfo ::= SEQUENCE { version INTEGER (0), subject, subjectPKInfo, attributes [0] } */
	q = info.value;
	info_end = info.value + info.size;
	if (tlv_next(&q, info_end, 0x02, &version) < 0 || version.size != 1 || version.value[0] != 0 ||
	    tlv_next(&q, info_end, 0x30, &subject) < 0 || tlv_next(&q, info_end, 0x30, &spki) < 0)
		return -EBADMSG;
	/* The attributes are PKCS#10's, required; some writers leave an empty set out, so absent is taken too. */
	if (q != info_end && (tlv_next(&q, info_end, 0xa0, &attrs) < 0 || q != info_end))
		return -EBADMSG;

	/* BIT STRING: no unused bits, and something to verify. */
	if (sig.size < 2 || sig.value[0] != 0)
		return -EBADMSG;
	if ((size_t)(spki.value + spki.size - spki.start) != sizeof(p256_spki_prefix) + CSR_P256_POINT_SIZE - 1 ||
	    memcmp(spki.start, p256_spki_prefix, sizeof(p256_spki_prefix)) != 0)
		return -EKEYREJECTED;
	if ((size_t)(alg.value + alg.size - alg.start) != sizeof(ecdsa_sha256) ||
	    memcmp(alg.start, ecdsa_sha256, sizeof(ecdsa_sha256)) != 0)
		return -EOPNOTSUPP;

	*ret = (struct csr){
		.info = info.start,
		.info_size = (size_t)(info_end - info.start),
		.spki = spki.start,
		.spki_size = (size_t)(spki.value + spki.size - spki.start),
		.point = spki.start + sizeof(p256_spki_prefix) - 1,
		.sig = sig.value + 1,
		.sig_size = sig.size - 1,
	};
	return 0;
}
