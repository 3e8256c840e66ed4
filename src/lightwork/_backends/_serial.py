"""The serial backend: every task runs in the caller's thread, in order.

It is the reference semantics: every behavioural test runs on every backend and compares it
with this one. It cannot stop a running task, so it refuses ``task_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core._counters import WorkerCounters
from .._core._errors import WorkerInitializationError
from .._core._run import run_chunk
from .._core._tasks import Attempt, copy_error, fail_attempt
from ._base import Backend

if TYPE_CHECKING:
    from .._core._stats import WorkerStatistics


class SerialBackend(Backend):
    name = "serial"
    lookahead = 1  # a chunk runs inside submit(): look-ahead would only delay the first result

    def __init__(
        self,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        self.workers = 1
        self._initializer = initializer
        self._initargs = initargs
        self._counters = WorkerCounters(0)
        self._broken: WorkerInitializationError | None = None

    def submit(self, attempt: Attempt) -> None:
        if self._broken is not None:  # as the standard library's pools do, once broken
            raise copy_error(self._broken)
        chunk = attempt.chunk
        if not chunk.job.start():
            return
        if self._initializer is not None:
            initializer, self._initializer = self._initializer, None
            try:
                initializer(*self._initargs)
            except Exception as error:
                self._broken = WorkerInitializationError("the executor's initializer raised")
                self._broken.__cause__ = error
                fail_attempt(attempt, self._broken)
                return
        values, errors, seconds = run_chunk(chunk.job, attempt.indices(), attempt.args())
        counters = self._counters
        counters.tasks += len(values)
        counters.chunks += 1
        counters.busy += seconds
        chunk.job.measured(len(values), seconds)
        chunk.resolve(attempt.lo, values, {attempt.lo + p: e for p, e in errors.items()})

    def shutdown(self, wait: bool = True) -> None:
        self._counters.alive = False

    def cancel_pending(self) -> None:
        pass  # nothing waits: a chunk runs inside submit()

    def terminate(self) -> None:
        self.shutdown()

    def worker_statistics(self) -> list[WorkerStatistics]:
        return [self._counters.snapshot()]
