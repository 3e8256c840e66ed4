"""A pipeline stage's progress bar, which points at the bottleneck."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .._core._progress import ProgressBar, progress_bar

if TYPE_CHECKING:
    from .._engine._executor import Executor
    from ._buffer import Buffer
    from ._stages import Stage

__all__ = ["StageBar"]

# How often a progress bar's postfix (busy share, input buffer fill) is refreshed: reading the
# executor's statistics on every item would cost more than a tiny task.
PROGRESS_REFRESH_SECONDS = 0.25


class StageBar:
    """A stage's progress bar (tqdm imported only if asked for): items done, with its busy
    share and its input buffer's fill, which together point at the bottleneck: a full input
    and ~100% busy is the slow stage; an empty input means an earlier stage is slower."""

    def __init__(
        self,
        position: int,
        stage: Stage,
        executor: Executor,
        inbox: Buffer | None,
        started: float,
    ) -> None:
        self._bar: ProgressBar | None = None
        if not stage.progress:
            return
        self._bar = progress_bar(None, stage.name, unit="item", position=position)
        self._executor = executor
        self._capacity = stage.max_workers
        self._inbox = inbox
        self._started = started
        self._next_refresh = 0.0

    def update(self) -> None:
        bar = self._bar
        if bar is None:
            return
        bar.update()
        now = time.monotonic()
        if now < self._next_refresh:
            return
        self._next_refresh = now + PROGRESS_REFRESH_SECONDS
        busy = self._executor.statistics().busy_seconds
        share = busy / max(self._capacity * (now - self._started), 1e-9)
        postfix = f"busy {share:.0%}"
        if self._inbox is not None:
            postfix += f", input {len(self._inbox)}/{self._inbox.capacity}"
        bar.set_postfix_str(postfix, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
