#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Stops a swtpm (SIGSTOP) the moment a given TPM command reaches it, for
tests/bats/tpm-deadline.bats: a TPM that hangs in the middle of a run, at a chosen command.

Listens on 127.0.0.1:PORT (commands) and PORT+1 (control) and relays both to the swtpm at
SWTPM_PORT and SWTPM_PORT+1. The first command whose code is CC (hex, e.g. 15e for Unseal),
the NTH such one (default 1), makes it SIGSTOP the swtpm (process SWTPM_PID) before passing
the command on: the swtpm never answers until someone sends it SIGCONT. Each command code
seen is appended to the file LOG, one per line, as it passes. Prints PORT once listening;
relays until killed.

usage: tpm-stall.py PORT SWTPM_PORT SWTPM_PID CC LOG [NTH]
"""
import os
import signal
import socket
import sys
import threading

port, swtpm_port, swtpm_pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
stall_cc, log = int(sys.argv[4], 16), sys.argv[5]
nth = int(sys.argv[6]) if len(sys.argv) > 6 else 1
lock = threading.Lock()
seen = 0


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def relay(client, target, commands):
    global seen
    upstream = socket.create_connection(("127.0.0.1", target))
    if commands:
        # TPM command header: tag(2) size(4) commandCode(4), big-endian.
        header = recv_exact(client, 10)
        if header is None:
            client.close()
            upstream.close()
            return
        # swtpm reads a command with one read(): pass it on in one piece, as a TCTI writes it.
        body = recv_exact(client, max(int.from_bytes(header[2:6], "big") - 10, 0))
        if body is None:
            client.close()
            upstream.close()
            return
        cc = int.from_bytes(header[6:10], "big")
        with lock:
            with open(log, "a") as f:
                f.write("%x\n" % cc)
            if cc == stall_cc:
                seen += 1
                if seen == nth:
                    os.kill(swtpm_pid, signal.SIGSTOP)
        upstream.sendall(header + body)
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
    pump(client, upstream)


def serve(listener, target, commands):
    while True:
        client, _ = listener.accept()
        threading.Thread(target=relay, args=(client, target, commands), daemon=True).start()


listeners = []
for offset in (0, 1):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port + offset))
    s.listen(16)
    listeners.append(s)
threading.Thread(target=serve, args=(listeners[1], swtpm_port + 1, False), daemon=True).start()
print(port, flush=True)
serve(listeners[0], swtpm_port, True)
