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
      --submit(batch)--> LightworkBackend --Executor.submit(_Batch(batch))--> lightwork workers
                         (a generator's batches park here while its reader lags behind)
    lightwork's supervisor: a batch's future is done --queue--> the callback thread
    callback thread: joblib's callback (progress output, retrieve, dispatch the next batch);
                     sends parked batches once the reader made room

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

import concurrent.futures
import functools
import multiprocessing
import queue
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._core._cpus import available_cpus
from ._core._errors import InvalidOptionError, MissingDependencyError

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

if TYPE_CHECKING:  # the engine loads at the first Parallel call: a worker imports this module
    from ._core._stats import ExecutorStatistics
    from ._engine._executor import Executor

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
# What every Parallel passes its backend's configure() that means nothing here: the verbosity
# of loky's memmapping and a multiprocessing context (lightwork's is start_method).
IGNORED_PARALLEL_KEYWORDS = frozenset({"verbose", "context"})
# A generator's results that may wait for their reader, per worker, before its next batches
# are held back (see LightworkBackend.submit): twice what joblib's pre_dispatch keeps going.
BATCHES_AHEAD_PER_WORKER = 4
# How often the callback thread looks whether a reader made room for held-back batches.
PARKED_POLL_SECONDS = 0.005


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
    # batch costs lightwork tens of microseconds, not milliseconds, so shorter batches cost
    # nothing in speed (bench/bench_joblib.py: 100,000 tiny calls in 364 against 348 ms, within
    # this machine's noise) and keep fewer results in flight and the workers balanced at the end.
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
        _check_options(inner_backend, options)
        self.inner_backend = inner_backend
        self.options = options
        self.uses_threads = inner_backend == "threads"
        self.supports_sharedmem = inner_backend == "threads"
        # The pool of the Parallel call under way (None between calls: joblib's convention,
        # which its own tests read), and the last one, for statistics().
        self._workers: Executor | None = None
        self._last: Executor | None = None
        self._pool_settings: dict[str, Any] = {}  # the options the pool was made with
        self._share_arrays = True
        self.parallel: Any = None
        # A generator's batches held back until its reader catches up (see submit).
        self._parked: deque[tuple[Callable[[], Any], Callable[[Any], None]]] = deque()
        self._parked_lock = threading.Lock()

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
        **keywords: Any,
    ) -> int:
        """Get the pool ready for a ``Parallel`` call; the number of workers it has.

        ``keywords``: lightwork's options given to ``Parallel`` itself (joblib hands them on),
        ``Parallel(initializer=..., initargs=...)`` among them; they add to the backend's."""
        workers = self.effective_n_jobs(n_jobs)
        if workers == 1:
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
        extra = {k: v for k, v in keywords.items() if k not in IGNORED_PARALLEL_KEYWORDS}
        options = {**self.options, **extra}
        if extra:
            _check_options(self.inner_backend, options)
        self._share_arrays = max_nbytes is not None
        self.parallel = parallel
        self._pool_settings = self._pool_options(options)
        self._workers = self._last = _warm_executor(
            workers, self.inner_backend, self._pool_settings
        )
        return workers

    def submit(self, func: Callable[[], Any], callback: Callable[[Any], None] | None = None) -> Any:
        """Run one batch; ``callback(future)`` runs on the callback thread when it is done.

        A generator's batches wait here (parked) while more than BATCHES_AHEAD_PER_WORKER x
        n_jobs results wait for their reader: joblib dispatches a batch whenever one
        finishes, read or not, so over an endless input a slow reader would otherwise see
        results pile up without bound."""
        if callback is None or not self._runs_ahead():
            return self._send(func, callback)
        placeholder: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._parked_lock:
            self._parked.append((func, callback))
        _callbacks.watch(self)
        return placeholder  # joblib keeps it; the callback gets the batch's real future

    def _send(self, func: Callable[[], Any], callback: Callable[[Any], None] | None) -> Any:
        workers = self._workers
        if workers is None:  # the call was stopped meanwhile, from another thread
            stopped: concurrent.futures.Future[Any] = concurrent.futures.Future()
            stopped.cancel()
            return stopped
        # As the task's function, a batch's arrays go by shared memory wherever they are in it.
        future = workers.submit(_Batch(func)) if self._share_arrays else workers.submit(_call, func)
        if callback is not None:
            future.add_done_callback(functools.partial(_callbacks.put, callback))
        return future

    def _runs_ahead(self) -> bool:
        """Whether a generator's reader has more results waiting than it should."""
        parallel = self.parallel
        if parallel is None or not getattr(parallel, "return_generator", False):
            return False  # a list: joblib reads every result as it comes
        unread = parallel._jobs if parallel.return_ordered else parallel._jobs_set
        workers = self._workers.max_workers if self._workers is not None else 1
        return bool(self._parked) or len(unread) > BATCHES_AHEAD_PER_WORKER * workers

    def release_parked(self) -> bool:
        """Send the parked batches the reader has made room for; whether some still wait.
        (Called by the callback thread, which polls while any backend has some.)"""
        while True:
            with self._parked_lock:
                if not self._parked:
                    return False
                parallel = self.parallel
                unread = parallel._jobs if parallel.return_ordered else parallel._jobs_set
                workers = self._workers.max_workers if self._workers is not None else 1
                if len(unread) > BATCHES_AHEAD_PER_WORKER * workers:
                    return True
                func, callback = self._parked.popleft()
            self._send(func, callback)

    def retrieve_result_callback(self, future: Any) -> Any:
        """The batch's results, or its exception (the task's own type)."""
        return future.result()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """Stop now (an error, a timeout, Ctrl-C): drop queued batches, kill the workers; with
        ``ensure_ready``, a fresh pool for the calls to come (its workers start as needed)."""
        with self._parked_lock:
            self._parked.clear()
        stopped = self._workers
        if stopped is None:
            return
        stopped.terminate()
        _forget(stopped)
        self._workers = None
        if ensure_ready:
            self._workers = self._last = _warm_executor(
                stopped.max_workers, self.inner_backend, self._pool_settings
            )

    def terminate(self) -> None:
        """A ``Parallel`` call ended: the pool stays warm for the next one, as loky's does."""
        self._workers = None
        self.reset_batch_stats()

    def statistics(self) -> ExecutorStatistics:
        """The statistics of the pool this backend's last call ran on (``Executor.statistics``):
        workers crashed and tasks retried, where the time went, ``native_threads``."""
        if self._last is None:
            raise RuntimeError("no Parallel call has run on this backend yet")
        return self._last.statistics()

    def get_nested_backend(self) -> tuple[Any, int | None]:
        """A nested ``Parallel`` inside a batch: threads up to the worker's CPU share (its
        ``native_threads``), so sequential when that share is one CPU; deeper, sequential."""
        level = (self.nesting_level or 0) + 1
        if level > 1:
            return SequentialBackend(nesting_level=level), None
        return ThreadingBackend(nesting_level=level), self._native_threads(
            self._last.max_workers if self._last is not None else available_cpus()
        )

    # ---- internals -----------------------------------------------------------------------------

    def _native_threads(self, workers: int) -> int:
        given = self.options.get("native_threads", self.inner_max_num_threads)
        return int(given) if given is not None else max(available_cpus() // workers, 1)

    def _pool_options(self, given: dict[str, Any]) -> dict[str, Any]:
        options = dict(given)
        if self.inner_max_num_threads is not None and self.inner_backend == "processes":
            native = options.setdefault("native_threads", self.inner_max_num_threads)
            if native != self.inner_max_num_threads:
                raise InvalidOptionError(
                    f"inner_max_num_threads={self.inner_max_num_threads} and "
                    f"native_threads={native} disagree: they are the same option, give one"
                )
        return options


def _check_options(inner_backend: str, options: dict[str, Any]) -> None:
    """Name an unknown option; have an Executor check every value (it starts nothing)."""
    unknown = sorted(set(options) - EXECUTOR_OPTIONS)
    if unknown:
        raise InvalidOptionError(
            f"the lightwork joblib backend got an unknown option {unknown[0]!r}: its options "
            f"are inner_backend, inner_max_num_threads, {', '.join(sorted(EXECUTOR_OPTIONS))}"
        )
    from ._engine._executor import Executor

    Executor(1, backend=inner_backend, **options)


class _Batch:
    """A joblib batch as a lightwork task's function. Pickled by reference to this class, it
    has each worker import this module, which registers "lightwork" there too: a nested
    ``Parallel(backend="lightwork")`` inside a task finds it."""

    __slots__ = ("batch",)

    def __init__(self, batch: Callable[[], Any]) -> None:
        self.batch = batch

    def __call__(self) -> Any:
        return self.batch()


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
        from ._engine._executor import Executor

        executor = Executor(workers, backend=backend, **options)
        if backend == "processes":
            # joblib keeps 2 x n_jobs batches in flight: a worker that frees first takes the
            # next (never one queued behind a slow batch in another worker's pipe).
            executor._process_options["prefetch"] = False
        _warm = (key, executor)
        return executor


def _forget(executor: Executor) -> None:
    """A pool that was stopped (abort_everything) is not handed out again."""
    global _warm
    with _warm_lock:
        if _warm is not None and _warm[1] is executor:
            _warm = None


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    try:
        return bool(a == b)
    except Exception:  # an option whose == is unusual (an array as initargs): a new pool
        return False


# ---- the callback thread -----------------------------------------------------------------------


class _Callbacks:
    """One daemon thread running joblib's callbacks, in the order their batches finished, and
    sending parked batches (see LightworkBackend.submit) once their reader made room."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[Any], None], Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._parked: weakref.WeakSet[LightworkBackend] = weakref.WeakSet()

    def put(self, callback: Callable[[Any], None], future: Any) -> None:
        self._queue.put((callback, future))
        self._start()

    def watch(self, backend: LightworkBackend) -> None:
        """``backend`` has parked batches: poll it until it has none."""
        self._parked.add(backend)
        self._start()
        self._queue.put((_nothing, None))  # wake the thread to poll

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="lightwork-joblib-callbacks", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                callback, future = self._queue.get(
                    timeout=PARKED_POLL_SECONDS if self._parked else None
                )
            except queue.Empty:
                pass
            else:
                try:
                    callback(future)
                except Exception:  # joblib records a batch's own failure: this is joblib's bug
                    import traceback

                    traceback.print_exc()  # said, as concurrent.futures says it; keep serving
            for backend in list(self._parked):
                if not backend.release_parked():
                    self._parked.discard(backend)


def _nothing(_: Any) -> None:
    pass


_callbacks = _Callbacks()

joblib.register_parallel_backend("lightwork", LightworkBackend)
