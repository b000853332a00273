#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A TLS server on 127.0.0.1 that answers one way per MODE, for tests/bats/https.bats: what a
good keystrap-server answer looks like, and each way a server (or whoever took its place) can
misbehave. Prints its port on stdout once listening; serves until killed.

In front of a real keystrap-server (--upstream https://127.0.0.1:PORT, --ca its CA), for
attest.bats: "forward" passes every request on; "busy-finish" passes the first finish on (so the
server spends its nonce) but answers it 503 with --retry-after; "refuse-finish" answers every
finish 403 without passing it on. "busy" answers everything 503 with --retry-after (default 7).
"revoked" answers everything 403 "node is revoked", as a server does for a revoked node (for
revocation.bats: whoever answers so without the server's TLS key must change nothing).
--log FILE appends the path of each request received, one a line.

usage: https-canned.py CERT KEY MODE [--tls12] [--retry-after S] [--log FILE] [--upstream URL --ca FILE]
"""
import http.client
import socket
import ssl
import sys
import threading
import time
import urllib.parse

cert, key, mode = sys.argv[1:4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
if "--tls12" in sys.argv:
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2


def option(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


RETRY_AFTER = option("--retry-after", "7")
LOG = option("--log")
UPSTREAM = option("--upstream")
UPSTREAM_CA = option("--ca")
lock = threading.Lock()
finishes = 0

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


def forward(req):
    """The request passed on to --upstream; its answer as bytes, framed by Content-Length."""
    head, _, body = req.partition(b"\r\n\r\n")
    path = head.split(b" ")[1].decode()
    u = urllib.parse.urlsplit(UPSTREAM)
    up = http.client.HTTPSConnection(u.hostname, u.port, context=ssl.create_default_context(cafile=UPSTREAM_CA),
                                     timeout=30)
    up.request("POST", path, body, {"Content-Type": "application/json"})
    r = up.getresponse()
    data = r.read()
    out = b"HTTP/1.1 %d %s\r\n" % (r.status, r.reason.encode())
    for k, v in r.getheaders():
        if k.lower() not in ("content-length", "connection", "transfer-encoding"):
            out += b"%s: %s\r\n" % (k.encode(), v.encode())
    up.close()
    return out + b"Content-Length: %d\r\n\r\n" % len(data) + data


def answer(c):
    global finishes
    req = read_request(c)
    path = req.split(b" ")[1].decode() if req.count(b" ") else ""
    if LOG:
        with lock, open(LOG, "a") as f:
            f.write(path + "\n")
    if mode in ("forward", "busy-finish", "refuse-finish"):
        finish = path == "/v1/attest/finish"
        with lock:
            first = finish and finishes == 0
            finishes += finish
        if mode == "refuse-finish" and finish:
            body = b'{"error":"refused by the canned server"}'
            c.sendall(b"HTTP/1.1 403 Forbidden\r\n" + DATE.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            return
        reply = forward(req)
        if mode == "busy-finish" and first:
            body = b'{"error":"busy"}'
            reply = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\n" % RETRY_AFTER.encode() +
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        c.sendall(reply)
        return
    if mode == "stall":
        time.sleep(30)
        return
    if mode == "ok":
        body = b'{"ok":true}'
        c.sendall(b"HTTP/1.1 200 OK\r\n" + DATE.encode() + b"Content-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
    elif mode == "echo":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(req) + req)
    elif mode == "revoked":
        body = b'{"error":"node is revoked"}'
        c.sendall(b"HTTP/1.1 403 Forbidden\r\n" + DATE.encode() + b"Content-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
    elif mode == "busy":
        body = b'{"error":"busy"}'
        c.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\n" % RETRY_AFTER.encode() + DATE.encode() +
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
