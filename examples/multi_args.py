"""Call a two-argument function in parallel with ``starmap``.

Replaces ``multi_args.py`` from the Python multiprocessing tutorial (``Pool().starmap(power,
((2, 2), (4, 3), (5, 5)))``, each call sleeping one second). What is better here:

* ``lightwork.starmap`` is one call on a warm pool: no ``with Pool() as pool`` block, and the
  pool is reused by later calls instead of being started again;
* the pool has as many workers as there are calls (``--workers`` to change it), so the three
  one-second calls take one second even on a 2-core machine, where ``Pool()`` would give two
  workers and two rounds;
* the same calls also run as ``Executor.map(power, xs, ns)``, the ``concurrent.futures`` way of
  passing several iterables, and a bad argument raises its own exception with the worker's
  traceback and the task index;
* the time is printed readably, and ``--seconds`` shortens the sleeps::

      python multi_args.py                  # [4, 64, 3125] in about 1 s
      python multi_args.py --seconds 0.1
"""

from __future__ import annotations

import argparse
import functools
import time

import lightwork


def power(x: int, n: int, seconds: float = 1.0) -> int:
    time.sleep(seconds)
    result: int = x**n
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each call")
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: 3)")
    args = parser.parse_args(argv)

    values = [(2, 2), (4, 3), (5, 5)]
    workers = args.workers or len(values)
    slow_power = functools.partial(power, seconds=args.seconds)
    print(f"starting computations on {workers} workers ({lightwork.available_cpus()} CPUs)")

    start = time.perf_counter()
    res = lightwork.starmap(slow_power, values, max_workers=workers)
    end = time.perf_counter()
    print(res)
    print(f"elapsed time: {end - start:.2f} s (pool start-up included)")

    # The concurrent.futures spelling: one iterable per argument, as with the builtin map().
    xs, ns = zip(*values, strict=True)
    with lightwork.Executor(workers) as executor:
        start = time.perf_counter()
        print(f"Executor.map: {list(executor.map(slow_power, xs, ns))}")
        print(f"elapsed time: {time.perf_counter() - start:.2f} s (pool start-up included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
