"""``lightwork.map``, ``imap`` and ``starmap``: one call, on a warm pool.

Like joblib's reuse of its loky executor, the pool outlives the call, so a notebook or a loop
calling ``lightwork.map`` repeatedly pays process start-up once. There is one warm pool per
(backend, max_workers); a call with other options gets its own, and beyond the
``MAX_IDLE_POOLS`` most recently used, the pools no call is using are shut down. Every pool is
shut down cleanly at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypedDict, TypeVar, Unpack, cast

from .._core._errors import InvalidArgumentError
from .._core._options import (
    Checkpoint,
    check_callable,
    check_max_workers,
    check_native_threads,
)
from .._core._run import Star
from ._executor import Executor, Results

T = TypeVar("T")
R = TypeVar("R")


class CallKwargs(TypedDict, total=False):
    """The per-call options of Executor.imap and starmap, beyond the fixed five."""

    retries: int  #: re-runs of a task whose worker crashed or timed out (default 1; see Executor)
    retry_on: type[BaseException] | tuple[type[BaseException], ...]  #: also retry these
    task_timeout: float | None  #: seconds a task may run before it is stopped
    seed: int | None  #: makes lightwork.rng() and lightwork.random() reproducible
    return_exceptions: bool  #: yield a failed task's exception instead of raising it
    checkpoint: str | os.PathLike[str] | Checkpoint | None  #: keep outcomes there, to resume


class RunKwargs(CallKwargs, total=False):
    """The options of lightwork.map, imap and starmap, beyond the fixed five."""

    address: str | None  #: backend="dask": a running scheduler, "tcp://host:8786"
    client: Any  #: backend="dask": an existing distributed.Client
    native_threads: int | None  #: process workers' BLAS/OpenMP threads (see Executor)


_OPTIONS = RunKwargs.__optional_keys__


def _split(caller: str, options: RunKwargs) -> tuple[str | None, Any, int | None, CallKwargs]:
    """(address, client, native_threads, the rest): the first three pick the warm pool, the
    rest go per call."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise InvalidArgumentError(
            f"lightwork.{caller}() got an unexpected keyword argument {unknown[0]!r}: its "
            f"options are backend, max_workers, chunksize, ordered, progress, "
            f"{', '.join(sorted(_OPTIONS))}; pool options such as start_method or initializer "
            "belong to lightwork.Executor"
        )
    rest: dict[str, Any] = dict(options)
    address: str | None = rest.pop("address", None)
    client: Any = rest.pop("client", None)
    native_threads: int | None = rest.pop("native_threads", None)
    return address, client, native_threads, cast(CallKwargs, rest)


# Warm pools kept besides the one in use: enough to alternate between a few option sets
# (processes and threads, 1 and 2 workers) without restarting processes on every call.
MAX_IDLE_POOLS = 3

_lock = threading.Lock()
_WarmKey = tuple[str, int | None, str | None, int | None, int | None]
_warm: dict[_WarmKey, Executor] = {}
_users: dict[_WarmKey, int] = {}
_parents_pools: list[Executor] = []  # in a forked child: the parent's, never used nor shut down


def _forget_parents_pools() -> None:
    """In a forked child, the warm pools are the parent's: their threads did not come along,
    and shutting them down would stop the parent's workers. Put them aside (dropping them
    would run their finalizers) so the child's first call makes pools of its own."""
    global _lock
    _lock = threading.Lock()  # (another thread may have held it at the fork)
    _parents_pools.extend(_warm.values())
    _warm.clear()
    _users.clear()


os.register_at_fork(after_in_child=_forget_parents_pools)


@contextmanager
def warm_executor(
    backend: str,
    max_workers: int | None,
    address: str | None = None,
    client: Any = None,
    native_threads: int | None = None,
) -> Iterator[Executor]:
    """The warm pool that ``map``, ``imap`` and ``starmap`` use for these options, held for
    the ``with`` block: the engine's way in for the features built on it (the workloads use it
    to read the pool's statistics after a run), so that they share the callers' warm pools."""
    # (the rest are checked once, by the Executor made for a new key; these two first, as
    # True or 2.0 would otherwise find the warm pool of 1 or 2, being equal to them)
    if max_workers is not None:
        check_max_workers(max_workers)
    check_native_threads(native_threads)
    key = (backend, max_workers, address, None if client is None else id(client), native_threads)
    with _lock:
        executor = _warm.get(key)
        if executor is None:
            pool: dict[str, Any] = {}
            if backend == "dask":
                pool.update(address=address, client=client)
            if native_threads is not None:
                pool["native_threads"] = native_threads
            executor = _warm[key] = Executor(max_workers, backend=backend, **pool)
        _users[key] = _users.get(key, 0) + 1
        _warm[key] = _warm.pop(key)  # the most recently used last
        idle = [k for k in _warm if k != key and not _users.get(k)]
        retired = [_warm.pop(k) for k in idle[: max(0, len(idle) - MAX_IDLE_POOLS)]]
    for old in retired:  # the least recently used idle pools would only hold processes
        old.shutdown(wait=False)
    try:
        yield executor
    finally:
        with _lock:
            _users[key] -= 1


def map(
    fn: Callable[[T], R],
    iterable: Iterable[T],
    *,
    backend: str = "processes",
    max_workers: int | None = None,
    chunksize: int | None = None,
    ordered: bool = True,
    progress: bool = False,
    **options: Unpack[RunKwargs],
) -> list[R]:
    """``[fn(x) for x in iterable]`` in parallel, on a warm pool of workers.

    ``backend``: ``"processes"`` (default: CPU-bound Python), ``"threads"`` (I/O, NumPy, code
    that releases the GIL), ``"interpreters"`` (Python 3.14+: CPU-bound pure Python in
    subinterpreters of this process), ``"auto"``, ``"serial"`` or ``"dask"`` (a Dask cluster:
    ``address=`` of a scheduler, ``client=``, or a local one). ``max_workers=None`` uses the
    CPUs this process may use. ``chunksize=None`` sizes chunks by measuring the tasks.
    ``ordered=False`` returns results in completion order. ``progress=True`` shows a tqdm bar.
    The remaining options are those of :meth:`Executor.imap`: ``retries``, ``retry_on``,
    ``task_timeout``, ``seed``, ``return_exceptions`` and ``checkpoint`` (a SQLite file that
    keeps each outcome: run the same call again and it skips what is stored; see
    :mod:`lightwork.checkpoint`); and ``native_threads`` (see :class:`Executor`), which picks a
    warm pool of its own.

    >>> import lightwork
    >>> lightwork.map(abs, [-3, -2, -1], backend="threads")
    [3, 2, 1]
    """
    address, client, native_threads, call_options = _split("map", options)
    with warm_executor(backend, max_workers, address, client, native_threads) as executor:
        merged = executor._options(
            chunksize=chunksize, ordered=ordered, progress=progress, **call_options
        )
        return list(executor._stream(fn, iterable, merged))


def starmap(
    fn: Callable[..., R],
    iterable: Iterable[Iterable[Any]],
    *,
    backend: str = "processes",
    max_workers: int | None = None,
    chunksize: int | None = None,
    ordered: bool = True,
    progress: bool = False,
    **options: Unpack[RunKwargs],
) -> list[R]:
    """``[fn(*args) for args in iterable]`` in parallel, like ``Pool.starmap``.

    >>> import lightwork
    >>> lightwork.starmap(pow, [(2, 2), (4, 3), (5, 5)], backend="threads")
    [4, 64, 3125]
    """
    address, client, native_threads, call_options = _split("starmap", options)
    check_callable(fn)
    with warm_executor(backend, max_workers, address, client, native_threads) as executor:
        merged = executor._options(
            chunksize=chunksize, ordered=ordered, progress=progress, **call_options
        )
        return list(executor._stream(Star(fn), iterable, merged))


def imap(
    fn: Callable[[T], R],
    iterable: Iterable[T],
    *,
    backend: str = "processes",
    max_workers: int | None = None,
    chunksize: int | None = None,
    ordered: bool = True,
    progress: bool = False,
    **options: Unpack[RunKwargs],
) -> Results[R]:
    """Lazily yield ``fn(x)`` for each ``x``: input is read only as results are consumed.

    A generator of any length, endless included, runs in constant memory; ``ordered=False``
    yields in completion order.

    >>> import itertools, lightwork
    >>> squares = lightwork.imap(abs, itertools.count(-2), backend="threads")
    >>> [next(squares) for _ in range(4)]
    [2, 1, 0, 1]
    """
    address, client, native_threads, call_options = _split("imap", options)
    context = warm_executor(backend, max_workers, address, client, native_threads)
    executor = context.__enter__()

    def release() -> None:
        context.__exit__(None, None, None)

    try:
        merged = executor._options(
            chunksize=chunksize, ordered=ordered, progress=progress, **call_options
        )
        return executor._stream(fn, iterable, merged, on_done=release)
    except BaseException:
        release()
        raise


@atexit.register
def _shutdown_warm_pools() -> None:
    with _lock:
        pools = list(_warm.values())
        _warm.clear()
    for executor in pools:
        executor.shutdown(wait=True)
