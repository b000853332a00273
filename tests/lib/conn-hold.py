#!/usr/bin/env python3
# A peer that takes connections and does nothing with them (issue 10, item 16), for
# server-http.bats.
#
#   conn-hold.py hold PORT SOURCES N SECONDS STATUS [refill]
#       opens N TCP connections to 127.0.0.1:PORT, spread round-robin over the source addresses
#       SOURCES ("127.0.0.2,127.0.0.3"), sends nothing, and holds them SECONDS; STATUS gets
#       "opened=A closed=C" (C: the server closed them) each 0.2 s and at the end. With
#       refill, each one the server closes is opened again at once (a persistent attacker).
#   conn-hold.py idle PORT CA N TLS STATUS
#       opens N connections to 127.0.0.1:PORT from 127.0.0.1 (its open-file limit raised for
#       them), the first TLS of them through a whole TLS handshake (verified against CA), and
#       holds them all, sending nothing, until killed; STATUS gets "opened=N tls=T" once all are.
#   conn-hold.py trickle PORT CA SECONDS-PER-BYTE
#       a TLS client that sends a request's headers one byte at a time; prints how long the
#       server let it go on ("closed after S s, B bytes sent") or "answered after S s".
import os
import select
import socket
import ssl
import sys
import time


def connect(port, source):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return None
    s.bind((source, 0))
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    s.setblocking(False)
    return s


def hold(port, sources, n, seconds, status, refill=False):
    live, opened, closed = {}, 0, 0
    src = sources.split(",")
    for i in range(n):
        s = connect(port, src[i % len(src)])
        if s:
            live[s] = src[i % len(src)]
            opened += 1
    end = time.monotonic() + seconds
    while True:
        r, _, _ = select.select(list(live), [], [], 0.2)
        for s in r:
            try:
                if s.recv(4096) != b"":
                    continue
            except OSError:
                pass
            closed += 1
            source = live.pop(s)
            s.close()
            if refill:
                t = connect(port, source)
                if t:
                    live[t] = source
                    opened += 1
        # Whole or not at all: the test reads it meanwhile.
        with open(status + ".new", "w") as f:
            f.write("opened=%d closed=%d\n" % (opened, closed))
        os.replace(status + ".new", status)
        if time.monotonic() >= end:
            break
    for s in live:
        s.close()


def idle(port, ca, n, n_tls, status):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n + 64, max(hard, n + 64)))
    ctx = ssl.create_default_context(cafile=ca)
    held, tls = [], 0
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        if i < n_tls:
            s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
            tls += 1
        held.append(s)
    with open(status + ".new", "w") as f:
        f.write("opened=%d tls=%d\n" % (len(held), tls))
    os.replace(status + ".new", status)
    while True:
        time.sleep(60)


def trickle(port, ca, delay):
    ctx = ssl.create_default_context(cafile=ca)
    start = time.monotonic()
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    s.settimeout(delay)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
    sent = 0
    for b in request:
        try:
            s.sendall(bytes([b]))
            sent += 1
            data = s.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            data = b""
        if data == b"":
            print("closed after %.1f s, %d bytes sent" % (time.monotonic() - start, sent))
            return
        if data.startswith(b"HTTP/1.1 "):
            print("answered after %.1f s" % (time.monotonic() - start))
            return
    try:
        s.settimeout(5)
        data = s.recv(4096)
    except OSError:
        data = b""
    if data.startswith(b"HTTP/1.1 "):
        print("answered after %.1f s" % (time.monotonic() - start))
    else:
        print("closed after %.1f s, %d bytes sent" % (time.monotonic() - start, sent))


if __name__ == "__main__":
    if sys.argv[1] == "hold":
        hold(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6],
             sys.argv[7:] == ["refill"])
    elif sys.argv[1] == "idle":
        idle(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    elif sys.argv[1] == "trickle":
        trickle(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
    else:
        sys.exit("usage: conn-hold.py hold|idle|trickle ...")
