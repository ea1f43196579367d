#!/usr/bin/python3
"""http_client_bench's baseline: the same GETs with aiohttp.

usage: /usr/bin/python3 http_client_bench_aiohttp.py [--requests N] [--connections N] [--size BYTES] URL

One ClientSession with TCPConnector(limit=--connections); all --requests GETs
gathered at once (the connector's limit keeps --connections of them on the
wire), each body read whole with `await resp.read()`. Every status must be
200 and, with --size, every body exactly BYTES long. Prints the same
key=value line as http_client_bench. Needs Debian's python3-aiohttp, so run
it with /usr/bin/python3.
"""
import argparse
import asyncio
import resource
import sys
import time

import aiohttp


def cpu_seconds():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


async def get(session, url, size):
    async with session.get(url) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise RuntimeError("GET %s answered %d" % (url, resp.status))
        if size >= 0 and len(body) != size:
            raise RuntimeError("GET %s gave %d bytes, not %d" % (url, len(body), size))
        return len(body)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=10000)
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--size", type=int, default=-1)
    p.add_argument("url")
    a = p.parse_args()
    cpu_before = cpu_seconds()
    start = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=a.connections)) as session:
        sizes = await asyncio.gather(*(get(session, a.url, a.size) for _ in range(a.requests)))
    seconds = time.monotonic() - start
    cpu = cpu_seconds() - cpu_before
    total = sum(sizes)
    print("requests=%d seconds=%.3f requests_per_s=%.0f mb_per_s=%.1f cpu_us_per_request=%.1f bytes=%d" % (
        a.requests, seconds, a.requests / seconds, total / 1e6 / seconds, cpu * 1e6 / a.requests, total))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001 - one line naming what failed, as the C++ programs do
        sys.exit("http_client_bench_aiohttp.py: %s" % e)
