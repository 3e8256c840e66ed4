"""Validation of the options every entry point shares, so each bad value gets one clear message."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from ._cpus import available_cpus
from ._errors import InvalidArgumentError, InvalidOptionError

BACKENDS = ("serial", "threads", "processes", "interpreters", "auto", "dask")
# The first Python whose standard library has concurrent.interpreters (subinterpreters with a
# GIL each), which backend="interpreters" needs.
INTERPRETERS_PYTHON = (3, 14)
START_METHODS = ("fork", "forkserver", "spawn")


def check_backend(backend: object) -> str:
    if backend not in BACKENDS:
        import difflib  # only on this error path

        close = (
            difflib.get_close_matches(backend, BACKENDS, n=1) if isinstance(backend, str) else []
        )
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InvalidOptionError(
            f"unknown backend {backend!r}: {hint}choose one of {', '.join(map(repr, BACKENDS))}"
        )
    if backend == "interpreters" and sys.version_info < INTERPRETERS_PYTHON:
        raise InvalidOptionError(
            "backend='interpreters' needs Python 3.14 or newer (its concurrent.interpreters: "
            "subinterpreters, each with its own GIL); this is Python "
            f"{sys.version_info.major}.{sys.version_info.minor}: use backend='processes'"
        )
    assert isinstance(backend, str)
    return backend


def check_max_workers(max_workers: object) -> int:
    if max_workers is None:
        return available_cpus()
    if isinstance(max_workers, bool) or not isinstance(max_workers, int):
        raise InvalidOptionError(f"max_workers must be a positive int or None, not {max_workers!r}")
    if max_workers <= 0:
        # The standard library's words, which code written for it may match on.
        raise InvalidOptionError(f"max_workers must be greater than 0, not {max_workers}")
    return max_workers


def check_chunksize(chunksize: object) -> int | None:
    if chunksize is None:
        return None
    if isinstance(chunksize, bool) or not isinstance(chunksize, int):
        raise InvalidOptionError(f"chunksize must be a positive int or None, not {chunksize!r}")
    if chunksize <= 0:
        raise InvalidOptionError(f"chunksize must be at least 1, not {chunksize}")
    return chunksize


def check_retries(retries: object) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidOptionError(f"retries must be an int >= 0, not {retries!r}")
    return retries


def check_timeout(name: str, seconds: object) -> float | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise InvalidOptionError(f"{name} must be a number of seconds > 0 or None, not {seconds!r}")
    return float(seconds)


def check_wait_timeout(seconds: object) -> float:
    """``Executor.map``'s ``timeout``: as in the standard library, 0 (or less) means results not
    ready at once raise ``TimeoutError``."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or math.isnan(seconds):
        raise InvalidOptionError(f"timeout must be a number of seconds or None, not {seconds!r}")
    return float(seconds)


def check_retry_on(retry_on: object) -> tuple[type[BaseException], ...]:
    types = (retry_on,) if isinstance(retry_on, type) else retry_on
    if not isinstance(types, tuple) or not all(
        isinstance(t, type) and issubclass(t, BaseException) for t in types
    ):
        raise InvalidOptionError(
            f"retry_on must be an exception type or a tuple of them, not {retry_on!r}"
        )
    return types


def check_seed(seed: object) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidOptionError(f"seed must be an int >= 0 or None, not {seed!r}")
    return seed


def check_start_method(start_method: object) -> str | None:
    if start_method is not None and start_method not in START_METHODS:
        raise InvalidOptionError(
            f"unknown start_method {start_method!r}: choose one of "
            f"{', '.join(map(repr, START_METHODS))} or None"
        )
    return None if start_method is None else str(start_method)


def check_native_threads(native_threads: object) -> int | None:
    if native_threads is None:
        return None
    if (
        isinstance(native_threads, bool)
        or not isinstance(native_threads, int)
        or native_threads <= 0
    ):
        raise InvalidOptionError(
            f"native_threads must be a positive int (threads per worker) or None (each "
            f"worker's share of the CPUs), not {native_threads!r}"
        )
    return native_threads


def check_callable(fn: object, what: str = "fn") -> None:
    if not callable(fn):
        raise InvalidArgumentError(f"{what} must be callable, not {type(fn).__name__} {fn!r:.80}")


def check_iterable(items: object, what: str = "iterable") -> Iterable[Any]:
    if not isinstance(items, Iterable):
        kind = type(items).__name__
        raise InvalidArgumentError(f"{what} must be iterable, not {kind} {items!r:.80}")
    return items


class Checkpoint:
    """Where a call keeps its outcomes (``checkpoint=``), and how it resumes.

    ``checkpoint="run.db"`` is ``Checkpoint("run.db")``. ``rerun_failed=False`` keeps the
    stored failures on resume (each is raised, or yielded with ``return_exceptions``, in its
    place) instead of running those tasks again; ``fresh=True`` deletes whatever the file held
    and starts over (the file, not its directory, is created).

    >>> import lightwork.checkpoint
    >>> lightwork.checkpoint.Checkpoint("run.db", rerun_failed=False)
    Checkpoint('run.db', rerun_failed=False, fresh=False)
    """

    __slots__ = ("fresh", "path", "rerun_failed")

    def __init__(
        self, path: str | os.PathLike[str], *, rerun_failed: bool = True, fresh: bool = False
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise InvalidOptionError(
                f"checkpoint must be a path (str or os.PathLike) or a lightwork.checkpoint."
                f"Checkpoint, not {type(path).__name__} {path!r:.80}"
            )
        self.path = os.fspath(path)
        if not self.path:
            raise InvalidOptionError("checkpoint must be a path to a file, not ''")
        self.rerun_failed = bool(rerun_failed)
        self.fresh = bool(fresh)

    def __repr__(self) -> str:
        return f"Checkpoint({self.path!r}, rerun_failed={self.rerun_failed}, fresh={self.fresh})"


def check_checkpoint(checkpoint: object) -> Checkpoint | None:
    if checkpoint is None or isinstance(checkpoint, Checkpoint):
        return checkpoint
    return Checkpoint(checkpoint)  # type: ignore[arg-type]  # (it checks the type)


class CallOptions:
    """The options of one call (``map``, ``imap``, ``starmap``, ``submit``): validated once,
    never changed.

    An executor holds its defaults, made from its constructor's ``retries``, ``retry_on``,
    ``task_timeout`` and ``seed``; a call merges its keywords into them with :meth:`merge`,
    which checks each option it is given, once, and names an unknown one. (A plain class, as
    everything a pool's first result waits for: ``dataclasses`` takes ~5 ms to import.)
    """

    __slots__ = (
        "checkpoint",
        "chunksize",
        "ordered",
        "progress",
        "retries",
        "retry_on",
        "return_exceptions",
        "seed",
        "task_timeout",
    )
    checkpoint: Checkpoint | None  #: where outcomes are kept, to resume (see Checkpoint)
    chunksize: int | None  #: None: measured
    ordered: bool
    progress: bool
    retries: int  #: re-runs of a task whose worker crashed or timed out
    retry_on: tuple[type[BaseException], ...]  #: exceptions of the task's own to retry too
    return_exceptions: bool
    seed: int | None
    task_timeout: float | None

    def __init__(self) -> None:
        """The defaults of every option; see :meth:`merge` to change them."""
        for name, value in _DEFAULT_OPTIONS.items():
            object.__setattr__(self, name, value)

    def merge(self, **changes: Any) -> CallOptions:
        """A copy with ``changes`` checked and applied."""
        unknown = sorted(set(changes) - set(_OPTION_CHECKS))
        if unknown:
            raise InvalidArgumentError(f"unknown option {unknown[0]!r}")
        merged = object.__new__(CallOptions)
        for name in self.__slots__:
            value = changes[name] if name in changes else getattr(self, name)
            if name in changes:
                value = _OPTION_CHECKS[name](value)
            object.__setattr__(merged, name, value)
        return merged

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"CallOptions are immutable: use merge({name}=...)")

    def __repr__(self) -> str:
        options = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"CallOptions({options})"


_DEFAULT_OPTIONS: dict[str, Any] = {
    "checkpoint": None,
    "chunksize": None,
    "ordered": True,
    "progress": False,
    "retries": 1,  # a worker lost to the OOM killer or a stray signal costs one re-run
    "retry_on": (),
    "return_exceptions": False,
    "seed": None,
    "task_timeout": None,
}

# Each option and how a given value is checked.
_OPTION_CHECKS: dict[str, Callable[[Any], Any]] = {
    "checkpoint": check_checkpoint,
    "chunksize": check_chunksize,
    "ordered": bool,
    "progress": bool,
    "retries": check_retries,
    "retry_on": check_retry_on,
    "return_exceptions": bool,
    "seed": check_seed,
    "task_timeout": lambda value: check_timeout("task_timeout", value),
}
