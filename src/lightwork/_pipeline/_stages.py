"""A pipeline's stages as declared: the function and its options, checked when declared."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._core._errors import InvalidOptionError
from .._core._options import check_callable, check_chunksize
from .._engine._executor import Executor
from ._stats import StageStatistics

__all__ = ["Keep", "Stage"]


class Keep:
    """A filter stage's task: ``(True, item)`` passes the item on, ``(False, None)`` drops it."""

    __slots__ = ("fn",)  # ``fn`` by that name: the process backend names it if it won't pickle

    def __init__(self, fn: Callable[[Any], object]) -> None:
        self.fn = fn

    def __call__(self, item: Any) -> tuple[bool, Any]:
        return (True, item) if self.fn(item) else (False, None)


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline as declared: its function and options, already checked."""

    kind: str  # "map", "filter" or "batch"
    fn: Callable[[Any], Any] | None
    name: str
    batch: int = 0  # the list size, for a "batch" step
    backend: str = "threads"
    max_workers: int = 1  # resolved: None became the CPU count
    ordered: bool = True
    chunksize: int = 1
    progress: bool = False
    retries: int = 1
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = ()
    task_timeout: float | None = None
    seed: int | None = None

    @classmethod
    def create(
        cls,
        kind: str,
        fn: Callable[[Any], Any],
        name: str | None,
        *,
        backend: str,
        max_workers: int | None,
        ordered: bool,
        chunksize: int | None,
        retries: int,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
        task_timeout: float | None,
        seed: int | None,
        progress: bool,
        taken: set[str],
    ) -> Stage:
        check_callable(fn)
        if name is None:
            name = _unique(getattr(fn, "__name__", type(fn).__name__), taken)
        elif not isinstance(name, str):
            raise InvalidOptionError(f"name must be a str or None, not {name!r}")
        stage = cls(
            kind,
            Keep(fn) if kind == "filter" else fn,
            name,
            backend=backend,
            max_workers=0,
            ordered=bool(ordered),
            chunksize=check_chunksize(chunksize) or 1,  # why 1: see map()'s docstring
            progress=bool(progress),
            retries=retries,
            retry_on=retry_on,
            task_timeout=task_timeout,
            seed=seed,
        )
        # The executor checks its own options, with its own messages; it starts nothing yet.
        probe = stage._executor(max_workers)
        return dataclasses.replace(stage, backend=probe.backend, max_workers=probe.max_workers)

    def executor(self) -> Executor:
        return self._executor(self.max_workers)

    def _executor(self, max_workers: int | None) -> Executor:
        return Executor(
            max_workers,
            backend=self.backend,
            retries=self.retries,
            retry_on=self.retry_on,
            task_timeout=self.task_timeout,
            seed=self.seed,
        )

    def describe(self) -> str:
        if self.kind == "batch":
            return self.name
        return f"{self.kind}({self.name!r}, backend={self.backend!r})"

    def idle_statistics(self) -> StageStatistics:
        return StageStatistics(
            self.name, self.kind, self.backend, self.max_workers, 0, 0, 0.0, 0.0, 0.0, 0.0, None
        )


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    return next(f"{name}#{n}" for n in itertools.count(2) if f"{name}#{n}" not in taken)
