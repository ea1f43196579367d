#!/usr/bin/env python3
"""Baseline for bench/process_bench.cpp: the same workloads on
concurrent.futures.ProcessPoolExecutor (fork start method, 2 workers).

  round_trip   one trivial job at a time (submit, then result()), jobs per second
  batch        BATCH trivial jobs submitted at once, then all collected, jobs per second
  speedup      20 CPU-bound jobs (fib(FIB_N), ~20 ms each) on 2 workers vs on 1: wall time
               ratio, best of 3 batches each

usage: process_bench_python.py [round_trips=2000] [batch=20000] [fib_n=26]
Prints one line: python round_trip_per_s=<f> batch_per_s=<f> cpu1_s=<f> cpu2_s=<f> speedup=<f>
(fib_n is smaller than the C++ one so that each job takes a similar time.)
"""
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def trivial(x):
    return x + 1


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def cpu_run(workers, fib_n, ctx):
    # The best of three batches, as in the C++ program.
    best = 1e9
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        list(pool.map(fib, [15] * (workers * 2)))  # workers started and warm
        for _ in range(3):
            t0 = time.perf_counter()
            fs = [pool.submit(fib, fib_n) for _ in range(20)]
            total = sum(f.result() for f in fs)
            best = min(best, time.perf_counter() - t0)
            assert total > 0
    return best


def main():
    round_trips = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    fib_n = int(sys.argv[3]) if len(sys.argv) > 3 else 26
    ctx = mp.get_context("fork")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        pool.submit(trivial, 0).result()
        t0 = time.perf_counter()
        for i in range(round_trips):
            assert pool.submit(trivial, i).result() == i + 1
        rt_rate = round_trips / (time.perf_counter() - t0)

        t0 = time.perf_counter()
        fs = [pool.submit(trivial, i) for i in range(batch)]
        for i, f in enumerate(fs):
            assert f.result() == i + 1
        batch_rate = batch / (time.perf_counter() - t0)
    cpu1 = cpu_run(1, fib_n, ctx)
    cpu2 = cpu_run(2, fib_n, ctx)
    print(f"python round_trip_per_s={rt_rate:.0f} batch_per_s={batch_rate:.0f} "
          f"cpu1_s={cpu1:.3f} cpu2_s={cpu2:.3f} speedup={cpu1 / cpu2:.2f}")


if __name__ == "__main__":
    main()
