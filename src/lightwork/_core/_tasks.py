"""The units of work every backend handles: jobs, chunks and attempts (``_run`` runs them).

A *job* is one call (``map``, ``imap``, ``starmap``, or one ``submit``): a function, its options
and a sink for finished chunks. A *chunk* is a run of consecutive tasks of a job; it owns their
arguments until every task has an outcome. An *attempt* is a slice ``[lo, hi)`` of a chunk sent
to one worker: the whole chunk at first, the unfinished rest after a worker died.

    input items --(feeder: ChunkSizer)--> Chunk --> Attempt --> backend --> worker: run_chunk()
                                            ^                                     |
                                            +--- resolve(lo, values, errors) <----+
    Chunk fully resolved --> job.chunk_done(chunk) --> StreamJob queue / FutureJob future
"""

from __future__ import annotations

import itertools
import queue
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ._chunking import ChunkSizer
from ._options import CallOptions
from ._run import Work, add_task_note

_job_ids = itertools.count()


class Job(Work):
    """One call's function, options and sink; subclasses say what a finished chunk becomes.

    As a :class:`Work` it is what ``run_chunk`` runs; the rest is the parent's bookkeeping.
    """

    def __init__(self, fn: Callable[[Any], Any], options: CallOptions, entropy: int) -> None:
        # entropy: the seed, or fresh entropy (see lightwork._core._random)
        super().__init__(fn, options.retries, options.retry_on, entropy)
        self.id = next(_job_ids)
        self.options = options
        self.cancelled = False
        # Set by the process backend: the function pickled once for every worker.
        self.fn_payload: bytes | None = None
        self.spec_id = -1
        self.arrays: Any = None  # the process backend's large arrays of this call (CallArrays)
        self.on_close: list[Callable[[], None]] = []  # releases what the call held
        self.sizer: ChunkSizer | None = None

    def start(self) -> bool:
        """Called by a backend before it runs an attempt: False if the job was cancelled."""
        return not self.cancelled

    def measured(self, tasks: int, seconds: float) -> None:
        """A backend reports that ``tasks`` tasks took ``seconds`` of compute."""
        if self.sizer is not None:
            self.sizer.record(tasks, seconds)

    def measured_bytes(self, tasks: int, nbytes: int) -> None:
        """A backend reports that ``tasks`` tasks brought ``nbytes`` of new large arrays."""
        if self.sizer is not None:
            self.sizer.record_bytes(tasks, nbytes)

    def chunk_done(self, chunk: Chunk) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """The call is over: release what it held (shared-memory segments)."""
        while self.on_close:
            self.on_close.pop()()

    def cancel(self) -> None:
        """Drop this job's attempts that have not started; running ones finish unobserved."""
        self.cancelled = True

    def abort(self, error: BaseException) -> None:
        """The backend can no longer run this job: cancel it and tell whoever waits on it."""
        self.cancel()


class Chunk:
    """Consecutive tasks of one job, with their outcomes as they arrive."""

    __slots__ = (
        "args",
        "errors",
        "indices",
        "job",
        "retries_used",
        "seq",
        "unattributed_deaths",
        "unresolved",
        "values",
    )

    def __init__(self, job: Job, seq: int, indices: range, args: list[Any]) -> None:
        self.job = job
        self.seq = seq  # the chunk's rank in its job, for ordered output
        self.indices = indices  # the tasks' positions in the job's input
        self.args = args
        self.values: list[Any] = []  # filled by resolve(); errored positions hold None
        self.errors: dict[int, BaseException] = {}  # position in chunk -> exception
        self.retries_used: dict[int, int] = {}  # position -> crash or timeout retries spent
        # (lo, hi) of attempts whose worker died in them before any task was named: any of
        # those tasks may have been running then, uncharged.
        self.unattributed_deaths: list[tuple[int, int]] = []
        self.unresolved = len(args)

    def __len__(self) -> int:
        return len(self.args)

    def resolve(self, lo: int, values: list[Any], errors: dict[int, BaseException]) -> None:
        """Record the outcomes of positions ``lo .. lo + len(values)``; errors by position."""
        if lo == 0 and len(values) == len(self.args):
            self.values = values  # the common case: the whole chunk in one piece, no copy
        else:
            if not self.values:
                self.values = [None] * len(self.args)
            self.values[lo : lo + len(values)] = values
        self.errors.update(errors)
        self.unresolved -= len(values)
        if self.unresolved == 0:
            self.job.chunk_done(self)

    def charge_retry(self, position: int) -> bool:
        """The retry rule, for every backend: the task at ``position`` lost its worker (a
        crash) or its time (``task_timeout``). True: one of its ``retries`` is spent and it
        runs again; False: it has none left and is to fail. (A task's own exceptions are
        retried in place instead, see ``run_chunk``.)"""
        used = self.retries_used.get(position, 0)
        if used >= self.job.options.retries:
            return False
        self.retries_used[position] = used + 1
        return True

    def fail(self, position: int, error: BaseException, *, name_task: bool = True) -> None:
        """Give one position an error outcome (a crash, a timeout, a serialization failure);
        ``name_task``: note the task's index on it (not for a pool that ran no task at all)."""
        if name_task:
            add_task_note(error, self.indices[position])
        self.resolve(position, [None], {position: error})


class Attempt:
    """Positions ``lo .. hi`` of a chunk, sent to one worker."""

    __slots__ = ("chunk", "held", "hi", "lo", "payload", "per_task")

    def __init__(
        self,
        chunk: Chunk,
        lo: int,
        hi: int,
        payload: bytes | None = None,
        per_task: bool = False,
        held: Any = None,
    ) -> None:
        self.chunk = chunk
        self.lo = lo
        self.hi = hi
        self.payload = payload  # the pickled args[lo:hi], made by whoever sliced it
        self.held = held  # what the payload's large arrays need kept (processes backend)
        # Name each task in the worker's slot as it starts (see run_chunk): set on the re-run
        # of an attempt whose worker died somewhere in it, to find the task at fault.
        self.per_task = per_task

    def __len__(self) -> int:
        return self.hi - self.lo

    def indices(self) -> range:
        return self.chunk.indices[self.lo : self.hi]

    def args(self) -> list[Any]:
        args = self.chunk.args
        return args if self.lo == 0 and self.hi == len(args) else args[self.lo : self.hi]


class StreamJob(Job):
    """A map, imap or starmap call: finished chunks queue up for the consuming iterator."""

    def __init__(self, fn: Callable[[Any], Any], options: CallOptions, entropy: int) -> None:
        super().__init__(fn, options, entropy)
        # Finished chunks, or the error that ends the job early (the executor was terminated).
        self.done: queue.SimpleQueue[Chunk | BaseException] = queue.SimpleQueue()

    def chunk_done(self, chunk: Chunk) -> None:
        self.done.put(chunk)

    def abort(self, error: BaseException) -> None:
        super().abort(error)
        self.done.put(error)


class FutureJob(Job):
    """One ``submit``: its only chunk has one task whose outcome settles the future."""

    def __init__(
        self, fn: Callable[[Any], Any], options: CallOptions, entropy: int, future: Future[Any]
    ) -> None:
        super().__init__(fn, options, entropy)
        self.future = future

    def chunk_done(self, chunk: Chunk) -> None:
        if self.future.done():  # cancelled while its task ran
            return
        self.close()
        error = chunk.errors.get(0)
        if error is None:
            self.future.set_result(chunk.values[0])
        else:
            self.future.set_exception(error)

    def start(self) -> bool:
        if self.cancelled:
            return False
        if self.future.running():  # a retry after a crash or a timeout
            return True
        return self.future.set_running_or_notify_cancel()

    def cancel(self) -> None:
        super().cancel()
        self.future.cancel()

    def abort(self, error: BaseException) -> None:
        super().abort(error)
        self.close()
        if not self.future.done():
            self.future.set_exception(error)


def fail_attempt(attempt: Attempt, error: BaseException) -> None:
    """Fail every task of an attempt with (a copy of) one error: the pool cannot run it (no
    task is to blame, so none is named on it)."""
    for position in range(attempt.lo, attempt.hi):
        attempt.chunk.fail(position, copy_error(error), name_task=False)


def copy_error(error: BaseException) -> BaseException:
    """A fresh instance per task, so notes naming one task don't pile up on a shared object."""
    copy = type(error)(*error.args)
    copy.__cause__ = error.__cause__
    return copy
