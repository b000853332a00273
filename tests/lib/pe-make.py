#!/usr/bin/env python3
# pe-make.py OUT SEED: writes a small PE32+ EFI application (two sections, data after them)
# whose contents follow from SEED, so that two seeds give two images with distinct plain and
# Authenticode digests. Test data for keystrap predict; osslsigncode is the Authenticode oracle.
import hashlib
import struct
import sys

out, seed = sys.argv[1], sys.argv[2].encode()


def fill(n, tag):
    b = b''
    i = 0
    while len(b) < n:
        b += hashlib.sha256(seed + tag + i.to_bytes(4, 'little')).digest()
        i += 1
    return b[:n]


HEADERS, ALIGN = 0x400, 0x200
text, data, trailer = fill(0x400, b'text'), fill(0x200, b'data'), fill(0x40, b'tail')
pe = 0x80
dos = b'MZ' + b'\0' * (0x3c - 2) + struct.pack('<I', pe)
dos += b'\0' * (pe - len(dos))
coff = b'PE\0\0' + struct.pack('<HHIIIHH', 0x8664, 2, 0, 0, 0, 240, 0x22)
opt = struct.pack('<HBBIIIII', 0x20b, 14, 0, len(text), len(data), 0, 0x1000, 0x1000)
opt += struct.pack('<QIIHHHHHHIIIIHHQQQQII', 0x140000000, 0x1000, ALIGN, 0, 0, 0, 0, 0, 0, 0,
                   0x3000, HEADERS, 0, 10, 0, 0x100000, 0x1000, 0x100000, 0x1000, 0, 16)
opt += b'\0' * (8 * 16)
sections = struct.pack('<8sIIIIIIHHI', b'.text', len(text), 0x1000, len(text), HEADERS, 0, 0, 0, 0, 0x60000020)
sections += struct.pack('<8sIIIIIIHHI', b'.data', len(data), 0x2000, len(data), HEADERS + len(text), 0, 0, 0, 0,
                        0xc0000040)
head = dos + coff + opt + sections
img = head + b'\0' * (HEADERS - len(head)) + text + data + trailer
with open(out, 'wb') as f:
    f.write(img)
