#!/usr/bin/python3
"""A coring-free HTTP/1.1 peer for the client's tests (tests/net/http_client_test.cpp).

Plain sockets and one thread per connection, so that every odd case can be
scripted byte by byte: close-delimited and chunked bodies with trailers, a
server that closes a kept-alive connection, slow bytes, malformed responses,
a huge body, a zip bomb. It counts connections (accepted, open now, most open
at once), which /stats reports as JSON.

Prints "port N" on stdout once listening on 127.0.0.1 (port 0: the kernel's pick).
"""

import json
import socket
import sys
import threading
import time
import urllib.parse
import zlib

lock = threading.Lock()
stats = {"accepted": 0, "open": 0, "max_open": 0, "requests": 0}

RAW = {
    "bad-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
    "two-content-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "not-http": b"SMTP ready\r\n\r\n",
    "header-without-colon": b"HTTP/1.1 200 OK\r\nBad Header\r\nContent-Length: 0\r\n\r\n",
    "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "cl-and-chunked": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "huge-head": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (100 * 1024) + b"\r\nContent-Length: 0\r\n\r\n",
    "many-headers": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"Content-Length: 0\r\n\r\n",
    "cut-head": b"HTTP/1.1 200 OK\r\nContent-Le",
    "cut-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
    "cut-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    "switching": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
}


def response(status, body=b"", headers=(), reason=None):
    reasons = {200: "OK", 204: "No Content", 301: "Moved Permanently", 302: "Found", 303: "See Other",
               304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect", 404: "Not Found",
               418: "I'm a teapot", 500: "Internal Server Error"}
    head = "HTTP/1.1 %d %s\r\n" % (status, reason or reasons.get(status, "Status"))
    names = [n.lower() for n, _ in headers]
    for n, v in headers:
        head += "%s: %s\r\n" % (n, v)
    if "content-length" not in names and "transfer-encoding" not in names and status not in (204, 304):
        head += "Content-Length: %d\r\n" % len(body)
    return head.encode() + b"\r\n" + body


def read_request(f):
    line = f.readline(65536)
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    fields = []
    while True:
        h = f.readline(65536)
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("latin-1").partition(":")
        fields.append((name.strip(), value.strip()))
    lower = {n.lower(): v for n, v in fields}
    body = b""
    if "content-length" in lower:
        body = f.read(int(lower["content-length"]))
    elif lower.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b""):
                    pass
                break
            body += f.read(size)
            f.readline()
    return method, target, fields, body


def handle(conn):
    f = conn.makefile("rb")
    while True:
        req = read_request(f)
        if req is None:
            return
        with lock:
            stats["requests"] += 1
        method, target, fields, body = req
        parts = urllib.parse.urlsplit(target)
        path = parts.path
        query = dict(urllib.parse.parse_qsl(parts.query))
        head_only = method == "HEAD"

        def send(data):
            if head_only:
                data = data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
            conn.sendall(data)

        if path == "/stats":
            with lock:
                send(response(200, json.dumps(stats).encode(), [("Content-Type", "application/json")]))
        elif path == "/echo":
            doc = {"method": method, "path": path, "query": parts.query,
                   "headers": {n.lower(): v for n, v in fields}, "body": body.decode("latin-1")}
            send(response(200, json.dumps(doc).encode(), [("Content-Type", "application/json")]))
        elif path == "/hold":
            time.sleep(int(query.get("ms", "50")) / 1000)
            send(response(200, b"held"))
        elif path == "/close-delimited":
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"until the close " * 1000)
            return
        elif path == "/http10":
            conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nan HTTP/1.0 body")
            return
        elif path == "/chunked-trailers":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
                         b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc123\r\n\r\n")
        elif path == "/keepalive-then-close":
            conn.sendall(response(200, b"bye"))
            conn.shutdown(socket.SHUT_RDWR)
            return
        elif path == "/silent":
            time.sleep(float(query.get("s", "10")))
            return
        elif path == "/drip":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):
                time.sleep(0.01)
                conn.sendall(b"x")
        elif path == "/stall-body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome")
            time.sleep(10)
            return
        elif path == "/huge":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10737418240\r\n\r\n")
            zeros = bytes(65536)
            try:
                while True:
                    conn.sendall(zeros)
            except OSError:
                return
        elif path == "/huge-chunked":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            piece = b"10000\r\n" + bytes(65536) + b"\r\n"
            try:
                while True:
                    conn.sendall(piece)
            except OSError:
                return
        elif path == "/bomb":
            z = zlib.compressobj(9, zlib.DEFLATED, 31)
            data = z.compress(bytes(16 << 20)) + z.flush()
            send(response(200, data, [("Content-Encoding", "gzip")]))
        elif path == "/deflate":
            send(response(200, zlib.compress(b"deflated " * 1000), [("Content-Encoding", "deflate")]))
        elif path == "/raw-deflate":
            z = zlib.compressobj(6, zlib.DEFLATED, -15)
            send(response(200, z.compress(b"raw deflate " * 1000) + z.flush(), [("Content-Encoding", "deflate")]))
        elif path == "/bad-gzip":
            send(response(200, b"\x1f\x8b\x08\x00garbage that is not gzip", [("Content-Encoding", "gzip")]))
        elif path.startswith("/raw/"):
            conn.sendall(RAW[path[5:]])
            conn.shutdown(socket.SHUT_WR)
            time.sleep(0.05)
            return
        elif path == "/redirect":
            code = int(query.get("code", "302"))
            send(response(code, b"moved", [("Location", query["to"])]))
        elif path == "/loop":
            send(response(302, b"", [("Location", "/loop")]))
        elif path.startswith("/status/"):
            send(response(int(path[8:]), b"status body"))
        elif path == "/no-content":
            send(response(204))
        elif path == "/not-modified":
            send(response(304, headers=[("ETag", '"x"')]))
        elif path == "/json":
            send(response(200, b'{"name": "coring", "list": [1, 2, 3]}', [("Content-Type", "application/json")]))
        elif path == "/not-json":
            send(response(200, b"{not json", [("Content-Type", "application/json")]))
        elif path == "/multi":
            send(response(200, b"ok", [("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("X-Case", "Value")]))
        else:
            send(response(404, b"no such path"))


def serve(conn):
    with lock:
        stats["accepted"] += 1
        stats["open"] += 1
        stats["max_open"] = max(stats["max_open"], stats["open"])
    try:
        handle(conn)
    except (OSError, ValueError):
        pass
    finally:
        with lock:
            stats["open"] -= 1
        conn.close()


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    print("port", listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
