"""Get results in input order, or as they finish, without hand-made indices.

Replaces ``queue_order.py`` from the Python multiprocessing tutorial, which starts one
``Process`` per value, has each put ``(index, square)`` on a ``Queue`` after a random sleep of
1 to 3 seconds, and sorts by the index to restore the input order. What is better here:

* ``lightwork.map`` returns results in input order by itself: no indices, no queue, no sort,
  no ``join()`` loop;
* ``lightwork.imap(..., ordered=False)`` yields each result as soon as it is ready, when the
  order doesn't matter, and lazily: a long input is never held in memory all at once;
* the random delays come from ``lightwork.random()``, each task's own stream derived from
  ``--seed`` and the task's position in the input, never from which worker runs it, so a run
  can be repeated (the tutorial's ``random.randint`` in forked processes is unseeded);
* ``--seconds`` scales the delays, so the example can run quickly::

      python queue_order.py                  # [4, 16, 36, 9, 25, 64, 81, 49]
      python queue_order.py --seconds 0.05
"""

from __future__ import annotations

import argparse
import functools
import time

import lightwork


def square(x: int, unit: float = 1.0) -> int:
    time.sleep(lightwork.random().randint(1, 3) * unit)  # this task's own random stream
    return x * x


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="one unit of delay")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the random delays")
    args = parser.parse_args(argv)

    data = [2, 4, 6, 3, 5, 8, 9, 7]
    task = functools.partial(square, unit=args.seconds)
    options = {"max_workers": len(data), "seed": args.seed}  # one worker per value, as there

    start = time.perf_counter()
    result = lightwork.map(task, data, **options)
    print(f"in input order: {result}")
    print(f"  {time.perf_counter() - start:.2f} s, including the start-up of {len(data)} workers")

    start = time.perf_counter()
    completed = []
    for value in lightwork.imap(task, data, ordered=False, **options):
        completed.append(value)
        print(f"  {time.perf_counter() - start:5.2f} s: {value}")
    print(f"in completion order (ordered=False): {completed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
