"""lightwork and its peers' pools behind one interface: what ``lightwork bench`` and the
benchmarks in ``bench/`` compare.

Each factory is a context manager that yields a :class:`Runner` over one live pool (created on
entry, shut down on exit). A peer that is not installed raises ImportError on entry, which the
caller reports as a skipped row. Peers are imported on entry only: ``import lightwork.lab``
stays cheap, and a missing peer fails its own row, not the module.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .._engine._executor import Executor

__all__ = [
    "Runner",
    "ipe_pool",
    "joblib_pool",
    "lightwork_pool",
    "mp_pool",
    "mpire_pool",
    "ppe_pool",
    "tpe_pool",
    "tuned_chunksize",
]

# One map on a live pool: (fn, items, chunksize) -> [fn(x) for x in items].
MapFunction = Callable[[Callable[[Any], Any], Sequence[Any], int | None], list[Any]]


class Runner:
    """One live pool: ``runner(fn, items, chunksize)`` returns ``[fn(x) for x in items]``,
    computed by the pool; ``chunksize=None`` leaves it the pool's own default.

    ``stats``, for lightwork's pools, returns the executor's statistics (chunks done, ...).
    """

    def __init__(self, map_fn: MapFunction, stats: Callable[[], Any] | None = None) -> None:
        self._map = map_fn
        self.stats = stats

    def __call__(
        self, fn: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None = None
    ) -> list[Any]:
        return self._map(fn, items, chunksize)


def tuned_chunksize(n_items: int, workers: int) -> int:
    """``multiprocessing.Pool.map``'s own default: four chunks per worker."""
    return max(1, -(-n_items // (4 * workers)))


@contextmanager
def lightwork_pool(
    workers: int, backend: str = "processes", start_method: str | None = None
) -> Iterator[Runner]:
    """``lightwork.Executor(workers, backend=..., start_method=...).imap``, workers started."""
    with Executor(workers, backend=backend, start_method=start_method) as executor:
        executor.start()

        def run(fn: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None) -> list[Any]:
            return list(executor.imap(fn, items, chunksize=chunksize))

        yield Runner(run, executor.statistics)


@contextmanager
def mp_pool(workers: int, start_method: str) -> Iterator[Runner]:
    """``multiprocessing.Pool(workers).map``."""
    pool = multiprocessing.get_context(start_method).Pool(workers)
    try:

        def run(fn: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None) -> list[Any]:
            return pool.map(fn, items, chunksize)

        yield Runner(run)
    finally:
        pool.close()
        pool.join()


@contextmanager
def ppe_pool(workers: int, start_method: str) -> Iterator[Runner]:
    """``concurrent.futures.ProcessPoolExecutor.map`` (its default chunksize is 1)."""
    context = multiprocessing.get_context(start_method)
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as executor:

        def run(fn: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None) -> list[Any]:
            return list(executor.map(fn, items, chunksize=chunksize or 1))

        yield Runner(run)


@contextmanager
def tpe_pool(workers: int) -> Iterator[Runner]:
    """``concurrent.futures.ThreadPoolExecutor.map`` (it has no chunks: ``chunksize`` is unused)."""
    with concurrent.futures.ThreadPoolExecutor(workers) as executor:

        def run(fn: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None) -> list[Any]:
            return list(executor.map(fn, items))

        yield Runner(run)


@contextmanager
def ipe_pool(workers: int) -> Iterator[Runner]:
    """``concurrent.futures.InterpreterPoolExecutor.map`` (Python 3.14+): one call per item."""
    executor_type: Any = getattr(concurrent.futures, "InterpreterPoolExecutor", None)
    if executor_type is None:
        raise ImportError("InterpreterPoolExecutor needs Python 3.14")
    with executor_type(workers) as executor:

        def run(fn: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None) -> list[Any]:
            return list(executor.map(fn, items))

        yield Runner(run)


@contextmanager
def joblib_pool(workers: int) -> Iterator[Runner]:
    """``joblib.Parallel(n_jobs=workers)`` (loky, automatic batching), reused in a with-block."""
    import joblib

    with joblib.Parallel(n_jobs=workers) as parallel:

        def run(fn: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None) -> list[Any]:
            if chunksize is not None:
                raise ValueError("joblib rows use joblib's automatic batching")
            return list(parallel(joblib.delayed(fn)(x) for x in items))

        yield Runner(run)


@contextmanager
def mpire_pool(workers: int, start_method: str) -> Iterator[Runner]:
    """``mpire.WorkerPool(n_jobs=workers, keep_alive=True).map``: workers survive between maps."""
    from mpire.pool import WorkerPool

    pool = WorkerPool(n_jobs=workers, start_method=start_method, keep_alive=True)
    try:

        def run(fn: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None) -> list[Any]:
            result: list[Any] = pool.map(fn, _mpire_items(items), chunk_size=chunksize)
            return result

        yield Runner(run)
    finally:
        pool.stop_and_join()
        pool.terminate()


def _mpire_items(items: Sequence[Any]) -> Sequence[Any]:
    """mpire calls ``fn(*item)`` for a tuple item and ``fn(**item)`` for a dict: such items go
    in 1-tuples, so that ``fn`` gets the item itself. The items of one map are of one kind (as
    every workload's are), so the first tells, and a map of plain items pays no copy."""
    if items and isinstance(items[0], (tuple, dict)):
        return [(x,) for x in items]
    return items
