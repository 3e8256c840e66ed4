"""A joblib parallel backend named ``"lightwork"``: ``import lightwork.joblib`` registers it.

scikit-learn's ``n_jobs=`` and any code written on ``joblib.Parallel`` then run on lightwork's
workers without a changed line: a worker killed mid-run costs a retry instead of the run, one
Ctrl-C stops everything, ``task_timeout`` stops a stuck task::

    import joblib
    import lightwork.joblib  # registers the backend

    with joblib.parallel_config(backend="lightwork", n_jobs=2, retries=1, task_timeout=600):
        scores = cross_val_score(model, X, y, cv=5)

How a ``Parallel`` call flows::

    Parallel (caller's thread): batches the calls (joblib's auto batching), pre-dispatches
      --submit(batch)--> LightworkBackend --Executor.submit(batch)--> lightwork workers
    lightwork's supervisor: a batch's future is done --queue--> the callback thread
    callback thread: joblib's callback (progress output, retrieve, dispatch the next batch)

joblib's callback reads the caller's input and pickles the next batch: it runs on a thread of
this module's, never on the supervisor thread, which must stay free to watch the workers.

Options of ``parallel_config`` (and of ``Parallel(backend=LightworkBackend(...))``):
lightwork's pool options by their lightwork names (``retries``, ``retry_on``,
``task_timeout``, ``seed``, ``start_method``, ``max_tasks_per_worker``, ``initializer``,
``initargs``, ``native_threads``, ``address``, ``client``), ``inner_backend`` (the lightwork
backend the batches run on: ``"processes"`` by default, or ``"threads"``, ``"dask"``), and
joblib's ``inner_max_num_threads`` (lightwork's ``native_threads``).
"""

from __future__ import annotations

import functools
import multiprocessing
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._core._cpus import available_cpus
from ._core._errors import InvalidOptionError, MissingDependencyError
from ._engine._executor import Executor

if TYPE_CHECKING:
    from ._core._stats import ExecutorStatistics

try:
    import joblib
    from joblib._parallel_backends import (
        AutoBatchingMixin,
        FallbackToBackend,
        ParallelBackendBase,
        SequentialBackend,
        ThreadingBackend,
    )
except ImportError as error:
    raise MissingDependencyError(
        "lightwork.joblib needs joblib: pip install 'lightwork[joblib]'"
    ) from error

__all__ = ["LightworkBackend"]

# The options a lightwork Executor takes that make sense for joblib's calls (max_workers is
# joblib's n_jobs; backend is inner_backend).
EXECUTOR_OPTIONS = frozenset(
    {
        "retries",
        "retry_on",
        "task_timeout",
        "seed",
        "start_method",
        "max_tasks_per_worker",
        "initializer",
        "initargs",
        "native_threads",
        "address",
        "client",
    }
)
INNER_BACKENDS = ("processes", "threads", "dask")


class LightworkBackend(AutoBatchingMixin, ParallelBackendBase):  # type: ignore[misc]
    """joblib's ``"lightwork"`` backend: each batch of ``delayed`` calls is one lightwork task.

    joblib keeps its own meaning for ``n_jobs`` (negative: all CPUs but ``-n_jobs - 1``),
    ``batch_size``, ``pre_dispatch``, ``return_as``, ``timeout`` and ``verbose``. ``n_jobs=1``
    runs in the caller, as with loky, unless ``task_timeout`` is set (stopping a task needs a
    worker). Arrays of 1 MiB or more in a batch travel through shared memory, mapped read-only
    by the worker (joblib's ``max_nbytes=None`` turns that off). The pool stays warm between
    calls with the same settings, as loky's does.

    >>> import joblib, lightwork.joblib
    >>> with joblib.parallel_config(backend="lightwork", n_jobs=2, inner_backend="threads"):
    ...     print(joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(4)))
    [0, 1, 2, 3]
    """

    supports_retrieve_callback = True
    supports_inner_max_num_threads = True
    # joblib's auto batching, steered to lightwork's chunk target instead of loky's 0.2-2 s: a
    # batch costs lightwork tens of microseconds, not milliseconds, so shorter batches keep
    # the workers balanced at the end and the results in flight few, at no cost in speed
    # (bench/bench_joblib.py: 100,000 tiny calls took 0.6x the time of 0.2 s batches).
    MIN_IDEAL_BATCH_DURATION = 0.02  # lightwork._core._chunking.TARGET_CHUNK_SECONDS
    MAX_IDEAL_BATCH_DURATION = 0.2

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        *,
        inner_backend: str = "processes",
        **options: Any,
    ) -> None:
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads)
        if inner_backend not in INNER_BACKENDS:
            raise InvalidOptionError(
                f"inner_backend must be one of {', '.join(map(repr, INNER_BACKENDS))}, "
                f"not {inner_backend!r}"
            )
        unknown = sorted(set(options) - EXECUTOR_OPTIONS)
        if unknown:
            raise InvalidOptionError(
                f"the lightwork joblib backend got an unknown option {unknown[0]!r}: its options "
                f"are inner_backend, inner_max_num_threads, {', '.join(sorted(EXECUTOR_OPTIONS))}"
            )
        Executor(1, backend=inner_backend, **options)  # checks every value now, starts nothing
        self.inner_backend = inner_backend
        self.options = options
        self.uses_threads = inner_backend == "threads"
        self.supports_sharedmem = inner_backend == "threads"
        self._executor: Executor | None = None
        self._share_arrays = True
        self.parallel: Any = None

    # ---- what joblib asks ----------------------------------------------------------------------

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """The workers a call with this ``n_jobs`` gets (joblib's meaning of negatives)."""
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if multiprocessing.current_process().daemon and self.inner_backend == "processes":
            return 1  # a daemonic process can have no children
        if n_jobs < 0:
            return max(available_cpus() + 1 + n_jobs, 1)
        return int(n_jobs)

    def configure(
        self,
        n_jobs: int = 1,
        parallel: Any = None,
        prefer: str | None = None,
        require: str | None = None,
        *,
        max_nbytes: int | None = None,
        mmap_mode: str | None = "r",
        temp_folder: str | None = None,
        **ignored: Any,  # verbose (of loky's memmapping), context (multiprocessing's)
    ) -> int:
        """Get the pool ready for a ``Parallel`` call; the number of workers it has."""
        workers = self.effective_n_jobs(n_jobs)
        if workers == 1 and self.options.get("task_timeout") is None:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        if temp_folder is not None:
            raise InvalidOptionError(
                "temp_folder does not apply to the lightwork backend: large arrays go through "
                "shared memory (/dev/shm), not files"
            )
        if max_nbytes is not None and mmap_mode not in ("r", None):
            raise InvalidOptionError(
                f"mmap_mode={mmap_mode!r} is not supported by the lightwork backend: workers "
                "map large arrays read-only (mmap_mode='r'); pass max_nbytes=None to pickle "
                "them instead"
            )
        self._share_arrays = max_nbytes is not None
        self.parallel = parallel
        self._executor = _warm_executor(workers, self.inner_backend, self._pool_options(workers))
        return workers

    def submit(self, func: Callable[[], Any], callback: Callable[[Any], None] | None = None) -> Any:
        """Run one batch; ``callback(future)`` runs on the callback thread when it is done."""
        assert self._executor is not None, "configure() first"
        if self._share_arrays:
            # The batch is the task's function: arrays anywhere in it go by shared memory.
            future = self._executor.submit(func)
        else:
            future = self._executor.submit(_call, func)
        if callback is not None:
            future.add_done_callback(functools.partial(_callbacks.put, callback))
        return future

    def retrieve_result_callback(self, future: Any) -> Any:
        """The batch's results, or its exception (the task's own type)."""
        return future.result()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """Stop now (an error, a timeout, Ctrl-C): drop queued batches, kill the workers.
        The executor stays usable: new work starts new workers."""
        if self._executor is not None:
            self._executor.terminate()

    def terminate(self) -> None:
        """A ``Parallel`` call ended: the workers stay warm for the next one, as loky's do."""
        self.reset_batch_stats()

    def get_nested_backend(self) -> tuple[Any, int | None]:
        """A nested ``Parallel`` inside a batch: threads up to the worker's CPU share (its
        ``native_threads``), so sequential when that share is one CPU; deeper, sequential."""
        level = (self.nesting_level or 0) + 1
        if level > 1:
            return SequentialBackend(nesting_level=level), None
        return ThreadingBackend(nesting_level=level), self._native_threads(self._workers())

    def statistics(self) -> ExecutorStatistics:
        """The statistics of the pool this backend's calls ran on (``Executor.statistics()``):
        workers crashed and tasks retried, where the time went, ``native_threads``."""
        if self._executor is None:
            raise RuntimeError("no Parallel call has run on this backend yet")
        return self._executor.statistics()

    # ---- internals -----------------------------------------------------------------------------

    def _workers(self) -> int:
        return self._executor.max_workers if self._executor is not None else available_cpus()

    def _native_threads(self, workers: int) -> int:
        given = self.options.get("native_threads", self.inner_max_num_threads)
        return int(given) if given is not None else max(available_cpus() // workers, 1)

    def _pool_options(self, workers: int) -> dict[str, Any]:
        options = dict(self.options)
        if self.inner_max_num_threads is not None and self.inner_backend == "processes":
            native = options.setdefault("native_threads", self.inner_max_num_threads)
            if native != self.inner_max_num_threads:
                raise InvalidOptionError(
                    f"inner_max_num_threads={self.inner_max_num_threads} and "
                    f"native_threads={native} disagree: they are the same option, give one"
                )
        return options


def _call(batch: Callable[[], Any]) -> Any:
    return batch()


# ---- the warm pool -----------------------------------------------------------------------------

_warm_lock = threading.Lock()
_warm: tuple[tuple[Any, ...], Executor] | None = None


def _warm_executor(workers: int, backend: str, options: dict[str, Any]) -> Executor:
    """The pool for these settings: the last one made if it matches (calls in a loop, a
    grid search's many fits, reuse it), else a new one. A pool replaced here is shut down
    once no backend holds it."""
    global _warm
    key = (workers, backend, sorted(options.items(), key=lambda kv: kv[0]))
    with _warm_lock:
        if _warm is not None and _same(_warm[0], key):
            return _warm[1]
        executor = Executor(workers, backend=backend, **options)
        _warm = (key, executor)
        return executor


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    try:
        return bool(a == b)
    except Exception:  # an option whose == is unusual (an array as initargs): a new pool
        return False


# ---- the callback thread -----------------------------------------------------------------------


class _Callbacks:
    """One daemon thread running joblib's callbacks, in the order their batches finished."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[Any], None], Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, callback: Callable[[Any], None], future: Any) -> None:
        self._queue.put((callback, future))
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="lightwork-joblib-callbacks", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            callback, future = self._queue.get()
            try:
                callback(future)
            except Exception:  # joblib records a batch's own failure: this is joblib's bug
                import traceback

                traceback.print_exc()  # said, as concurrent.futures says it; keep serving


_callbacks = _Callbacks()

joblib.register_parallel_backend("lightwork", LightworkBackend)
