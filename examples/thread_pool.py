"""Run a logging function on a pool of threads.

Replaces the ``ThreadPoolExecutor`` example (``multithreading.py``) of the multithreading and
multiprocessing tutorial::

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as executor:
        executor.map(thread_function, range(3))

What is better here:

* the results come back: the tutorial throws away the iterator ``executor.map`` returns, so an
  exception raised in a thread vanishes without a word. ``lightwork.map`` returns the results
  in order, and with ``return_exceptions=True`` a failed call leaves its exception in its place,
  which is logged here with its traceback (try ``--fail 1``) and makes the exit status 1;
* the log lines name the worker thread (``lightwork-thread-N``) and carry milliseconds, so
  that the three threads can be seen starting together and finishing together;
* ``--seconds`` shortens the two-second sleeps, ``--threads`` changes the pool size::

      python thread_pool.py                   # three threads, about 2 s
      python thread_pool.py --seconds 0.1 --fail 1
"""

from __future__ import annotations

import argparse
import functools
import logging
import time

import lightwork


def thread_function(name: int, seconds: float = 2.0, fail: int | None = None) -> int:
    logging.info("Thread %s: starting", name)
    time.sleep(seconds)
    if name == fail:
        raise RuntimeError(f"thread {name} failed on purpose")
    logging.info("Thread %s: finishing", name)
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=3, help="calls, and threads to run them")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each call")
    parser.add_argument("--fail", type=int, default=None, help="this call raises an exception")
    args = parser.parse_args(argv)

    logging.basicConfig(
        format="%(asctime)s.%(msecs)03d [%(threadName)s] %(message)s",
        level=logging.INFO,
        datefmt="%H:%M:%S",
        force=True,
    )
    task = functools.partial(thread_function, seconds=args.seconds, fail=args.fail)
    start = time.perf_counter()
    results = lightwork.map(
        task,
        range(args.threads),
        backend="threads",
        max_workers=args.threads,
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - start
    failed = 0
    for name, result in enumerate(results):
        if isinstance(result, BaseException):
            failed += 1
            logging.error("Main    : thread %s failed", name, exc_info=result)
    logging.info("Main    : results %s in %.2f s", results, elapsed)
    logging.info("Main    : all done, %d of %d calls failed", failed, len(results))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
