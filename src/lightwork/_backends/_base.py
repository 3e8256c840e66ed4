"""What the Executor needs from a backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from .._core._chunking import MAX_CHUNK
from .._core._tasks import Attempt, Job

if TYPE_CHECKING:
    from .._core._stats import WorkerStatistics


class Backend(ABC):
    """Runs attempts and resolves their chunks; owns its workers.

    ``submit`` never blocks on a task and may be called from any thread. Outcomes arrive through
    ``Chunk.resolve``/``Chunk.fail``, from whichever thread the backend chooses.
    """

    name: ClassVar[str]
    #: chunks to keep in flight per worker: enough that a worker never waits for its next chunk
    lookahead: ClassVar[int] = 2
    #: what sending one chunk costs, roughly: chunks are sized to make it negligible
    dispatch_seconds: ClassVar[float] = 50e-6
    #: items in one chunk at most (see lightwork._core._chunking.MAX_CHUNK)
    max_chunk: ClassVar[int] = MAX_CHUNK
    #: a chunk size to use instead of measuring, for backends where measuring means nothing
    default_chunksize: ClassVar[int | None] = None
    workers: int

    def prepare(self, job: Job) -> None:  # noqa: B027 - most backends need nothing
        """Called once per job before its first submit (the process backend pickles fn)."""

    @abstractmethod
    def submit(self, attempt: Attempt) -> None: ...

    @abstractmethod
    def shutdown(self, wait: bool = True) -> None:
        """Stop taking work; with ``wait``, return once the workers have finished and exited."""

    def start_workers(self) -> None:  # noqa: B027 - nothing to start for some backends
        """Start every worker now and return once all are ready."""

    @abstractmethod
    def cancel_pending(self) -> None:
        """Drop queued attempts (their jobs are aborted); running ones finish."""

    @abstractmethod
    def terminate(self) -> None:
        """Stop at once: drop queued work, kill the workers and reap them (Ctrl-C)."""

    @abstractmethod
    def worker_statistics(self) -> list[WorkerStatistics]: ...

    def extra_statistics(self) -> tuple[int, int, int]:
        """(workers started, workers crashed, tasks retried)."""
        return (self.workers, 0, 0)
