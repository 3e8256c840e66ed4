"""The tutorials' Process and Thread lifecycle programs, with lightwork.

Replaces the multiprocessing tutorial's simple.py, joining.py, join_order.py, alive.py,
process_id.py, naming_workers.py and subclass.py, and the threading tutorial's
thread_example.py, daemon.py and test_processing.py. What is better:

* no start()/join() bookkeeping: ``submit`` returns a future, ``map`` returns the results,
  and forgetting to join can't make the parent finish first (joining.py's pitfall), nor can
  joining in the wrong place make the work sequential (join_order.py's);
* ``future.done()`` says what ``is_alive()`` said, for the task rather than the process;
* the worker's pid and name come back with the result, and ``Executor.statistics()`` lists
  every worker with its pid and what it spent its time on;
* per-worker set-up is an ``initializer`` instead of a Process subclass;
* a task that never returns can't hang the program at exit (daemon.py's concern): workers are
  stopped at exit, and ``task_timeout`` stops a stuck task.

When to still use a raw ``multiprocessing.Process``: one long-lived companion process with its
own lifecycle (a server, a watcher), not a pool of workers running tasks.

    python examples/processes.py [--seconds S]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from collections.abc import Sequence

import lightwork


def fun(name: str) -> str:
    """simple.py's fun, returning its greeting instead of printing it in another process."""
    return f"hello {name}"


def nap(seconds: float) -> tuple[float, int, int]:
    """join_order.py's fun: sleep, then say who ran it."""
    time.sleep(seconds)
    return seconds, os.getpid(), os.getppid()


def who(_: object = None) -> tuple[str, int]:
    """naming_workers.py: each worker process has a name and a pid."""
    return multiprocessing.current_process().name, os.getpid()


_greeting = "unset"


def set_greeting(greeting: str) -> None:
    """subclass.py overrode Process.run to prepare a worker; an initializer does that."""
    global _greeting
    _greeting = greeting


def greet(name: str) -> str:
    return f"{_greeting}, {name}, from {multiprocessing.current_process().name}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="the longest nap")
    args = parser.parse_args(argv)
    longest = args.seconds

    print("main process id:", os.getpid())
    with lightwork.Executor(3) as ex:
        # simple.py + joining.py: the result is there when you ask for it; nothing to join.
        print(ex.submit(fun, "Peter").result())

        # join_order.py: three naps of 3, 2 and 1 units run at once, whatever order they end.
        started = time.perf_counter()
        futures = [ex.submit(nap, longest * k / 3) for k in (3, 2, 1)]
        # alive.py: a future tells whether its task is still running.
        print("first nap done right away?", futures[0].done())
        for future in futures:
            seconds, pid, ppid = future.result()
            print(f"napped {seconds:.2f} s in process {pid} (its parent: {ppid})")
        print(f"all three took {time.perf_counter() - started:.2f} s, not the sum")
        print("first nap done now?", futures[0].done())

        # process_id.py + naming_workers.py: who ran what.
        for name, pid in sorted(set(ex.imap(who, range(12), chunksize=1))):
            print(f"worker {name} has pid {pid}")
        for worker in ex.statistics().workers:
            print(f"worker {worker.worker}: pid {worker.pid}, {worker.tasks} tasks")

    # subclass.py: per-worker set-up through an initializer.
    with lightwork.Executor(2, initializer=set_greeting, initargs=("Good day",)) as ex:
        for line in ex.imap(greet, ["Ann", "Bob"]):
            print(line)

    # daemon.py: a task that would never end is stopped, and the program still exits.
    results = lightwork.map(
        nap,
        [3600.0],
        backend="threads",
        task_timeout=longest / 4,
        retries=0,
        return_exceptions=True,
    )
    print("a stuck task:", type(results[0]).__name__)


if __name__ == "__main__":
    main()
