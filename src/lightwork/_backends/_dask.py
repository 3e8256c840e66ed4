"""The Dask backend: the same calls, on a Dask cluster.

    imap / submit --(chunks, bounded look-ahead)--> DaskBackend.submit
        -> client.submit(run_remote, spec, entropy, indices, args)     one Dask task per chunk
        -> a Dask worker: run_chunk(), the loop every backend shares (seeds, retry_on, errors)
        <- (values, encoded errors, seconds, worker) -> future callback -> Chunk.resolve

Dask's own ``Client.map`` is eager (it refuses iterators) and its futures don't work with
``concurrent.futures.wait`` (dask/distributed#3695); here the engine feeds chunks lazily and
hands out real ``concurrent.futures`` futures, as on every other backend.

Where the cluster comes from: ``client=`` (yours; never closed here), ``address=`` (a running
scheduler; the connection is closed at shutdown), or neither: a ``LocalCluster`` of
``max_workers`` worker processes with one thread each, closed at shutdown.

A worker that dies is Dask's to handle: the scheduler re-runs its tasks elsewhere, and after
``distributed.scheduler.allowed-failures`` deaths reports ``KilledWorker``, which becomes
:class:`lightwork.WorkerCrashedError` here. ``task_timeout`` is enforced from the client: the
task fails (or is retried) at its deadline, and the worker running it is restarted, since Dask
cannot interrupt a running task.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core._counters import WorkerCounters
from .._core._errors import (
    ExecutorShutdownError,
    MissingDependencyError,
    SerializationError,
    TaskTimeoutError,
    WorkerCrashedError,
)
from .._core._run import add_task_note
from .._core._scatter import Scatterable
from .._core._tasks import Attempt, Job, fail_attempt
from ._base import Backend
from ._pickling import PICKLE_PROTOCOL, dumps, dumps_by_value

if TYPE_CHECKING:
    from .._core._stats import WorkerStatistics

INSTALL_HINT = "the dask backend needs dask.distributed: pip install 'lightwork[dask]'"
# How often the client checks task deadlines when a task_timeout is set.
DEADLINE_CHECK_SECONDS = 0.05


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as error:
        raise MissingDependencyError(INSTALL_HINT) from error
    return distributed


def _start_local_cluster(distributed: Any, workers: int) -> Any:
    """A ``LocalCluster`` of ``workers`` processes with one thread each, tuned for lightwork.

    Some of Dask's defaults are changed, for this cluster only (a cluster you start yourself
    keeps yours):

    * ``MALLOC_TRIM_THRESHOLD_=65536`` in the workers' environment, which Dask sets so that
      workers hand freed memory back to the OS. Setting it turns off glibc's adaptive mmap
      threshold, so every NumPy temporary above 128 KiB becomes an mmap/munmap pair with
      fresh zeroed pages: the Monte Carlo kernel ran at 266 M samples/s instead of 369
      (bench/bench_pi_kernels.py --blocks 18 with and without it).
      lightwork's chunks allocate and free in a steady loop; memory is not the bottleneck.
    * ``worker-saturation`` (1.1: the scheduler holds tasks back until a worker frees a
      thread) becomes ``inf``: lightwork already bounds the chunks in flight, and holding them
      at the scheduler leaves each worker idle for a round trip after every chunk.
    * the workers' statistical profiler (``distributed.worker.profile``, which feeds the
      dashboard's Profile page) is off: sampling the task thread every 10 ms, it slowed the
      Monte Carlo kernel in stretches to 210 M samples/s instead of 340.
    * the event loops' health tick runs every second instead of every 20 ms, and the system
      monitor (the dashboard's CPU and memory plots) every 2 s instead of 0.5 s: at rest the
      scheduler's process then spends 13 ms of CPU a second instead of 33, taken from the
      cores the workers compute on. (The memory monitor that pauses or spills a worker keeps
      its own 100 ms interval.)

    LocalCluster also writes its workers' variables into this process's own environment,
    where they would reach every process started later; the environment is put back.
    """
    import dask

    spawn_environment = {
        name: value
        for name, value in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
        if name != "MALLOC_TRIM_THRESHOLD_"
    }
    environment = dict(os.environ)
    try:
        with dask.config.set(
            {
                "distributed.nanny.pre-spawn-environ": spawn_environment,
                "distributed.scheduler.worker-saturation": float("inf"),
                "distributed.worker.profile.enabled": False,
                "distributed.admin.tick.interval": "1s",
                "distributed.admin.system-monitor.interval": "2s",
            }
        ):
            return distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never clash with another cluster
            )
    finally:
        os.environ.clear()
        os.environ.update(environment)


def run_remote(
    spec: bytes, entropy: int, indices: range, payload: bytes, shared: dict[str, Any]
) -> tuple[bytes, float, str, int]:
    """In a Dask worker: run one chunk with the loop every backend shares.

    Arguments and results travel pickled: Dask would otherwise walk every item of a list
    argument looking for its own futures, which costs more than a tiny task. ``shared`` holds
    the values of the ``lightwork.share`` objects they refer to, which Dask delivered (they
    were scattered once, as futures).
    """
    import pickle

    for key, value in shared.items():
        if key not in _remote_shared:
            _remote_shared[key] = _RemoteShared(value)

    from .._core._run import Work, run_chunk
    from ._pickling import dumps, encode_error

    fn, retries, retry_on = pickle.loads(spec)
    args = pickle.loads(payload)
    values, errors, seconds = run_chunk(Work(fn, retries, retry_on, entropy), indices, args)
    try:
        from distributed import get_worker

        where = get_worker().address
    except (ImportError, ValueError):
        where = "?"
    encoded = {position: encode_error(error) for position, error in errors.items()}
    return dumps((values, encoded)), seconds, where, os.getpid()


class DaskBackend(Backend):
    name = "dask"
    # A Dask task costs 2-5 ms of latency plus ~3 ms to fetch its result, ~5 ms of CPU in the
    # client and scheduler, and GIL contention in the worker, whose event loop handles every
    # message. Chunks sized for this (400 ms, tails of 80 ms) gave 2 workers on the Monte Carlo
    # kernel an efficiency of 0.85, against 0.78-0.83 sized for 10 ms and less for 3 ms.
    dispatch_seconds = 2e-2
    max_chunk = 1 << 16  # fewer, larger tasks: the scheduler's cost is per task

    def __init__(
        self,
        max_workers: int,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        address: str | None = None,
        client: Any = None,
    ) -> None:
        distributed = _import_distributed()
        self._own_client = client is None
        self._cluster: Any = None
        if client is None:
            if address is None:
                self._cluster = _start_local_cluster(distributed, max_workers)
                client = distributed.Client(self._cluster)
            else:
                client = distributed.Client(address)
        self.client = client
        threads = sum(client.nthreads().values()) if client.nthreads() else max_workers
        self.workers = max(1, threads)
        if initializer is not None:
            client.run(initializer, *initargs)  # once in every worker present now
        self._lock = threading.Lock()
        self._running: dict[Any, tuple[Attempt, float | None]] = {}  # future -> (attempt, deadline)
        self._counters: dict[str, WorkerCounters] = {}
        self._closed = False
        self._tasks_retried = 0
        self._crashed = 0
        self._watchdog: threading.Thread | None = None
        # id(Scatterable) -> (it, the future of its scattered value): kept while we live
        self._scattered: dict[int, tuple[Any, Any]] = {}
        self._shared_futures: dict[str, Any] = {}  # key -> future, for the tasks' arguments
        self._job_shared: dict[int, set[str]] = {}  # job id -> keys its function refers to

    def prepare(self, job: Job) -> None:
        keys: set[str] = set()
        job.fn_payload = self._dumps((job.fn, job.retries, job.retry_on), keys, by_value=True)
        self._job_shared[job.id] = keys

    def _dumps(self, obj: Any, keys: set[str], by_value: bool = False) -> bytes:
        """Pickle for a remote worker; a ``Scatterable`` (a ``lightwork.share`` object) goes by
        its scattered key, which is added to ``keys``."""
        if not Scatterable.__subclasses__():  # no scatterable type exists: none can be in there
            return dumps_by_value(obj) if by_value else dumps(obj)

        def scatter(shared: Scatterable) -> str:
            key = self._scatter_shared(shared)
            keys.add(key)
            return key

        buffer = io.BytesIO()
        pickler_class = _ScatteringCloudPickler if by_value else _ScatteringPickler
        pickler_class(buffer, scatter).dump(obj)
        return buffer.getvalue()

    def _scatter_shared(self, shared: Scatterable) -> str:
        """Send a ``Scatterable``'s value to the cluster once; its Dask key."""
        with self._lock:
            found = self._scattered.get(id(shared))
            if found is None or found[0] is not shared:
                value = shared.__lightwork_scatter__()
                # A list is scattered item by item: wrap the value to send it whole.
                (future,) = self.client.scatter([value], broadcast=True, hash=False)
                found = self._scattered[id(shared)] = (shared, future)
                self._shared_futures[future.key] = future
        key: str = found[1].key
        return key

    def submit(self, attempt: Attempt) -> None:
        if self._closed:
            raise ExecutorShutdownError("cannot submit work: the executor has been shut down")
        job = attempt.chunk.job
        if not job.start():
            return
        limit = job.options.task_timeout
        keys = set(self._job_shared.get(job.id, ()))
        try:
            payload = self._dumps(attempt.args(), keys)
        except Exception as error:
            self._submit_isolated(attempt, error)
            return
        shared = {key: self._shared_futures[key] for key in keys}  # Dask sends the values
        future = self.client.submit(
            run_remote, job.fn_payload, job.entropy, attempt.indices(), payload, shared, pure=False
        )
        deadline = None if limit is None else time.monotonic() + limit * len(attempt)
        with self._lock:
            self._running[future] = (attempt, deadline)
        future.add_done_callback(self._done)
        if deadline is not None:
            self._ensure_watchdog()

    def _submit_isolated(self, attempt: Attempt, error: Exception) -> None:
        """Some argument won't pickle: fail exactly those tasks, send the others one by one."""
        chunk = attempt.chunk
        if len(attempt) == 1:
            problem = SerializationError(
                f"the arguments of task {chunk.indices[attempt.lo]} could not be pickled: {error}"
            )
            problem.__cause__ = error
            chunk.fail(attempt.lo, problem)
            return
        for position in range(attempt.lo, attempt.hi):
            self.submit(Attempt(chunk, position, position + 1))

    def _done(self, future: Any) -> None:
        with self._lock:
            found = self._running.pop(future, None)
        if found is None:  # timed out or cancelled already
            return
        attempt, _ = found
        chunk = attempt.chunk
        try:
            data, seconds, where, pid = future.result()
            values, encoded = pickle.loads(data)
        except Exception as error:
            kind = type(error).__name__
            if kind in ("CancelledError", "FutureCancelledError"):
                return
            if kind in ("KilledWorker", "CommClosedError"):
                self._on_failure(attempt, error)
            else:  # run_remote itself failed: the function or arguments didn't unpickle
                for position in range(attempt.lo, attempt.hi):
                    problem = SerializationError(
                        f"task {chunk.indices[position]}: the function or its arguments could "
                        f"not be unpickled on the Dask worker: {error!r}"
                    )
                    problem.__cause__ = error
                    chunk.fail(position, problem)
            return
        from ._pickling import decode_error

        counters = self._counters.get(where)
        if counters is None:
            counters = self._counters[where] = WorkerCounters(len(self._counters), pid)
        counters.tasks += len(values)
        counters.chunks += 1
        counters.busy += seconds
        chunk.job.measured(len(values), seconds)
        errors = {attempt.lo + p: decode_error(e) for p, e in encoded.items()}
        for position, task_error in errors.items():
            add_task_note(task_error, chunk.indices[position])
        chunk.resolve(attempt.lo, values, errors)

    def _on_failure(self, attempt: Attempt, error: BaseException) -> None:
        """The Dask task itself failed: a killed worker (after Dask's own re-runs), or comms."""
        self._crashed += 1
        chunk = attempt.chunk
        if len(attempt) > 1:  # find the culprit: one task at a time, nobody charged yet
            for position in range(attempt.lo, attempt.hi):
                self.submit(Attempt(chunk, position, position + 1))
            return
        position = attempt.lo
        if not self._closed and chunk.charge_retry(position):
            self._tasks_retried += 1
            self.submit(attempt)
            return
        crashed = WorkerCrashedError(
            f"task {chunk.indices[position]} failed on the Dask cluster: {error!r}"
            " (a worker running it died; see the cause)"
        )
        crashed.__cause__ = error
        chunk.fail(position, crashed)

    def _ensure_watchdog(self) -> None:
        with self._lock:
            if self._watchdog is None:
                self._watchdog = threading.Thread(
                    target=self._watch, name="lightwork-dask-watchdog", daemon=True
                )
                self._watchdog.start()

    def _watch(self) -> None:
        while not self._closed:
            time.sleep(DEADLINE_CHECK_SECONDS)
            now = time.monotonic()
            with self._lock:
                late = [
                    (future, attempt)
                    for future, (attempt, deadline) in self._running.items()
                    if deadline is not None and now > deadline
                ]
                for future, _ in late:
                    del self._running[future]
            for future, attempt in late:
                self._time_out(future, attempt)

    def _time_out(self, future: Any, attempt: Attempt) -> None:
        """Stop waiting for an over-time task; restart its worker, which can't interrupt it."""
        processing = {}
        try:
            processing = self.client.processing()
        except Exception:
            pass
        holders = [w for w, keys in processing.items() if future.key in keys]
        future.cancel()
        if holders:
            threading.Thread(
                target=self._restart, args=(holders,), name="lightwork-dask-restart", daemon=True
            ).start()
        chunk = attempt.chunk
        limit = chunk.job.options.task_timeout
        for position in range(attempt.lo, attempt.hi):
            if not self._closed and chunk.charge_retry(position):
                self._tasks_retried += 1
                self.submit(Attempt(chunk, position, position + 1))
            else:
                chunk.fail(
                    position,
                    TaskTimeoutError(
                        f"task {chunk.indices[position]} ran longer than "
                        f"task_timeout={limit:g}s on the Dask cluster"
                    ),
                )

    def _restart(self, workers: list[str]) -> None:
        try:
            self.client.restart_workers(workers)
        except Exception:
            pass  # best effort: the result is discarded whatever happens

    def cancel_pending(self) -> None:
        with self._lock:
            running = list(self._running.items())
            self._running.clear()
        if running:
            self.client.cancel([future for future, _ in running])
        for _, (attempt, _) in running:
            fail_attempt(attempt, ExecutorShutdownError("cancelled by shutdown()"))

    def shutdown(self, wait: bool = True) -> None:
        if self._closed:
            return
        if wait:
            while True:
                with self._lock:
                    pending = [f for f in self._running]
                if not pending:
                    break
                for future in pending:
                    try:
                        future.result()
                    except Exception:
                        pass  # its outcome went to its chunk through the callback
        self._closed = True
        self._close_cluster()

    def terminate(self) -> None:
        """Stop now (Ctrl-C): cancel every future; kill our own cluster's workers.

        Dask cannot interrupt a running task, and a LocalCluster's nannies give a busy worker
        4 seconds to stop before killing it; our own workers are killed at once instead. On a
        cluster reached through ``address=`` or ``client=`` the running tasks finish on their
        workers (which other clients may share); their results are dropped.
        """
        self.cancel_pending()
        self._closed = True
        if self._cluster is None:
            self._close_cluster()
            return
        environment = dict(os.environ)  # a nanny writes its workers' variables into ours
        try:
            for nanny in list(self._cluster.workers.values()):
                # Tells the nanny, which runs in this process, not to restart its worker.
                with contextlib.suppress(Exception):
                    nanny.close_gracefully(reason="lightwork-terminate")
            for pid in _worker_pids(self._cluster):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._close_cluster()
        finally:
            os.environ.clear()
            os.environ.update(environment)

    def _close_cluster(self) -> None:
        if self._own_client:
            try:
                self.client.close()
            finally:
                if self._cluster is not None:
                    self._cluster.close()

    def worker_statistics(self) -> list[WorkerStatistics]:
        return [c.snapshot() for c in self._counters.values()]

    def extra_statistics(self) -> tuple[int, int, int]:
        return (self.workers, self._crashed, self._tasks_retried)


def _worker_pids(cluster: Any) -> list[int]:
    """The pids of a LocalCluster's worker processes (each started by a nanny in this one)."""
    pids = []
    for nanny in list(cluster.workers.values()):
        process = getattr(getattr(nanny, "process", None), "process", None)
        pid = getattr(process, "pid", None)
        if isinstance(pid, int):
            pids.append(pid)
    return pids


def _reduce_shared(obj: Any, scatter: Callable[[Scatterable], str]) -> Any:
    if isinstance(obj, Scatterable):
        return remote_shared, (scatter(obj),)
    return NotImplemented


class _ScatteringPickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, scatter: Callable[[Scatterable], str]) -> None:
        super().__init__(file, protocol=PICKLE_PROTOCOL)
        self._scatter = scatter

    def reducer_override(self, obj: Any) -> Any:
        return _reduce_shared(obj, self._scatter)


def _cloudpickler() -> type:
    import cloudpickle

    return cloudpickle.Pickler  # type: ignore[no-any-return]


class _ScatteringCloudPickler(_cloudpickler()):  # type: ignore[misc]
    def __init__(self, file: io.BytesIO, scatter: Callable[[Scatterable], str]) -> None:
        super().__init__(file, protocol=PICKLE_PROTOCOL)
        self._scatter = scatter

    def reducer_override(self, obj: Any) -> Any:
        reduced = _reduce_shared(obj, self._scatter)
        if reduced is NotImplemented:
            return super().reducer_override(obj)
        return reduced


class _RemoteShared:
    """A ``Scatterable`` (a ``lightwork.share`` object) on a Dask worker: ``.value`` is the
    scattered copy."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.closed = False


# On a Dask worker: the lightwork.share values run_remote received, by key.
_remote_shared: dict[str, _RemoteShared] = {}


def remote_shared(key: str) -> _RemoteShared:
    """On a worker: the value run_remote installed before unpickling the task.

    A module-level function, so that pickles refer to it by name: a bound classmethod would
    travel by value with cloudpickle, globals and all, and see a different registry.
    """
    return _remote_shared[key]
