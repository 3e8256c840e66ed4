"""Four random values from four workers, in order, and the same ones again with a seed.

Replaces ``simple_queue.py`` from the Python multiprocessing tutorial, which starts four
``Process`` objects that each put ``random.random()`` on a ``multiprocessing.Queue``, joins
them, and then gets four values back from the queue. What is better here:

* no Queue, no ``start()``/``join()`` loops and no counting of ``get()`` calls: a
  ``lightwork.Pipeline`` stage on four workers yields the four values, in task order (the
  tutorial gets them in whatever order the processes finished);
* the values come from ``lightwork.random()``, each task's own random stream, derived from
  ``--seed`` and the task's position, never from the worker that ran it: the same seed gives
  the same four values on processes, threads or one worker (the tutorial's values can't be
  repeated). Without ``--seed`` they are fresh each run, as in the tutorial::

      python simple_queue.py                    # four new values
      python simple_queue.py --seed 7           # the same four values every time
      python simple_queue.py --seed 7 --backend threads
"""

from __future__ import annotations

import argparse

import lightwork


def rand_val(_: int) -> float:
    return lightwork.random().random()  # this task's own stream: (seed, task index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None, help="repeat the same values")
    parser.add_argument("--backend", default="processes", help="processes, threads or serial")
    parser.add_argument("--tasks", type=int, default=4, help="how many values")
    args = parser.parse_args(argv)

    values = lightwork.Pipeline(range(args.tasks)).map(
        rand_val, backend=args.backend, max_workers=args.tasks, seed=args.seed
    )
    print(list(values))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
