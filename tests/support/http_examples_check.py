#!/usr/bin/env python3
"""Runs one of the HTTP server examples briefly and checks what it serves.

    http_examples_check.py hello   <path of hello_server>
    http_examples_check.py static  <path of static_server>
    http_examples_check.py compute <path of compute_server>

Each server is started on port 0; its first line ("listening on A:P ..." or
"serving D at http://A:P/ ...") gives the port. It is stopped with SIGINT and
must exit 0 after printing its counters. Exit status 0: every check passed.
"""

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


def start(argv):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    m = re.search(r"(\d+\.\d+\.\d+\.\d+):(\d+)", line)
    if not m:
        proc.kill()
        sys.exit("no address in the first line: %r" % line)
    print(line.strip())
    return proc, int(m.group(2))


def stop(proc):
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    print(out.strip())
    assert proc.returncode == 0, "exit status %d" % proc.returncode
    return out


def get(port, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


def check_help(binary, name):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and ("usage: " + name) in out.stderr, out


def hello(binary):
    check_help(binary, "hello_server")
    proc, port = start([binary, "--port", "0", "--threads", "2", "--address", "127.0.0.1"])
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(10):  # one keep-alive connection
            c.request("GET", "/")
            r = c.getresponse()
            assert r.status == 200 and r.read() == b"Hello, world!"
            assert r.getheader("Server") == "coring" and r.getheader("Date")
        c.close()
    finally:
        out = stop(proc)
    assert "served 10 requests on 1 connections" in out, out


def static(binary):
    check_help(binary, "static_server")
    root = tempfile.mkdtemp(prefix="coring-static-example-")
    try:
        with open(os.path.join(root, "tom.jpg"), "wb") as f:
            f.write(bytes(range(256)) * 400)
        proc, port = start([binary, "--dir", root, "--port", "0"])
        try:
            r, body = get(port, "/tom.jpg")
            assert r.status == 200 and body == bytes(range(256)) * 400
            assert r.getheader("Content-Type") == "image/jpeg"
            r, body = get(port, "/tom.jpg", {"Range": "bytes=0-99"})
            assert r.status == 206 and len(body) == 100
            r, _ = get(port, "/tom.jpg", {"If-None-Match": r.getheader("ETag")})
            assert r.status == 304
            r, _ = get(port, "/../etc/passwd")
            assert r.status in (400, 404)
            r, _ = get(port, "/missing.jpg")
            assert r.status == 404
        finally:
            stop(proc)
    finally:
        shutil.rmtree(root)


def compute(binary):
    check_help(binary, "compute_server")
    proc, port = start([binary, "--port", "0", "--workers", "2"])
    try:
        r, body = get(port, "/compute/1000")
        assert r.status == 200 and body == b'{"result":332833500}', body
        r, _ = get(port, "/compute/abc")
        assert r.status == 400
        # Size the long job from a short one, so that it runs for about two
        # seconds in whatever build this is.
        t = time.monotonic()
        get(port, "/compute/20000000")
        per_item = (time.monotonic() - t) / 20000000
        n = int(min(max(2.0 / max(per_item, 1e-12), 20000000), 10**12))
        expected = (n - 1) * n * (2 * n - 1) // 6
        results = []

        def long_job():
            results.append(get(port, "/compute/%d" % n)[1])

        jobs = [threading.Thread(target=long_job) for _ in range(2)]
        for j in jobs:
            j.start()
        time.sleep(0.3)  # both requests have reached the workers
        latencies = []
        for _ in range(5):
            t = time.monotonic()
            r, body = get(port, "/health")
            latencies.append(time.monotonic() - t)
            assert r.status == 200 and body == b'{"status":"ok"}'
        running = sum(j.is_alive() for j in jobs)
        for j in jobs:
            j.join()
        print("n = %d; /health took %s ms with %d computations in flight"
              % (n, ", ".join("%.1f" % (x * 1000) for x in latencies), running))
        assert running == 2, "the computations ended before /health was asked: not a test"
        assert min(latencies) < 0.050, latencies
        assert max(latencies) < 0.500, latencies
        assert results == [('{"result":%d}' % expected).encode()] * 2, results
    finally:
        stop(proc)


if __name__ == "__main__":
    {"hello": hello, "static": static, "compute": compute}[sys.argv[1]](sys.argv[2])
    print("ok")
