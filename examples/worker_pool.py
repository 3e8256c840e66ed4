"""Square numbers with slow tasks on a pool of workers.

Replaces ``worker_pool.py`` from the Python multiprocessing tutorial (``Pool().map(square,
(2, 4, 6, 8))``, each ``square`` sleeping two seconds). What is better here:

* the pool size is an explicit ``--workers`` option (4, as in the tutorial's run), not
  whatever ``os.cpu_count()`` says, which over-counts in a container;
* the elapsed time is printed readably and split into pool start-up and computing, and the
  script says how many rounds of tasks the workers needed: 4 tasks on 4 workers take one round
  (about 2 s), 5 tasks take two (about 4 s), which is what the tutorial found by experiment;
* the number of values and the task length are options, so it can be run quickly::

      python worker_pool.py                  # [4, 16, 36, 64] in about 2 s
      python worker_pool.py 5                # [4, 16, 36, 64, 100] in about 4 s: two rounds
      python worker_pool.py 5 --seconds 0.1

Since the tasks only sleep, ``--backend threads`` does the same job without processes.
"""

from __future__ import annotations

import argparse
import functools
import math
import time

import lightwork


def square(n: int, seconds: float = 2.0) -> int:
    time.sleep(seconds)
    return n * n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=4, help="values to square")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each task")
    parser.add_argument("--workers", type=int, default=4, help="pool size")
    parser.add_argument("--backend", default="processes", choices=["processes", "threads"])
    args = parser.parse_args(argv)

    values = [2 * (i + 1) for i in range(args.count)]
    print(
        f"starting computations on {args.workers} worker {args.backend} "
        f"({lightwork.available_cpus()} CPUs available)"
    )
    options = {"backend": args.backend, "max_workers": args.workers}

    start = time.perf_counter()
    lightwork.map(abs, range(args.workers), **options)  # start the (warm) pool up front
    started = time.perf_counter()
    # No hand-split of the work: lightwork sends a first task to each worker, and measures.
    squares = lightwork.map(functools.partial(square, seconds=args.seconds), values, **options)
    end = time.perf_counter()
    print(squares)

    rounds = math.ceil(len(values) / args.workers)
    print(f"pool start-up: {started - start:.2f} s")
    print(
        f"computing: {end - started:.2f} s for {len(values)} tasks of {args.seconds:g} s "
        f"on {args.workers} workers = {rounds} round{'s' if rounds != 1 else ''} "
        f"(expected about {rounds * args.seconds:.2f} s)"
    )
    print(f"elapsed time: {end - start:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
