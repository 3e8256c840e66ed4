"""A race condition on a fake database, and its fix: for threads, then for processes.

Replaces ``fakedb.py`` from the multithreading and multiprocessing tutorial. Its
``FakeDatabase.update`` copies the value, adds one, sleeps 0.1 s and writes the copy back; two
threads run it at once, both read 0, and the ending value is 1 instead of 2: an update is lost.
Its second version holds a ``threading.Lock`` around the whole update, and ends at 2.

This script runs both, on ``lightwork``'s thread backend, then goes one step further, where a
``threading.Lock`` can no longer help: the same database updated by two worker *processes*.
Each process would have its own copy of an ordinary object (see ``own_memory_space.py``), so
the value is a ``lightwork.SharedValue``: the unlocked update loses an update across processes
just as it did across threads, and holding the value's own lock fixes it the same way.

::

    python fakedb.py                 # threads: 1, then 2; processes: 1, then 2
    python fakedb.py --seconds 0.2
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable

import lightwork


class FakeDatabase:
    """The tutorial's database: a value in this process, and a lock for its threads."""

    def __init__(self, seconds: float) -> None:
        self.value = 0
        self.seconds = seconds
        self._lock = threading.Lock()

    def update(self, name: int) -> None:
        logging.info("Thread %s: starting update", name)
        local_copy = self.value
        local_copy += 1
        time.sleep(self.seconds)
        self.value = local_copy
        logging.info("Thread %s: finishing update", name)

    def locked_update(self, name: int) -> None:
        logging.info("Thread %s: starting update", name)
        with self._lock:
            local_copy = self.value
            local_copy += 1
            time.sleep(self.seconds)
            self.value = local_copy
        logging.info("Thread %s: finishing update", name)


class SharedDatabase:
    """The same database for processes: the value lives in shared memory, with its lock.

    Its methods are tasks: pickling the bound method sends the ``SharedValue`` handle along.
    """

    def __init__(self, seconds: float) -> None:
        self.value = lightwork.SharedValue("i", 0)
        self.seconds = seconds

    def update(self, name: int) -> None:
        local_copy = self.value.value
        local_copy += 1
        time.sleep(self.seconds)
        self.value.value = local_copy

    def locked_update(self, name: int) -> None:
        with self.value.get_lock():
            local_copy = self.value.value
            local_copy += 1
            time.sleep(self.seconds)
            self.value.value = local_copy


def run(
    executor: lightwork.Executor,
    update: Callable[[int], None],
    what: str,
    current: Callable[[], int],
) -> None:
    logging.info("%s: starting value is %d.", what, current())
    futures = [executor.submit(update, index) for index in range(2)]
    for future in futures:
        future.result()
    logging.info("%s: ending value is %d.", what, current())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.1, help="the sleep inside update")
    args = parser.parse_args(argv)
    logging.basicConfig(
        format="%(asctime)s: %(message)s",
        level=logging.INFO,
        datefmt="%H:%M:%S",
        stream=sys.stdout,
        force=True,
    )

    with lightwork.Executor(2, backend="threads") as threads:
        database = FakeDatabase(args.seconds)
        run(threads, database.update, "Threads, no lock", lambda: database.value)
        locked = FakeDatabase(args.seconds)
        run(threads, locked.locked_update, "Threads, threading.Lock", lambda: locked.value)

    with lightwork.Executor(2) as processes:
        processes.start()  # both workers up, so the two updates really overlap
        shared = SharedDatabase(args.seconds)
        run(processes, shared.update, "Processes, no lock", lambda: shared.value.value)
        shared_locked = SharedDatabase(args.seconds)
        run(
            processes,
            shared_locked.locked_update,
            "Processes, SharedValue lock",
            lambda: shared_locked.value.value,
        )
        ok = locked.value == 2 and shared_locked.value.value == 2
        shared.value.close()
        shared_locked.value.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
