"""Square a list on a pool of processes, showing which worker ran each item.

Replaces ``pooling.py`` from the multithreading and multiprocessing tutorial, whose ``square``
prints ``os.getpid()`` from inside the worker and which never closes its ``Pool``. What is
better here:

* the worker's pid travels back with the result and is printed by the main process, so the
  lines come out whole and in input order instead of interleaved from several processes;
* the executor is a ``with`` block, so its workers are shut down cleanly;
* ``Executor.statistics()`` tells how many tasks (and chunks of tasks) each worker ran: tiny
  tasks are sent several to a message, so one worker may well run most of them, and the
  "one process per item" of the tutorial's output is an accident, not a promise.

::

    python pooling.py            # [1, 4, 9, 16, 25]
    python pooling.py 20 --workers 4
"""

from __future__ import annotations

import argparse
import os

import lightwork


def square(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=5, help="numbers to square")
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: CPUs)")
    args = parser.parse_args(argv)

    mylist = list(range(1, args.count + 1))
    print(f"main process id: {os.getpid()}")
    with lightwork.Executor(args.workers) as executor:
        pairs = list(executor.imap(square, mylist))
        statistics = executor.statistics()

    for n, (_, pid) in zip(mylist, pairs, strict=True):
        print(f"Worker process id for {n}: {pid}")
    print([result for result, _ in pairs])

    for worker in statistics.workers:
        print(
            f"worker {worker.worker} (pid {worker.pid}): {worker.tasks} tasks "
            f"in {worker.chunks} chunks"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
