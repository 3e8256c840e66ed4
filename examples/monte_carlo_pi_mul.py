"""Estimate pi by Monte Carlo on all cores, with a sampling function of your own.

Replaces ``monte_carlo_pi_mul.py`` from the Python multiprocessing tutorial, which splits
100 000 000 samples into ``n / cpu_count()`` parts (floats, truncated again by ``int(n)`` in
the worker), maps ``pi_part`` over them on a ``Pool`` and prints the time and the estimate.
What is better here:

* no hand-split per core: the samples go in tasks of a fixed size (2**18 by
  ``lightwork.workloads.split_samples``), so none is lost to rounding, the load balances, and
  the work doesn't depend on the number of cores;
* reproducible: ``pi_part`` draws from ``lightwork.random()``, the running task's own random
  stream, derived from ``--seed`` and the task's index. The script runs the same tasks serially
  (``backend="serial"``) and on a process pool and checks that the counts are identical, so the
  only difference is the time: the speed-up is measured, not guessed;
* the estimate comes with its standard error, the times are printed readably, with the pool
  start-up apart, and
  ``--progress`` shows a progress bar instead of the tutorial's prints of each part's size.

::

    python monte_carlo_pi_mul.py                # 4 000 000 samples
    python monte_carlo_pi_mul.py 100000000 --progress --no-serial
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import lightwork
from lightwork.workloads import split_samples


def pi_part(n: int) -> int:
    """How many of ``n`` random points of the unit square fall in the quarter disc."""
    random = lightwork.random().random  # this task's own stream
    count = 0
    for _ in range(n):
        x, y = random(), random()
        if x * x + y * y < 1.0:  # sqrt(x**2 + y**2) < 1, without the square root
            count += 1
    return count


def run(parts: list[int], seed: int, **options: Any) -> tuple[int, float]:
    start = time.perf_counter()
    inside = sum(lightwork.map(pi_part, parts, seed=seed, **options))
    return inside, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", nargs="?", type=int, default=4_000_000, help="points drawn")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    parser.add_argument("--seed", type=int, default=12345, help="seed of the random streams")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    parser.add_argument(
        "--no-serial", dest="serial", action="store_false", help="skip the serial run"
    )
    args = parser.parse_args(argv)

    n = args.samples
    parts = split_samples(n, "python")
    workers = args.workers or lightwork.available_cpus()
    print(f"You have {lightwork.available_cpus()} CPUs: using {workers} processes")
    print(f"{n} samples in {len(parts)} tasks of up to {parts[0]} samples")

    start = time.perf_counter()
    lightwork.map(abs, range(workers), max_workers=workers)  # start the warm pool
    print(f"pool start-up: {time.perf_counter() - start:.2f} s")
    inside, seconds = run(parts, args.seed, max_workers=workers, progress=args.progress)
    pi_est = 4 * inside / n
    stderr = 4 * math.sqrt(inside / n * (1 - inside / n) / n)
    print(f"parallel elapsed time: {seconds:.2f} s")
    print(f"π estimate: {pi_est} ± {stderr:.5f}")

    if args.serial:
        serial_inside, serial_seconds = run(parts, args.seed, backend="serial")
        print(f"serial elapsed time: {serial_seconds:.2f} s")
        print(f"speed-up: {serial_seconds / seconds:.2f}x on {workers} processes")
        print(f"serial and parallel estimates identical: {serial_inside == inside}")
        if serial_inside != inside:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
