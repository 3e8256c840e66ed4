"""Statistics: small frozen snapshots of where the time went, made by ``statistics()``.

Backends keep the running totals in ``_counters``, which imports this module only when a
snapshot is taken: ``dataclasses`` takes ~5 ms to import, and a pool's first result need not
wait for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WorkerStatistics:
    """One worker's totals since it started (a replaced worker gets a new entry)."""

    worker: int  #: the worker's number in its executor, from 0
    pid: int  #: the worker's process id (the parent's for thread and serial workers)
    tasks: int  #: tasks finished, with or without error
    chunks: int  #: chunks (messages of tasks) finished
    busy_seconds: float  #: time spent running tasks
    serialize_seconds: float  #: time spent pickling results (process workers)
    deserialize_seconds: float  #: time spent unpickling functions and arguments
    idle_seconds: float  #: time spent waiting for work
    startup_seconds: float  #: from being started to ready for work (initializer included)
    alive: bool  #: False once the worker exited, crashed or was replaced


@dataclass(frozen=True)
class AutoChoice:
    """What ``backend="auto"`` chose for a call, and why: ``Executor.statistics().auto``."""

    backend: str  #: "serial", "threads", "processes" or (Python 3.14+) "interpreters"
    reason: str  #: one sentence a person can check
    seconds_per_task: float  #: measured in the probe
    cpu_share: float  #: thread CPU time / wall time in the probe (1.0: pure compute)
    gil_held: bool  #: the watcher found the GIL held while tasks ran
    probed_tasks: int
    workers: int = 1  #: the threads, processes or interpreters it runs the rest on (1: serial)


@dataclass(frozen=True)
class ExecutorStatistics:
    """What an executor has done: ``Executor.statistics()``."""

    backend: str
    max_workers: int
    tasks_done: int
    chunks_done: int
    workers_started: int  #: includes replacements for crashed and recycled workers
    workers_crashed: int
    tasks_retried: int  #: re-runs after a crash or a timeout
    workers: tuple[WorkerStatistics, ...] = field(default=())
    #: with backend="auto": what the last call chose and why
    auto: AutoChoice | None = None
    #: the threads each process worker's native pools (BLAS, OpenMP) may start; None: not a
    #: process pool, or left to the OMP_NUM_THREADS-style variables the environment sets
    native_threads: int | None = None

    @property
    def busy_seconds(self) -> float:
        """Time all workers spent running tasks."""
        return sum(w.busy_seconds for w in self.workers)

    @property
    def startup_seconds(self) -> float:
        """Time all workers spent starting up."""
        return sum(w.startup_seconds for w in self.workers)
