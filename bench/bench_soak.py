"""Soak: 1,000,000 tiny tasks through ``imap`` from a generator while two workers are killed.

Every result must arrive exactly once and in order (checked as it is consumed, so the check
itself holds no memory), and the parent's memory must stay flat.

    .venv/bin/python bench/bench_soak.py [--tasks 1000000] [--kills 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time

import psutil

import lightwork


def square(x: int) -> int:
    return x * x


class MemorySampler(threading.Thread):
    """Peak RSS of this process, and of this process with its workers, every 10 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.me = psutil.Process()
        self.start_rss = self.me.memory_info().rss
        self.peak_parent = self.start_rss
        self.peak_total = self.start_rss
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.01):
            parent = self.me.memory_info().rss
            total = parent
            for child in self.me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_parent = max(self.peak_parent, parent)
            self.peak_total = max(self.peak_total, total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with lightwork.Executor(args.workers, retries=1) as executor:
        list(executor.imap(square, range(100)))  # start the workers before measuring
        sampler = MemorySampler()
        sampler.start()
        kill_at = {args.tasks * (k + 1) // (args.kills + 1) for k in range(args.kills)}
        killed: list[int] = []
        started = time.perf_counter()
        expected = 0
        for result in executor.imap(square, (x for x in range(args.tasks))):
            if result != expected * expected:
                raise SystemExit(f"result {expected} is wrong or out of order: {result}")
            expected += 1
            if expected in kill_at:
                pid = next(w.pid for w in executor.statistics().workers if w.alive)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        seconds = time.perf_counter() - started
        sampler.stopped.set()
        sampler.join()
        stats = executor.statistics()

    if expected != args.tasks:
        raise SystemExit(f"only {expected} of {args.tasks} results arrived")
    mib = 2**20
    print(f"{args.tasks:,} tasks, {len(killed)} workers SIGKILLed mid-run, retries=1")
    print(f"every result present exactly once and in order: yes ({expected:,})")
    print(f"time: {seconds:.2f} s ({args.tasks / seconds:,.0f} tasks/s)")
    start, peak = sampler.start_rss / mib, sampler.peak_parent / mib
    print(f"parent RSS: {start:.0f} MiB at start, peak {peak:.0f} MiB (+{peak - start:.1f} MiB)")
    print(f"peak RSS, parent and workers: {sampler.peak_total / mib:.0f} MiB")
    print(
        f"workers started {stats.workers_started}, crashed {stats.workers_crashed}, "
        f"tasks retried {stats.tasks_retried}"
    )


if __name__ == "__main__":
    main()
