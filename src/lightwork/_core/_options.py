"""Validation of the options every entry point shares, so each bad value gets one clear message."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ._cpus import available_cpus
from ._errors import InvalidArgumentError, InvalidOptionError

BACKENDS = ("serial", "threads", "processes", "auto", "dask")
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


def check_callable(fn: object, what: str = "fn") -> None:
    if not callable(fn):
        raise InvalidArgumentError(f"{what} must be callable, not {type(fn).__name__} {fn!r:.80}")


def check_iterable(items: object, what: str = "iterable") -> Iterable[Any]:
    if not isinstance(items, Iterable):
        kind = type(items).__name__
        raise InvalidArgumentError(f"{what} must be iterable, not {kind} {items!r:.80}")
    return items


class RunOptions:
    """How the tasks of one call run: the per-call options of map, imap, starmap and submit.

    Validated by the ``check_`` functions above; never changed once made. (A plain class, as
    everything a pool's first result waits for: ``dataclasses`` takes ~5 ms to import.)
    """

    __slots__ = ("retries", "retry_on", "task_timeout")

    def __init__(
        self,
        retries: int = 1,
        retry_on: tuple[type[BaseException], ...] = (),
        task_timeout: float | None = None,
    ) -> None:
        self.retries = retries
        self.retry_on = retry_on
        self.task_timeout = task_timeout
