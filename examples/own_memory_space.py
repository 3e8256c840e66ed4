"""A worker changes its own copy of a global list, not the parent's; what to use instead.

Replaces ``own_memory_space.py`` from the Python multiprocessing tutorial, which extends a
global list in a ``Process`` and shows that the main process still sees ``[1, 2]``. This
script shows the same thing, then the two ways to get the worker's data back, which the
tutorial leaves out:

* return it: a task's return value travels back to the caller (the usual, simplest way);
* write it into shared memory: a ``lightwork.SharedArray`` passed to the task is the same
  memory in the worker and in the parent, so the parent sees what the worker wrote, with no
  copy (what counts for large arrays).

::

    python own_memory_space.py
    # Result in lightwork-worker-0: [1, 2, 3, 4, 5]
    # Result in main: [1, 2]
    # ...
"""

from __future__ import annotations

import argparse
import multiprocessing

import lightwork

data = [1, 2]


def fun(_: object) -> str:
    data.extend((3, 4, 5))  # the worker's own copy of the global
    return f"Result in {multiprocessing.current_process().name}: {data}"


def extended(values: list[int]) -> list[int]:
    return [*values, 3, 4, 5]


def extend_shared(shared: lightwork.SharedArray, known: int) -> None:
    shared.array[known:] = (3, 4, 5)  # the parent's memory too


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)

    with lightwork.Executor(1) as executor:  # one worker process, like the tutorial's
        print(executor.submit(fun, None).result())
        print(f"Result in main: {data}")

        print("\nInstead, return the data:")
        result = executor.submit(extended, data).result()
        print(f"Returned to main: {result}")

        print("\nOr write it into shared memory:")
        with lightwork.SharedArray(5, "int64") as shared:
            shared.array[: len(data)] = data
            executor.submit(extend_shared, shared, len(data)).result()
            print(f"SharedArray seen in main: {shared.array.tolist()}")
            ok = shared.array.tolist() == [1, 2, 3, 4, 5]
    return 0 if ok and data == [1, 2] and result == [1, 2, 3, 4, 5] else 1


if __name__ == "__main__":
    raise SystemExit(main())
