#!/usr/bin/env python3
"""Baseline for bench/process_bench.cpp: the same workloads on
concurrent.futures.ProcessPoolExecutor (fork start method).

  round_trip   one trivial job at a time (submit, then result()) on 2 workers, microseconds
  batch        BATCH trivial jobs submitted at once, then all collected, jobs per second
  speedup      JOBS CPU-bound jobs (fib(FIB_N), ~100 ms each) on 2 workers vs on 1:
               wall-time ratio

As in the C++ program, every figure is the median of SAMPLES samples, and the
1-worker and 2-worker batches of CPU-bound jobs alternate (the speed-up is the
median of the ratios of each pair).

usage: process_bench_python.py [samples=5] [round_trips=1000] [batch=10000] [jobs=12] [fib_n=30]
Prints one line: python round_trip_us=<f> round_trip_per_s=<f> batch_per_s=<f> cpu1_s=<f> cpu2_s=<f> speedup=<f>
(fib_n is smaller than the C++ one so that each job takes a similar time.)
"""
import multiprocessing as mp
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def trivial(x):
    return x + 1


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def round_trip_sample(pool, n):
    t0 = time.perf_counter()
    for i in range(n):
        assert pool.submit(trivial, i).result() == i + 1
    return (time.perf_counter() - t0) * 1e6 / n


def batch_sample(pool, n):
    t0 = time.perf_counter()
    fs = [pool.submit(trivial, i) for i in range(n)]
    for i, f in enumerate(fs):
        assert f.result() == i + 1
    return n / (time.perf_counter() - t0)


def cpu_sample(pool, jobs, fib_n):
    t0 = time.perf_counter()
    fs = [pool.submit(fib, fib_n) for _ in range(jobs)]
    assert sum(f.result() for f in fs) > 0
    return time.perf_counter() - t0


def main():
    args = [int(a) for a in sys.argv[1:]]
    samples, round_trips, batch, jobs, fib_n = args + [5, 1000, 10000, 12, 30][len(args):]
    ctx = mp.get_context("fork")
    rt_us, batch_rate, cpu1, cpu2, ratio = [], [], [], [], []
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        list(pool.map(fib, [15] * 4))  # workers started and warm
        for _ in range(samples):
            rt_us.append(round_trip_sample(pool, round_trips))
        for _ in range(samples):
            batch_rate.append(batch_sample(pool, batch))
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as one, \
            ProcessPoolExecutor(max_workers=2, mp_context=ctx) as two:
        list(one.map(fib, [15] * 2))
        list(two.map(fib, [15] * 4))
        for _ in range(samples):
            cpu1.append(cpu_sample(one, jobs, fib_n))
            cpu2.append(cpu_sample(two, jobs, fib_n))
            ratio.append(cpu1[-1] / cpu2[-1])
    rt = statistics.median(rt_us)
    print(f"python round_trip_us={rt:.2f} round_trip_per_s={1e6 / rt:.0f} "
          f"batch_per_s={statistics.median(batch_rate):.0f} cpu1_s={statistics.median(cpu1):.3f} "
          f"cpu2_s={statistics.median(cpu2):.3f} speedup={statistics.median(ratio):.2f}")


if __name__ == "__main__":
    main()
