#!/usr/bin/env python3
"""Runs the downloader examples with --quick and checks what they did.

    downloaders_check.py download_sites <path of download_sites>
    downloaders_check.py flags <path of flags>
    downloaders_check.py cats <path of cats> <path of static_server>

Each run must end with the exit status expected (0, or 1 for an HTTP error)
and print the lines expected; flags must leave one file per country holding
exactly the image its server serves (rebuilt here from the same generator),
cats must report the sizes of its generated images and remove its temporary
directory. Everything stays on 127.0.0.1. Exit status 0: every check passed.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

COUNTRIES = ["yemen", "zambia", "vietnam", "venezuela", "ukraine"]
JPEG_START = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
MASK = (1 << 64) - 1


def generated_image(seed, base_size, spread):
    """The examples' generated images: JPEG start, xorshift64 bytes, JPEG end."""
    x = seed

    def next_value():
        nonlocal x
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
        return x

    image = bytearray(JPEG_START)
    size = base_size + next_value() % spread
    while len(image) < size:
        image.append(next_value() & 0xFF)
    return bytes(image) + b"\xff\xd9"


def flag_image(cc):
    """What flags' local server serves for `cc`: seeded by FNV-1a of the name."""
    x = 1469598103934665603
    for c in cc.encode():
        x = ((x ^ c) * 1099511628211) & MASK
    return generated_image(x, 2048, 4096)


def cat_image(cat):
    """What cats writes as <cat>.jpg."""
    return generated_image((0x9E3779B97F4A7C15 * cat) & MASK, 20 * 1024, 40 * 1024)


def run(argv, status=0):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    print("$ " + " ".join(argv))
    print(out.stdout + out.stderr)
    assert out.returncode == status, "exit status %d, expected %d" % (out.returncode, status)
    return out


def check_help(binary, name):
    out = run([binary, "--help"])
    assert ("usage: " + name) in out.stdout, out.stdout


def download_sites(binary):
    check_help(binary, "download_sites")
    assert "--processes N" in run([binary, "--help"]).stdout
    out = run([binary, "--quick"]).stdout
    for mode in ("sync", "threads", "processes", "async"):
        # 20 downloads of the local server's 10 KiB page in every mode.
        assert re.search(r"^%s +Downloaded 20 sites in [0-9.]+ seconds \(204800 bytes\)$" % mode, out, re.M), mode
        assert re.search(r"^%s +[0-9.]+ +[0-9.]+x$" % mode, out, re.M), "no table row for " + mode
    out = run([binary, "--quick", "--mode", "processes", "--processes", "3"]).stdout
    assert re.search(r"^processes Downloaded 20 sites in", out, re.M)
    assert "vs sync" not in out  # one mode: no table


def flags(binary):
    check_help(binary, "flags")
    out_dir = tempfile.mkdtemp(prefix="coring-flags-check-")
    try:
        out = run([binary, "--quick", "--out", os.path.join(out_dir, "new")]).stdout
        saved = os.path.join(out_dir, "new")
        assert sorted(os.listdir(saved)) == sorted(cc + ".jpg" for cc in COUNTRIES), os.listdir(saved)
        images = set()
        for cc in COUNTRIES:
            data = open(os.path.join(saved, cc + ".jpg"), "rb").read()
            assert data == flag_image(cc), "%s.jpg: %d bytes, not the %d served" % (cc, len(data), len(flag_image(cc)))
            images.add(data)
        assert len(images) == len(COUNTRIES), "two countries got the same image"

        # Each mode: its timing line, every flag downloaded once, the saved
        # files compared with the served bytes by flags itself.
        sections = re.split(r"^(sequential io|threadpool|processpool|async) took: [0-9.]+ seconds$", out, flags=re.M)
        assert len(sections) == 9, "expected four timing lines"
        logs = {}
        for i, label in enumerate(("sequential io", "threadpool", "processpool", "async")):
            assert sections[2 * i + 1] == label, sections[2 * i + 1]
            found = re.findall(r"^downloaded (\w+) flag in process:(\d+), thread:(\d+)$", sections[2 * i], re.M)
            assert sorted(cc for cc, _, _ in found) == sorted(COUNTRIES), (label, found)
            logs[label] = found
        assert out.count("checked 5 flags in %s: the bytes served" % saved) == 4, out
        main_pid = logs["sequential io"][0][1]
        assert all(pid == main_pid and tid == main_pid for _, pid, tid in logs["sequential io"])
        assert all(pid == main_pid and tid == main_pid for _, pid, tid in logs["async"])
        assert all(pid == main_pid and tid != main_pid for _, pid, tid in logs["threadpool"])
        assert all(pid != main_pid and tid == pid for _, pid, tid in logs["processpool"])
        assert re.search(r"^processpool workers: \d+$", out, re.M)
        for mode in ("sequential", "threads", "processes", "async"):
            assert re.search(r"^%s +[0-9.]+ +[0-9.]+x$" % mode, out, re.M), "no table row for " + mode

        # An unknown country is a 404: the status_error is reported, exit status 1.
        for mode in ("sequential", "threads", "processes", "async"):
            bad = run([binary, "--quick", "--mode", mode, "--out", os.path.join(out_dir, mode),
                       "--countries", "yemen atlantis"], status=1)
            assert re.search(r"^flags: HTTP error( in a worker process)?: GET http://127", bad.stderr, re.M) and \
                "/atlantis/flag-jpg-small.jpg: 404 Not Found" in bad.stderr, bad.stderr
            assert "took:" not in bad.stdout
    finally:
        shutil.rmtree(out_dir)


def cats(binary, static_server):
    check_help(binary, "cats")
    out = run([binary, "--quick"]).stdout
    m = re.search(r"^serving 20 generated cats \((\d+) bytes\) from (\S+) at http://127\.0\.0\.1:\d+/$", out, re.M)
    assert m, "no serving line"
    total, directory = int(m.group(1)), m.group(2)
    assert total == sum(len(cat_image(cat)) for cat in range(1, 21)), total
    assert not os.path.exists(directory), directory + " was not removed"
    for stage in ("naive", "threads", "session", "async"):
        # 5 downloads of each cat: five times the bytes served, each size checked.
        assert re.search(r"^%s +Duration [0-9.]+ seconds \(1 x 100 downloads, %d bytes, sizes checked\)$"
                         % (stage, 5 * total), out, re.M), stage
    out = run([binary, "--stage", "async", "--limit", "5", "--quick"]).stdout
    assert re.search(r"^async +Duration [0-9.]+ seconds \(1 x 100 downloads, %d bytes" % (5 * total), out, re.M)
    out = run([binary, "--stage", "session", "--repeat", "2"]).stdout
    assert re.search(r"^session +Duration [0-9.]+ seconds \(2 x 100 downloads, %d bytes" % (10 * total), out, re.M)

    # --url-base against another server: examples/static_server on a
    # directory of 20 files; sizes are checked against Content-Length.
    root = tempfile.mkdtemp(prefix="coring-cats-check-")
    proc = None
    try:
        sizes = 0
        for cat in range(1, 21):
            with open(os.path.join(root, "%d.jpg" % cat), "wb") as f:
                f.write(bytes([cat]) * (1000 * cat))
            sizes += 1000 * cat
        proc = subprocess.Popen([static_server, "--dir", root, "--port", "0"], stdout=subprocess.PIPE, text=True)
        port = re.search(r"127\.0\.0\.1:(\d+)", proc.stdout.readline()).group(1)
        out = run([binary, "--quick", "--stage", "async", "--url-base", "http://127.0.0.1:%s/" % port]).stdout
        assert "serving" not in out
        assert re.search(r"^async +Duration [0-9.]+ seconds \(1 x 100 downloads, %d bytes" % (5 * sizes), out, re.M)
        os.remove(os.path.join(root, "7.jpg"))  # a 404 is an error
        bad = run([binary, "--quick", "--stage", "naive", "--url-base", "http://127.0.0.1:%s" % port], status=1)
        assert "/7.jpg: 404" in bad.stderr, bad.stderr
    finally:
        if proc:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
        shutil.rmtree(root)


def main():
    what = sys.argv[1]
    if what == "download_sites":
        download_sites(sys.argv[2])
    elif what == "flags":
        flags(sys.argv[2])
    elif what == "cats":
        cats(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown example " + what)
    print("all checks passed")


if __name__ == "__main__":
    main()
