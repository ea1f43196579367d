#!/usr/bin/env python3
"""tls_bench's baseline: the same connections with Python's ssl module.

usage: tls_bench_python.py PORT CA [--connections N] [--concurrency N] [--bulk PATH]
       tls_bench_python.py PORT CA [--connections N] [--concurrency N] --concurrent-only

Each connection: TCP connect + TLS handshake (certificate and host name
checked) + "GET /1" + read to the end + close. First one at a time with the
blocking ssl module: a full handshake each time ("new"), then offering the
previous connection's session ("resumed"). Then with asyncio (the ssl
module's memory BIOs, as coring's streams work), --concurrency tasks making
connections at once, full handshakes ("new_concurrent": asyncio's
open_connection cannot offer a session), alone with --concurrent-only
(run_tls_bench runs it so, in a fresh interpreter, after a warm-up). TCP_NODELAY is set, as on coring's
streams (asyncio sets it itself). For each phase: connections per second and the CPU microseconds
(user + system) this process spent per connection. Prints one line of
key=value pairs like tls_bench.
"""
import asyncio
import resource
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


def cpu_seconds():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def phase(name, n, run):
    start, cpu = time.perf_counter(), cpu_seconds()
    resumed = run()
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return f"{name}_per_s={n / seconds:.0f} {name}_cpu_us={cpu / n * 1e6:.0f} {name}_resumed={resumed} "


async def fetch_async(ctx, port):
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    w.write(b"GET /1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    while await r.read(65536):
        pass
    w.close()
    try:
        await w.wait_closed()
    except (ssl.SSLError, ConnectionError):
        pass


async def concurrent(name, ctx, port, n, concurrency):
    """n connections made by `concurrency` tasks, after 100 more to warm up
    on the same loop; the figures of phase(). (Warmed up with 16 connections
    at once, the figure was 1.5x worse, with 1 or 100 it was not: Python is
    given its best.)"""

    async def run(count):
        left = [count]

        async def worker():
            while left[0] > 0:
                left[0] -= 1
                await fetch_async(ctx, port)

        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return 0

    await run(100)
    start, cpu = time.perf_counter(), cpu_seconds()
    await run(n)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return f"{name}_per_s={n / seconds:.0f} {name}_cpu_us={cpu / n * 1e6:.0f} {name}_resumed=0 "


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("ca")
    p.add_argument("--connections", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--concurrent-only", action="store_true",
                   help="only the asyncio phase (new_concurrent), in this fresh interpreter")
    p.add_argument("--bulk")
    a = p.parse_args()
    if a.concurrent_only:
        # In an interpreter of its own: after thousands of blocking connections
        # the same process makes these slower (its heap, its collector), which
        # would flatter coring.
        ctx = ssl.create_default_context(cafile=a.ca)
        print(asyncio.run(concurrent("new_concurrent", ctx, a.port, a.connections, a.concurrency)), flush=True)
        return
    ctx = ssl.create_default_context(cafile=a.ca)
    buf = bytearray(256 * 1024)
    fetch(ctx, a.port, "/1", buf)

    def new():
        for _ in range(a.connections):
            fetch(ctx, a.port, "/1", buf)
        return 0

    session = [fetch(ctx, a.port, "/1", buf)[1]]

    def resumed():
        count = 0
        for _ in range(a.connections):
            _, session[0], reused = fetch(ctx, a.port, "/1", buf, session[0])
            count += reused
        return count

    line = phase("new", a.connections, new) + phase("resumed", a.connections, resumed)
    session = session[0]
    if a.bulk:
        start = time.perf_counter()
        total, _, _ = fetch(ctx, a.port, a.bulk, buf, session)
        bulk_s = time.perf_counter() - start
        line += f"bulk_mib_per_s={total / (1 << 20) / bulk_s:.0f} bulk_bytes={total}"
    print(line, flush=True)


if __name__ == "__main__":
    main()
