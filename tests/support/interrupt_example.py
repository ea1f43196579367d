#!/usr/bin/env python3
"""Runs an example that runs long, checks what SIGUSR1 and Ctrl-C do to it.

usage: interrupt_example.py <program> [args...]

Starts the program in a session of its own (as a terminal would run a
foreground job), waits for its first line of output, sends it SIGUSR1 and
expects a task dump on stderr (every live task, "live task(s)"), then sends
SIGINT to its whole process group (what Ctrl-C does: the pool's workers get
it too) and expects the program to end within 10 s with exit status 130 and
a line saying it was interrupted. Exits 0 if so, 1 with the reason if not.
"""
import os
import selectors
import signal
import subprocess
import sys
import time


def fail(why, out="", err=""):
    print("FAIL:", why)
    print("--- stdout\n" + out + "\n--- stderr\n" + err)
    sys.exit(1)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    # The child starts with SIGINT at its default action even if we were
    # started with it ignored (a background job of a non-interactive shell).
    p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    if not sel.select(timeout=20):
        p.kill()
        fail("no output within 20 s")
    first = p.stdout.readline()
    p.send_signal(signal.SIGUSR1)
    time.sleep(0.5)
    os.killpg(p.pid, signal.SIGINT)
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        fail("still running 10 s after SIGINT", first + out, err)
    out = first + out
    if "live task(s)" not in err:
        fail("no task dump on stderr after SIGUSR1", out, err)
    if p.returncode != 130:
        fail("exit status %d, not 130" % p.returncode, out, err)
    if "interrupted" not in out:
        fail("no 'interrupted' line", out, err)
    print("ok: task dump on SIGUSR1, exit 130 on SIGINT")


main()
