"""Run several different functions, with their arguments, in a pool.

Replaces ``multiple_functions.py`` from the Python multiprocessing tutorial, which wraps each
call in ``functools.partial`` and maps a helper ``smap(f): return f()`` over them. What is
better here:

* no helper: ``lightwork.map(operator.call, functions)`` (Python 3.11), and lambdas or
  closures would work as well as partials, since lightwork pickles functions with cloudpickle;
* or no partials either: ``Executor.submit(inc, 4)`` returns a ``concurrent.futures.Future``;
* a function that fails doesn't lose the others' results: with ``return_exceptions=True`` its
  exception takes its place in the list, and it carries the worker's traceback (as
  ``__cause__``) and a note naming the task. Without it, the exception is raised in the caller.

::

    python multiple_functions.py     # [5, 1, 7]
"""

from __future__ import annotations

import argparse
import functools
import operator
import traceback

import lightwork


def inc(x: int) -> int:
    return x + 1


def dec(x: int) -> int:
    return x - 1


def add(x: int, y: int) -> int:
    return x + y


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: CPUs)")
    args = parser.parse_args(argv)

    f_inc = functools.partial(inc, 4)
    f_dec = functools.partial(dec, 2)
    f_add = functools.partial(add, 3, 4)

    res = lightwork.map(operator.call, [f_inc, f_dec, f_add], max_workers=args.workers)
    print(res)

    with lightwork.Executor(args.workers) as executor:
        futures = [executor.submit(inc, 4), executor.submit(dec, 2), executor.submit(add, 3, 4)]
        print(f"with submit(): {[future.result() for future in futures]}")

    # A failing function: its exception comes back in its place, with the worker's traceback.
    f_bad = functools.partial(int, "four")
    res = lightwork.map(
        operator.call, [f_inc, f_bad, f_add], max_workers=args.workers, return_exceptions=True
    )
    print(f"with a failing function: {res}")
    for result in res:
        if isinstance(result, BaseException):
            print("".join(traceback.format_exception(result)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
