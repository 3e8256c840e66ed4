"""``backend="auto"``: choose serial, threads or processes by measuring the job's first tasks.

The probe runs the first tasks in the caller's thread (their results are kept, never re-run),
timing them by the wall clock and by the thread's CPU clock, while a watcher thread measures
how late it wakes from 1 ms sleeps: when the tasks hold the GIL it waits for the interpreter's
switch interval (5 ms), when they release it (NumPy, I/O, sleeping) it wakes on time.

* the whole input ran out during the probe: it was too small to pay for any pool -> serial;
* the tasks mostly wait (CPU time well below wall time: I/O, sleeping) -> threads;
* they compute with the GIL released, or the interpreter is free-threaded -> threads;
* otherwise a cost model compares serial with a process pool (start-up, plus per-task
  transfer, against the compute spread over the workers) -> serial or processes; on Python
  3.14+ subinterpreters (``backend="interpreters"``) take the process pool's place where the
  work can go there: the function, pickled as it would travel, the first probed argument and
  the modules the function's own code imports all load in a fresh subinterpreter (which
  imports the function's module there: a module that imports NumPy, or any extension without
  subinterpreter support, fails it). They start faster and run the same pure-Python work in
  parallel; where the work can't go there, the reason is part of the choice's. (What other
  functions it calls import only as they run is not checked.)

The watcher holds the GIL for microseconds at a time, so the probe runs at full speed.
:func:`choose` is the pure policy, tested without running anything.
"""

from __future__ import annotations

import math
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .._core._options import INTERPRETERS_PYTHON
from .._core._run import run_chunk
from .._core._tasks import Job

# Enough probe time for a stable per-task estimate; little enough to be noise on a real job.
PROBE_SECONDS = 0.02
# CPU time below this share of the wall clock means the tasks mostly wait.
WAITING_CPU_SHARE = 0.5
# Waking this late, as a share of the switch interval (5 ms), means the GIL was held: a free
# GIL wakes a sleeper within ~0.1 ms, a held one makes it wait up to the whole interval.
GIL_HELD_LATENESS = 0.2
# What a process pool costs: starting a worker (forkserver, measured here ~20-50 ms), and per
# task the parent's pickling, sending and unpickling of arguments and results (~0.3 us for a
# small int, measured with bench/bench_core.py).
PROCESS_STARTUP_SECONDS = 0.05
PROCESS_TASK_OVERHEAD_SECONDS = 0.3e-6
# Subinterpreters: a pool of 2 starts in ~20 ms here (bench/bench_interpreters.py), and a task
# pays the same pickling both ways as on processes.
INTERPRETER_STARTUP_SECONDS = 0.02


def choose(
    *,
    seconds_per_task: float,
    cpu_share: float,
    gil_held: bool,
    remaining: int | None,
    workers: int,
    exhausted: bool,
    processes_warm: bool = False,
    free_threaded: bool = False,
    serial_allowed: bool = True,
    interpreters: bool = False,
) -> tuple[str, str]:
    """The backend for the rest of a job, and the reason, from what the probe measured.

    ``interpreters``: the work can run in subinterpreters here (Python 3.14+, and it loads
    there): they replace processes for CPU-bound work that holds the GIL.

    >>> choose(seconds_per_task=0.01, cpu_share=0.02, gil_held=False, remaining=400,
    ...        workers=2, exhausted=False)[0]
    'threads'
    >>> choose(seconds_per_task=0.01, cpu_share=1.0, gil_held=True, remaining=400,
    ...        workers=2, exhausted=False)[0]
    'processes'
    >>> choose(seconds_per_task=1e-7, cpu_share=1.0, gil_held=True, remaining=200_000,
    ...        workers=2, exhausted=False)[0]
    'serial'
    >>> choose(seconds_per_task=0.01, cpu_share=1.0, gil_held=True, remaining=400,
    ...        workers=2, exhausted=False, interpreters=True)[0]
    'interpreters'
    """
    per_task_ms = seconds_per_task * 1e3
    if exhausted:
        if serial_allowed:
            return "serial", "the whole input ran during the probe: too small for a pool"
        return "threads", "the whole input ran during the probe (task_timeout needs threads)"
    if workers <= 1 and serial_allowed:
        return "serial", "one worker: a pool would only add overhead"
    if cpu_share < WAITING_CPU_SHARE and not gil_held:  # (held: descheduled, not waiting)
        return "threads", (
            f"tasks mostly wait ({cpu_share:.0%} CPU of {per_task_ms:.3g} ms a task): "
            "threads overlap the waiting"
        )
    if free_threaded:
        return "threads", "a free-threaded interpreter runs threads in parallel"
    if not gil_held:
        return "threads", f"tasks compute with the GIL released ({per_task_ms:.3g} ms a task)"
    n = remaining if remaining is not None else 10**9  # unknown length: assume a long job
    serial_time = n * seconds_per_task
    if interpreters:
        pool, startup = "interpreters", INTERPRETER_STARTUP_SECONDS
        where = f"{workers} subinterpreters (each with its own GIL)"
    else:
        pool, startup = "processes", 0.0 if processes_warm else PROCESS_STARTUP_SECONDS
        where = f"{workers} processes"
    pool_time = startup + n * (seconds_per_task / workers + PROCESS_TASK_OVERHEAD_SECONDS)
    if serial_allowed and serial_time <= pool_time:
        return "serial", (
            f"{n:,} tasks of {per_task_ms:.3g} ms take ~{serial_time:.3g} s serially, "
            f"no more than ~{pool_time:.3g} s on a {pool} pool with its overheads"
        )
    return pool, (
        f"CPU-bound Python holding the GIL ({per_task_ms:.3g} ms a task): "
        f"~{pool_time:.3g} s on {where} against ~{serial_time:.3g} s serially"
    )


def threads_for(cpu_share: float, cpus: int) -> int:
    """Threads that keep ``cpus`` CPUs busy when a task computes ``cpu_share`` of its time,
    between ``cpus`` and MAX_DEFAULT_THREADS (the pool may grow there later, see _threads).

    >>> threads_for(1.0, 2), threads_for(0.25, 2), threads_for(0.001, 2)
    (2, 8, 32)
    """
    from .._backends._threads import MAX_DEFAULT_THREADS

    wanted = math.ceil(cpus / max(cpu_share, 1 / MAX_DEFAULT_THREADS))
    return max(cpus, min(MAX_DEFAULT_THREADS, wanted))


class GilWatcher:
    """Measures how late a thread wakes from short sleeps while the probe runs."""

    NAP = 0.001

    def __init__(self) -> None:
        self.lateness: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="lightwork-gil-watch")

    def __enter__(self) -> GilWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            time.sleep(self.NAP)
            self.lateness.append(time.perf_counter() - start - self.NAP)

    def gil_held(self) -> bool:
        """True when waking up typically waited for a fair share of the switch interval."""
        if len(self.lateness) < 3:
            return True  # too short to tell: assume the common case, Python code
        return statistics.median(self.lateness) > GIL_HELD_LATENESS * sys.getswitchinterval()


def probe(
    job: Job, items: Iterator[Any], total: int | None, first: int = 0
) -> tuple[list[Any], list[Any], dict[int, BaseException], float, float, bool, bool]:
    """Run the first tasks here, in batches doubling from one, until PROBE_SECONDS of work.

    ``first``: the index of the first item (a checkpoint's first task to run). Returns
    (arguments, values, errors by position, wall seconds, CPU seconds, exhausted, GIL held).
    """
    args: list[Any] = []
    values: list[Any] = []
    errors: dict[int, BaseException] = {}
    wall = cpu = 0.0
    batch = 1
    exhausted = False
    with GilWatcher() as watcher:
        while wall < PROBE_SECONDS:
            if total is not None and first + len(args) >= total:
                exhausted = True
                break
            taken = [item for _, item in zip(range(batch), items, strict=False)]
            if not taken:
                exhausted = True
                break
            start, cpu_start = time.perf_counter(), time.thread_time()
            lo = first + len(args)
            got, failed, _ = run_chunk(job, range(lo, lo + len(taken)), taken)
            wall += time.perf_counter() - start
            cpu += time.thread_time() - cpu_start
            errors.update({len(args) + p: e for p, e in failed.items()})
            args += taken
            values += got
            if len(taken) < batch:
                exhausted = True
                break
            batch *= 2
    if total is not None and first + len(args) >= total:
        exhausted = True  # the probe's last batch took the rest
    return args, values, errors, wall, cpu, exhausted, watcher.gil_held()


def is_free_threaded() -> bool:
    check: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return check is not None and not check()


def interpreters_available() -> bool:
    """Whether this Python has subinterpreters with their own GIL (3.14+)."""
    return sys.version_info >= INTERPRETERS_PYTHON


def interpreters_refusal(job: Job, sample: list[Any]) -> str | None:
    """Why the job's function or its first argument cannot go to a subinterpreter, or None.

    Tried for real in a fresh subinterpreter (~10-20 ms), once per function: the verdict is
    kept for the function's pickle (arguments of one function are alike, as a rule).
    """
    from .._backends._interpreters._backend import refusal

    return refusal(job, sample)
