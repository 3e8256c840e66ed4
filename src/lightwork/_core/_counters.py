"""The running totals behind each worker's statistics, updated as chunks finish."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._stats import WorkerStatistics


class WorkerCounters:
    """The mutable totals behind a WorkerStatistics, updated by one thread only."""

    __slots__ = (
        "alive",
        "busy",
        "chunks",
        "deserialize",
        "idle",
        "pid",
        "serialize",
        "startup",
        "tasks",
        "worker",
    )

    def __init__(self, worker: int, pid: int | None = None) -> None:
        self.worker = worker
        self.pid = pid if pid is not None else os.getpid()
        self.tasks = self.chunks = 0
        self.busy = self.serialize = self.deserialize = self.idle = self.startup = 0.0
        self.alive = True

    def snapshot(self) -> WorkerStatistics:
        from ._stats import WorkerStatistics

        return WorkerStatistics(
            self.worker,
            self.pid,
            self.tasks,
            self.chunks,
            self.busy,
            self.serialize,
            self.deserialize,
            self.idle,
            self.startup,
            self.alive,
        )
