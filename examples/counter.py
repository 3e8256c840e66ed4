"""Thirty tasks increment one shared counter, each under its lock.

Replaces ``counter.py`` from the Python multiprocessing tutorial, which starts 30 ``Process``
objects by hand, each sleeping a second and then doing, on a ``multiprocessing.Value``::

    with counter.get_lock():
        counter.value += 1

The task keeps those two lines. What is better here:

* the counter is a ``lightwork.SharedValue``, an ordinary task argument: the 30 tasks run on a
  pool of one worker per CPU instead of 30 processes (a ``multiprocessing.Value`` cannot be sent
  to a pool's tasks at all: its pickling is refused outside process start-up);
* its lock survives a crash: a worker killed while holding it releases it, where the tutorial's
  semaphore would stay taken and hang every other process;
* each task returns the count it saw, and the main process prints the lines whole;
* ``counter.add(1)`` is the same locked increment in one call, and returns the new count.

::

    python counter.py                   # ... Counter: 30
    python counter.py 100 --seconds 0.01
"""

from __future__ import annotations

import argparse
import functools
import time

import lightwork


def increment(counter: lightwork.SharedValue[int], seconds: float, _: int) -> int:
    time.sleep(seconds)
    with counter.get_lock():
        counter.value += 1
        return counter.value  # read under the lock: the count this task made


def add_one(counter: lightwork.SharedValue[int], _: int) -> int:
    return counter.add(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=30, help="tasks (and increments)")
    parser.add_argument("--seconds", type=float, default=0.1, help="each task sleeps this long")
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: CPUs)")
    args = parser.parse_args(argv)

    with lightwork.SharedValue("i", 0) as counter:
        seen = lightwork.map(
            functools.partial(increment, counter, args.seconds),
            range(args.count),
            max_workers=args.workers,
        )
        for value in seen:
            print(f"Counter: {value}")
        print(f"final: Counter: {counter.value}")
        ok = counter.value == args.count and sorted(seen) == list(range(1, args.count + 1))

    with lightwork.SharedValue("i", 0) as counter:
        news = lightwork.map(
            functools.partial(add_one, counter), range(args.count), max_workers=args.workers
        )
        each_once = sorted(news) == list(range(1, args.count + 1))
        print(f"with add(): Counter: {counter.value}, each count returned once: {each_once}")
        ok = ok and counter.value == args.count and each_once
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
