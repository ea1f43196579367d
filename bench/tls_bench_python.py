#!/usr/bin/env python3
"""tls_bench's baseline: the same connections with Python's ssl module.

usage: tls_bench_python.py PORT CA [--connections N] [--bulk PATH]

Each connection: TCP connect + TLS handshake (certificate and host name
checked) + "GET /1" + read to the end + close, one at a time; first with a
full handshake each time, then offering the previous connection's session.
TCP_NODELAY is set, as on coring's streams. Prints one line of key=value
pairs like tls_bench.
"""
import argparse
import socket
import ssl
import time


def fetch(ctx, port, path, buf, session=None):
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as coring's streams (else Nagle adds 40 ms)
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            total = 0
            while True:
                n = s.recv_into(buf)
                if not n:
                    break
                total += n
            return total, s.session, s.session_reused


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("ca")
    p.add_argument("--connections", type=int, default=500)
    p.add_argument("--bulk")
    a = p.parse_args()
    ctx = ssl.create_default_context(cafile=a.ca)
    buf = bytearray(256 * 1024)
    fetch(ctx, a.port, "/1", buf)

    start = time.perf_counter()
    for _ in range(a.connections):
        fetch(ctx, a.port, "/1", buf)
    new_s = time.perf_counter() - start

    _, session, _ = fetch(ctx, a.port, "/1", buf)
    resumed = 0
    start = time.perf_counter()
    for _ in range(a.connections):
        _, session, reused = fetch(ctx, a.port, "/1", buf, session)
        resumed += reused
    resumed_s = time.perf_counter() - start

    line = (f"handshakes_new_per_s={a.connections / new_s:.0f} "
            f"handshakes_resumed_per_s={a.connections / resumed_s:.0f} resumed={resumed}")
    if a.bulk:
        start = time.perf_counter()
        total, _, _ = fetch(ctx, a.port, a.bulk, buf, session)
        bulk_s = time.perf_counter() - start
        line += f" bulk_mib_per_s={total / (1 << 20) / bulk_s:.0f} bulk_bytes={total}"
    print(line, flush=True)


if __name__ == "__main__":
    main()
