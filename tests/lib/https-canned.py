#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A TLS server on 127.0.0.1 that answers one way per MODE, for tests/bats/https.bats: what a
good keystrap-server answer looks like, and each way a server (or whoever took its place) can
misbehave. Prints its port on stdout once listening; serves until killed.

usage: https-canned.py CERT KEY MODE [--tls12]
"""
import socket
import ssl
import sys
import threading
import time

cert, key, mode = sys.argv[1:4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
if "--tls12" in sys.argv:
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2

DATE = "Date: Wed, 02 Dec 2026 10:00:00 GMT\r\n"


def read_request(c):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(body) < n:
        chunk = c.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def answer(c):
    req = read_request(c)
    if mode == "stall":
        time.sleep(30)
        return
    if mode == "ok":
        body = b'{"ok":true}'
        c.sendall(b"HTTP/1.1 200 OK\r\n" + DATE.encode() + b"Content-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
    elif mode == "echo":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(req) + req)
    elif mode == "busy":
        body = b'{"error":"busy"}'
        c.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n" + DATE.encode() +
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
    elif mode == "redirect":
        c.sendall(b"HTTP/1.1 302 Found\r\nLocation: https://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n")
    elif mode == "chunked":
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    elif mode == "big":
        body = b"x" * (1 << 20)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    elif mode == "short":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"cut\":")
        c.shutdown(socket.SHUT_RDWR)
    elif mode == "no-length":
        c.sendall(b"HTTP/1.1 200 OK\r\n\r\n{\"framed\":\"by close_notify\"}")
        c.unwrap()
    elif mode == "garbage":
        c.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    elif mode == "trickle":
        for b in b"HTTP/1.1 200 OK\r\n":
            c.sendall(bytes([b]))
            time.sleep(0.5)


def serve(c):
    try:
        answer(c)
    except (OSError, ssl.SSLError):
        pass
    finally:
        try:
            c.close()
        except OSError:
            pass


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
while True:
    raw, _ = s.accept()
    try:
        raw.settimeout(40)
        c = ctx.wrap_socket(raw, server_side=True)
    except (OSError, ssl.SSLError):
        raw.close()
        continue
    threading.Thread(target=serve, args=(c,), daemon=True).start()
