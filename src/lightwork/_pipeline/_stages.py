"""A pipeline's stages as declared: the function and its options, checked when declared."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from .._core._errors import InvalidArgumentError, InvalidOptionError
from .._core._options import CallOptions, check_callable
from .._engine._executor import Executor
from ._stats import StageStatistics

__all__ = ["Keep", "Stage", "StageOptions"]


class Keep:
    """A filter stage's task: ``(True, item)`` passes the item on, ``(False, None)`` drops it."""

    __slots__ = ("fn",)  # ``fn`` by that name: the process backend names it if it won't pickle

    def __init__(self, fn: Callable[[Any], object]) -> None:
        self.fn = fn

    def __call__(self, item: Any) -> tuple[bool, Any]:
        return (True, item) if self.fn(item) else (False, None)


class StageOptions(TypedDict, total=False):
    """The options of a ``map`` or ``filter`` stage; see :meth:`lightwork.Pipeline.map`."""

    backend: str  #: default "threads"
    max_workers: int | None  #: default None: the CPUs this process may use
    ordered: bool  #: default True
    chunksize: int | None  #: default None: one item per task
    retries: int  #: default 1
    retry_on: type[BaseException] | tuple[type[BaseException], ...]  #: default ()
    task_timeout: float | None  #: default None
    seed: int | None  #: default None
    progress: bool  #: default False: a tqdm bar for the stage


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline as declared: its function and options, already checked."""

    kind: str  # "map", "filter" or "batch"
    fn: Callable[[Any], Any] | None
    name: str
    batch: int = 0  # the list size, for a "batch" step
    backend: str = "threads"
    max_workers: int = 1  # resolved: None became the CPU count
    progress: bool = False  # the stage's own bar (see _progress), not a call's
    options: CallOptions | None = None  # how its tasks run, merged once when declared

    @classmethod
    def create(
        cls,
        kind: str,
        fn: Callable[[Any], Any],
        name: str | None,
        taken: set[str],
        options: StageOptions,
    ) -> Stage:
        check_callable(fn)
        unknown = sorted(set(options) - StageOptions.__optional_keys__)
        if unknown:
            raise InvalidArgumentError(
                f"Pipeline.{kind}() got an unexpected keyword argument {unknown[0]!r}"
            )
        if name is None:
            name = _unique(getattr(fn, "__name__", type(fn).__name__), taken)
        elif not isinstance(name, str):
            raise InvalidOptionError(f"name must be a str or None, not {name!r}")
        # The executor checks backend and max_workers, with its own messages; it starts
        # nothing yet. Its call options are the stage's, merged once.
        probe = Executor(options.get("max_workers"), backend=options.get("backend", "threads"))
        chunksize = options.get("chunksize")
        call = probe._options(
            ordered=options.get("ordered", True),
            chunksize=1 if chunksize is None else chunksize,  # why 1: see map()'s docstring
            retries=options.get("retries", 1),
            retry_on=options.get("retry_on", ()),
            task_timeout=options.get("task_timeout"),
            seed=options.get("seed"),
        )
        return cls(
            kind,
            Keep(fn) if kind == "filter" else fn,
            name,
            backend=probe.backend,
            max_workers=probe.max_workers,
            progress=bool(options.get("progress", False)),
            options=call,
        )

    def executor(self) -> Executor:
        return Executor(self.max_workers, backend=self.backend)

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
