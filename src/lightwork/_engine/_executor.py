"""The Executor: one ``concurrent.futures.Executor`` over every backend.

    imap(fn, items) --(this thread: ChunkSizer, bounded look-ahead)--> backend.submit(Attempt)
          ^                                                                     |
          +-------- StreamJob.done queue <-- Chunk.resolve() <-- workers -------+

The caller's own thread pulls input only when it needs more work in flight, so a generator of
ten million items, or an endless one, runs in constant memory.
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sized
from types import BuiltinFunctionType, FunctionType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .._backends import create_backend
from .._backends._base import Backend
from .._core._chunking import ChunkSizer
from .._core._cpus import available_cpus
from .._core._errors import ExecutorShutdownError, InvalidArgumentError, InvalidOptionError
from .._core._options import (
    CallOptions,
    Checkpoint,
    check_backend,
    check_callable,
    check_iterable,
    check_max_workers,
    check_native_threads,
    check_start_method,
    check_wait_timeout,
)
from .._core._run import Call, Star
from .._core._tasks import Attempt, Chunk, FutureJob, StreamJob

if TYPE_CHECKING:
    from .._core._stats import AutoChoice, ExecutorStatistics
    from ._checkpoint import CheckpointRun

T = TypeVar("T")
R = TypeVar("R")

# Chunks in flight per worker, beyond those it holds: room for ordered output to wait for one
# slow chunk while the others keep their workers busy, without unbounded buffering.
REORDER_SLACK = 2

_UNSET: Any = object()

# How many coroutines of an ``async def`` function run at once when max_workers is not given:
# an event loop overlaps waits cheaply; the limit only protects the services being called.
ASYNC_CONCURRENCY = 1000


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` (or the function a Star or Call wraps) is an ``async def`` function."""
    if isinstance(fn, Star | Call):
        fn = fn.fn
    # Plain and C functions answered here, without importing inspect (~5 ms of a program's
    # first pool); methods, partials and functions marked by inspect.markcoroutinefunction
    # are left to inspect.
    if isinstance(fn, BuiltinFunctionType):
        return False
    if isinstance(fn, FunctionType) and not hasattr(fn, "_is_coroutine_marker"):
        return bool(fn.__code__.co_flags & CO_COROUTINE)
    import inspect

    return inspect.iscoroutinefunction(fn)


CO_COROUTINE = 0x80  # inspect.CO_COROUTINE: the code object of an ``async def`` function


class Executor(concurrent.futures.Executor):
    """Runs calls on a pool of workers: a drop-in for ``ProcessPoolExecutor``.

    ``backend`` is ``"processes"`` (default), ``"threads"``, ``"serial"`` (in the caller's
    thread: the reference semantics), ``"interpreters"`` (Python 3.14+: subinterpreters of this
    process, each with its own GIL; see docs/howto/interpreters.md), ``"auto"`` (chosen per
    call by timing its first tasks) or ``"dask"`` (a Dask cluster: ``address=`` of a
    scheduler, ``client=``, or a local one).
    ``max_workers=None`` uses the CPUs this process may actually use. A crashed worker is
    replaced and its task retried up to ``retries`` times (a death inside a chunk of several
    tasks first re-runs that chunk, naming each task, to find the culprit: that run is not
    charged; ``retries=0`` names each task from the start, so nothing that died runs again);
    ``task_timeout`` limits each task; ``seed`` makes ``lightwork.rng()`` reproducible; these
    three and ``retry_on`` are defaults that ``imap`` and ``starmap`` can override per call.
    ``start_method``: ``"forkserver"`` on Linux by default, else ``"spawn"``; ``"fork"`` also
    lends arrays of 64 MiB or more to workers forked for the call, with no copy (unless there
    is an ``initializer``); other large arrays go through shared memory, copied once a call.
    ``native_threads``: the threads each process worker's native pools (OpenBLAS, MKL, OpenMP)
    may start, so that N workers doing matrix products don't run N x cores threads; by default
    each worker's share of the CPUs (CPUs // max_workers, at least 1), unless the environment
    sets ``OMP_NUM_THREADS`` or the like, which is then left alone. ``statistics()`` says what
    was set. With ``backend="auto"``, ``start_method``, ``max_tasks_per_worker`` and
    ``native_threads`` apply to the process pool it runs CPU-bound work on, and giving one
    keeps that work off subinterpreters; work auto runs serially or on threads (tiny or
    waiting tasks) has no process workers for them to apply to.

    >>> from lightwork import Executor
    >>> with Executor(2, backend="threads") as ex:
    ...     future = ex.submit(pow, 2, 10)
    ...     print(future.result(), list(ex.map(abs, [-1, -2])), ex.starmap(pow, [(3, 2)]))
    1024 [1, 2] [9]
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        backend: str = "processes",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        max_tasks_per_worker: int | None = None,
        start_method: str | None = None,
        retries: int = 1,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        task_timeout: float | None = None,
        seed: int | None = None,
        address: str | None = None,
        client: Any = None,
        native_threads: int | None = None,
    ) -> None:
        self._backend_name = check_backend(backend)
        if backend != "dask" and (address is not None or client is not None):
            raise InvalidOptionError("address and client apply to the dask backend only")
        workers = check_max_workers(max_workers)  # checked on serial too: 0 is a mistake there
        self._max_workers = 1 if backend == "serial" else workers
        # Not given: a thread pool may grow past the CPU count while its tasks wait.
        self._default_size = max_workers is None
        # Coroutines only wait, so their default limit is not the CPU count.
        self._async_concurrency = (
            1 if backend == "serial" else ASYNC_CONCURRENCY if max_workers is None else max_workers
        )
        if initializer is not None:
            check_callable(initializer, "initializer")
        if not isinstance(initargs, tuple):
            raise InvalidOptionError(f"initargs must be a tuple, not {initargs!r}")
        if max_tasks_per_worker is not None and (
            isinstance(max_tasks_per_worker, bool)
            or not isinstance(max_tasks_per_worker, int)
            or max_tasks_per_worker <= 0
        ):
            raise InvalidOptionError(
                f"max_tasks_per_worker must be a positive int or None, not {max_tasks_per_worker!r}"
            )
        # What the caller asked of process pools (native_threads' default share is not asked).
        self._process_options_given = [
            f"{name}={value!r}"
            for name, value in [
                ("max_tasks_per_worker", max_tasks_per_worker),
                ("start_method", start_method),
                ("native_threads", native_threads),
            ]
            if value is not None
        ]
        if backend not in ("processes", "auto") and self._process_options_given:
            raise InvalidOptionError(
                f"{' and '.join(self._process_options_given)} given with backend={backend!r}: "
                "max_tasks_per_worker, start_method and native_threads apply to the processes "
                "backend only (and to auto's process pool)"
            )
        self._initializer_options: dict[str, Any] = {
            "initializer": initializer,
            "initargs": initargs,
        }
        self._process_options: dict[str, Any] = {
            "max_tasks_per_worker": max_tasks_per_worker,
            "start_method": check_start_method(start_method),
            "native_threads": _native_threads(check_native_threads(native_threads), workers),
        }
        self._dask_options: dict[str, Any] = {"address": address, "client": client}
        self._defaults = self._checked(
            CallOptions().merge(
                retries=retries, retry_on=retry_on, task_timeout=task_timeout, seed=seed
            )
        )
        self._submit_entropy = self._entropy(self._defaults.seed)
        self._submit_index = itertools.count()
        self._lock = threading.Lock()
        self._shutdown = False
        self._backends: dict[str, Backend] = {}  # by kind; "auto" may use all three
        self._auto_choice: AutoChoice | None = None
        # Executor.map calls nobody has read yet: shutdown runs them to the end (see map)
        self._unread: dict[int, _UnreadChunks] = {}
        self._map_keys = itertools.count()
        # Dropped without shutdown(): its pools finish their work and stop, as the standard
        # library's do, instead of holding workers until the interpreter exits.
        finalizer = weakref.finalize(self, _shut_down_backends, self._backends)
        finalizer.atexit = False  # at exit, each backend's own exit hook does it

    # ---- concurrent.futures.Executor --------------------------------------------------------

    def submit(
        self, fn: Callable[..., R], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[R]:
        """Schedule ``fn(*args, **kwargs)``; its Future works with ``wait``, ``as_completed``
        and ``asyncio.wrap_future``."""
        check_callable(fn)
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        job = FutureJob(Call(fn), self._defaults, self._submit_entropy, future)
        index = next(self._submit_index)
        kind = "async" if is_async(fn) else self._submit_kind(job, args, kwargs)
        backend = self._live_backend(kind)
        try:
            backend.prepare(job)
        except Exception as error:  # an unpicklable function fails its own future only
            future.set_exception(error)
            return future
        chunk = Chunk(job, 0, range(index, index + 1), [(args, kwargs)])
        backend.submit(Attempt(chunk, 0, 1))
        return future

    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Results[R]:
        """Like ``ProcessPoolExecutor.map``, but lazy: input is read as results are consumed.

        Results come in input order; the first task exception is raised when its result is
        reached. ``timeout`` bounds the whole iteration, from this call.

        As with the standard library, work starts at this call (the first look-ahead window is
        sent before it returns), and a map whose results are never read still runs: shutdown,
        or leaving the ``with`` block, runs the rest of its input and keeps the results for
        whoever still holds the iterator. Once you iterate it, it is yours: closing or dropping
        it cancels what has not started.
        """
        check_callable(fn)
        if not iterables:
            raise InvalidArgumentError("Executor.map() needs at least one iterable")
        for items in iterables:
            check_iterable(items)
        deadline = None if timeout is None else time.monotonic() + check_wait_timeout(timeout)
        return self._results(
            Star(fn),
            zip(*iterables, strict=False),  # the shortest iterable ends it, as in the stdlib
            self._defaults.merge(chunksize=chunksize),
            total=_common_length(iterables),
            deadline=deadline,
            unread=True,
        )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; finish what was submitted unless ``cancel_futures``."""
        with self._lock:
            self._shutdown = True
            backends = list(self._backends.values())
            unread = list(self._unread.values())
            self._unread.clear()
        if cancel_futures:
            for source in unread:
                source.close()
            unread = []

        def finish() -> None:
            for source in unread:
                source.run_to_end()
            for backend in backends:
                if cancel_futures:
                    backend.cancel_pending()
                backend.shutdown(wait=wait)

        if wait or not unread:
            finish()
        else:  # the rest of those maps' input must still run, as submitted futures would
            threading.Thread(target=finish, name="lightwork-finish-maps").start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt | SystemExit):
            self.terminate()  # Ctrl-C: stop now, don't wait for running tasks
        else:
            self.shutdown(wait=True)
        return None

    # ---- lightwork's own ---------------------------------------------------------------------

    def imap(
        self,
        fn: Callable[[T], R],
        iterable: Iterable[T],
        *,
        chunksize: int | None = None,
        ordered: bool = True,
        progress: bool = False,
        retries: int = _UNSET,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = _UNSET,
        task_timeout: float | None = _UNSET,
        seed: int | None = _UNSET,
        return_exceptions: bool = False,
        checkpoint: str | os.PathLike[str] | Checkpoint | None = None,
    ) -> Results[R]:
        """Lazily yield ``fn(item)`` for each item: in input order, or as they finish.

        Input is pulled only as results are consumed, with a bounded number of chunks in flight.
        With ``return_exceptions=True`` a failed task yields its exception instead of raising.
        ``retries``, ``retry_on``, ``task_timeout`` and ``seed`` default to the executor's.
        ``close()`` on the returned iterator stops early and cancels what has not started.
        ``checkpoint="run.db"`` keeps each outcome in that SQLite file: the same call run again
        skips what it holds and yields the stored results in their place (see
        :mod:`lightwork.checkpoint`; unordered, a stored result comes as the input reaches it).
        """
        options = self._options(
            chunksize=chunksize,
            ordered=ordered,
            progress=progress,
            retries=retries,
            retry_on=retry_on,
            task_timeout=task_timeout,
            seed=seed,
            return_exceptions=return_exceptions,
            checkpoint=checkpoint,
        )
        return self._stream(fn, iterable, options)

    def starmap(
        self,
        fn: Callable[..., R],
        iterable: Iterable[Iterable[Any]],
        *,
        chunksize: int | None = None,
        ordered: bool = True,
        progress: bool = False,
        retries: int = _UNSET,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = _UNSET,
        task_timeout: float | None = _UNSET,
        seed: int | None = _UNSET,
        return_exceptions: bool = False,
        checkpoint: str | os.PathLike[str] | Checkpoint | None = None,
    ) -> list[R]:
        """``[fn(*args) for args in iterable]``, in parallel: like ``Pool.starmap``.

        The options are :meth:`imap`'s, ``checkpoint=`` included."""
        check_callable(fn)
        options = self._options(
            chunksize=chunksize,
            ordered=ordered,
            progress=progress,
            retries=retries,
            retry_on=retry_on,
            task_timeout=task_timeout,
            seed=seed,
            return_exceptions=return_exceptions,
            checkpoint=checkpoint,
        )
        return list(self._stream(Star(fn), iterable, options))

    def _options(self, **keywords: Any) -> CallOptions:
        """This executor's defaults with a call's keywords merged in, once (those left at
        ``_UNSET`` keep the default); for the engine and the features built on it."""
        given = {name: value for name, value in keywords.items() if value is not _UNSET}
        return self._checked(self._defaults.merge(**given))

    def _stream(
        self,
        fn: Callable[[Any], Any],
        iterable: Iterable[Any],
        options: CallOptions,
        on_done: Callable[[], None] | None = None,
    ) -> Results[Any]:
        """``imap`` with its options already merged (see ``_options``); ``on_done`` is
        called once the call is over (its results read, or closed)."""
        check_callable(fn)
        check_iterable(iterable)
        total = len(iterable) if isinstance(iterable, Sized) else None
        return self._results(fn, iterable, options, total=total, on_done=on_done)

    def statistics(self) -> ExecutorStatistics:
        """Tasks and chunks done, and per worker the time spent working, (de)serializing, idle."""
        backends = list(self._backends.values())
        workers = tuple(w for b in backends for w in b.worker_statistics())
        extra = [b.extra_statistics() for b in backends]
        from .._core._stats import ExecutorStatistics  # see _stats: not on a first result's path

        return ExecutorStatistics(
            backend=self._backend_name,
            max_workers=self._max_workers,
            tasks_done=sum(w.tasks for w in workers),
            chunks_done=sum(w.chunks for w in workers),
            workers_started=sum(e[0] for e in extra),
            workers_crashed=sum(e[1] for e in extra),
            tasks_retried=sum(e[2] for e in extra),
            workers=workers,
            auto=self._auto_choice,
            native_threads=(  # (auto's, only once it has a process pool)
                self._process_options["native_threads"]
                if self._backend_name == "processes" or "processes" in self._backends
                else None
            ),
        )

    def start(self) -> None:
        """Start every worker now and return once all are ready (initializers run).

        Optional: workers otherwise start as work needs them. Useful to time work apart from
        start-up, or to fail early on a broken initializer. With ``backend="auto"`` it starts
        the pool of auto's last choice: the process pool before any call has been measured.
        """
        self._live_backend().start_workers()

    def terminate(self) -> None:
        """Stop now: drop queued work and kill the workers (what Ctrl-C in a with-block does).

        The executor stays usable: new work starts new workers.
        """
        with self._lock:
            backends = list(self._backends.values())
            self._backends.clear()
        for backend in backends:
            backend.terminate()

    @property
    def max_workers(self) -> int:
        return self._max_workers

    @property
    def backend(self) -> str:
        return self._backend_name

    # ---- internals ---------------------------------------------------------------------------

    def _live_backend(self, kind: str | None = None, threads: int | None = None) -> Backend:
        """The backend of this kind, started on first use.

        ``kind`` defaults to the executor's backend; for ``"auto"``, to the last choice made
        (``submit`` has no input to measure), or processes. ``threads``: how many threads a new
        thread pool of the default size starts with (``auto`` measured it); the CPU count if
        not given. Such a pool grows while its tasks wait, up to MAX_DEFAULT_THREADS.
        """
        if kind is None:
            kind = self._backend_name
            if kind == "auto":
                kind = self._auto_choice.backend if self._auto_choice else "processes"
        with self._lock:
            if self._shutdown:
                raise ExecutorShutdownError("cannot submit work: the executor has been shut down")
            backend = self._backends.get(kind)
            if backend is None:
                options = dict(self._initializer_options)
                if kind == "processes":
                    options.update(self._process_options)
                elif kind == "dask":
                    options.update(self._dask_options)
                workers = self._async_concurrency if kind == "async" else self._max_workers
                if kind == "threads" and self._default_size:
                    from .._backends._threads import MAX_DEFAULT_THREADS

                    options["grow_to"] = MAX_DEFAULT_THREADS
                    workers = threads or workers
                backend = self._backends[kind] = create_backend(kind, workers, **options)
            return backend

    def _submit_kind(self, job: FutureJob, args: Any, kwargs: Any) -> str | None:
        """Where ``submit`` sends a call: the default (see _live_backend), but on ``auto``
        whose last choice was subinterpreters, processes for a function that cannot go there
        (that choice was made for another call's function: NumPy's would fail there)."""
        choice = self._auto_choice
        if choice is None or choice.backend != "interpreters":
            return None
        from ._auto import interpreters_refusal

        return None if interpreters_refusal(job, [(args, kwargs)]) is None else "processes"

    def _checked(self, options: CallOptions) -> CallOptions:
        if options.task_timeout is not None and self._backend_name == "serial":
            # ("auto" avoids serial then)
            raise InvalidOptionError(
                "task_timeout needs a backend that can stop a task: the serial backend runs "
                "tasks in your own thread; use backend='processes' or 'threads'"
            )
        return options

    @staticmethod
    def _entropy(seed: int | None) -> int:
        # Fresh entropy as SeedSequence() draws it; os.urandom spares importing secrets (5 ms).
        return int.from_bytes(os.urandom(16), "little") if seed is None else seed

    def _results(
        self,
        fn: Callable[[Any], Any],
        iterable: Iterable[Any],
        options: CallOptions,
        *,
        total: int | None,
        deadline: float | None = None,
        on_done: Callable[[], None] | None = None,
        unread: bool = False,
    ) -> Results[Any]:
        """The call's results iterator. ``unread``: Executor.map's, whose first window is sent
        now and which the executor keeps until it is iterated (see map)."""
        entropy = self._entropy(options.seed)
        run: CheckpointRun | None = None
        if options.checkpoint is not None:
            from ._checkpoint import CheckpointRun  # (sqlite3 only for the calls that use it)

            run = CheckpointRun(options.checkpoint, fn, options.seed, entropy, total)
            entropy = run.entropy  # seed=None: the checkpointed run's own entropy
        job = StreamJob(fn, options, entropy)
        flow = _Flow(options, total, deadline)
        items = iter(iterable)
        chunks: Iterator[Chunk | None]
        try:
            if run is not None and run.complete:  # a finished checkpoint: no worker needed
                chunks = self._replay(job, run, items, flow, on_done)
            elif self._backend_name == "auto" and not is_async(fn):
                # The probe runs the first tasks in this thread: at the first read, not here.
                chunks = self._auto_chunks(job, items, flow, on_done, run)
            else:
                backend = self._live_backend("async" if is_async(fn) else None)
                backend.prepare(job)  # an unpicklable function fails here, before input is read
                chunks = self._chunks(
                    backend, job, items, flow, on_done=on_done, prime=unread, run=run
                )
                if unread:
                    next(chunks)  # send the first window: runs to the generator's first yield
        except BaseException:
            if run is not None:
                run.close(write=False)
            raise
        if not unread:
            return Results(chunks, flow.options.return_exceptions, let_go=False)
        key = next(self._map_keys)
        source = _UnreadChunks(chunks, flow, functools.partial(self._forget_unread, key))
        results: Results[Any] = Results(source, flow.options.return_exceptions, let_go=True)
        with self._lock:
            self._unread[key] = source
        return results

    def _forget_unread(self, key: int) -> None:
        with self._lock:
            self._unread.pop(key, None)

    def _auto_chunks(
        self,
        job: StreamJob,
        items: Iterator[Any],
        flow: _Flow,
        on_done: Callable[[], None] | None,
        run: CheckpointRun | None = None,
    ) -> Iterator[Chunk | None]:
        """Probe the first tasks here, choose a backend, and run the rest on it. (With a
        checkpoint, the stored outcomes before the first task to run come first, and the
        probe runs from that task.)"""
        # Imported here: the probe and its cost model are not needed by any other backend.
        from .._core._stats import AutoChoice
        from ._auto import (
            choose,
            interpreters_available,
            interpreters_refusal,
            is_free_threaded,
            probe,
            threads_for,
        )

        try:
            first = seq = 0
            probe_items: Iterator[Any] = items
            pending = None
            if run is not None:
                while True:
                    # (read no further ahead than outcomes are stored: the rest is the probe's)
                    ahead = min(REPLAY_BATCH, max(1, run.stored_end - first))
                    pieces, ended = run.take(items, first, ahead)
                    while pieces and pieces[0][2] is not None:
                        chunk = _stored_chunk(job, seq, pieces.pop(0))
                        seq += 1
                        first += len(chunk)
                        yield chunk
                    if pieces:
                        run.hold(pieces)
                    if pieces or ended:
                        break
                probe_items = pending = run.pending_items(items, first)
            args, values, errors, wall, cpu, exhausted, gil_held = probe(
                job, probe_items, flow.total, first
            )
            n = len(args)
            if pending is not None:
                pending.give_back()
                exhausted = exhausted and run is not None and run.drained
            remaining = None if flow.total is None else flow.total - first - n
            cpu_share = cpu / wall if wall > 0 else 1.0
            measured = functools.partial(
                choose,
                seconds_per_task=wall / max(n, 1),
                cpu_share=cpu_share,
                gil_held=gil_held,
                remaining=remaining,
                workers=self._max_workers,
                exhausted=exhausted,
                processes_warm="processes" in self._backends,
                free_threaded=is_free_threaded(),
                serial_allowed=job.options.task_timeout is None,
            )
            backend_name, reason = measured(interpreters=interpreters_available())
            if backend_name == "interpreters":  # worth it: can the work go there?
                # (Options of process pools ask for one: not to be ignored on subinterpreters.)
                asked = self._process_options_given
                refused = (
                    f"{' and '.join(asked)} given, which apply to processes"
                    if asked
                    else interpreters_refusal(job, args[:1])
                )
                if refused is not None:
                    backend_name, reason = measured(interpreters=False)
                    reason += f" (not subinterpreters: {refused})"
            backend = None
            if not exhausted:
                threads = None
                if backend_name == "threads" and self._default_size:
                    threads = threads_for(cpu_share, self._max_workers)
                backend = self._live_backend(backend_name, threads)
                if threads is not None:
                    reason += f"; {backend.workers} threads to keep {self._max_workers} CPUs busy"
            self._auto_choice = AutoChoice(
                backend_name,
                reason,
                wall / max(n, 1),
                cpu_share,
                gil_held,
                n,
                1 if backend is None else backend.workers,
            )
            probed = Chunk(job, seq, range(first, first + n), args)
            probed.values, probed.errors, probed.unresolved = values, errors, 0
            if n:
                if run is not None:
                    run.record(probed)
                yield probed
            if backend is None:
                return
            backend.prepare(job)
            job.sizer = ChunkSizer(backend.workers, remaining, fixed=flow.options.chunksize)
            job.sizer.record(n, wall)
            yield from self._chunks(
                backend, job, items, flow, first_index=first + n, first_seq=seq + 1, run=run
            )
        finally:
            job.close()
            if run is not None:
                run.close()
            if on_done is not None:
                on_done()

    def _replay(
        self,
        job: StreamJob,
        run: CheckpointRun,
        items: Iterator[Any],
        flow: _Flow,
        on_done: Callable[[], None] | None,
    ) -> Iterator[Chunk | None]:
        """Every outcome is stored: yield them, reading the input only to check it is the same."""
        bar = None
        if flow.options.progress:
            from .._core._progress import progress_bar

            bar = progress_bar(run.total, getattr(job.fn, "__name__", "lightwork"))
        try:
            first = seq = 0
            ended = False
            while not ended:
                pieces, ended = run.take(items, first, REPLAY_BATCH)
                for piece in pieces:
                    chunk = _stored_chunk(job, seq, piece)
                    seq += 1
                    first += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                    yield chunk
        finally:
            if bar is not None:
                bar.close()
            run.close()
            if on_done is not None:
                on_done()

    def _chunks(
        self,
        backend: Backend,
        job: StreamJob,
        items: Iterator[Any],
        flow: _Flow,
        *,
        first_index: int = 0,
        first_seq: int = 0,
        on_done: Callable[[], None] | None = None,
        prime: bool = False,
        run: CheckpointRun | None = None,
    ) -> Iterator[Chunk | None]:
        """Yield each finished chunk, in order or as they finish.

        ``prime``: first feed the look-ahead window and yield None (Executor.map sends its
        first tasks before it returns). ``run``: the call's checkpoint, which says which tasks
        are stored (their chunks come back at once, replayed) and records the others' outcomes.
        """
        total = flow.total
        if job.sizer is None:
            fixed = flow.options.chunksize or backend.default_chunksize
            job.sizer = ChunkSizer(
                backend.workers,
                total,
                fixed=fixed,
                dispatch_seconds=backend.dispatch_seconds,
                max_chunk=backend.max_chunk,
            )
        sizer = job.sizer
        per_worker = backend.lookahead + REORDER_SLACK  # times backend.workers, which may grow
        held: dict[int, Chunk] = {}  # finished chunks waiting for an earlier one (ordered)
        next_seq = seq = first_seq
        fed = finished = first_index  # tasks sent to the backend, and come back from it
        in_flight = 0
        exhausted = failed = False
        replayed: set[int] = set()  # seqs of chunks replayed from the checkpoint
        bar = None
        if flow.options.progress:
            from .._core._progress import progress_bar

            bar = progress_bar(total, getattr(job.fn, "__name__", "lightwork"))
            bar.update(first_index)
        try:
            while True:
                # Feed one chunk at a time, never holding more than max_in_flight, and hand
                # back whatever has finished before reading more input: a slow source must
                # not hold finished results back.
                done: Chunk | BaseException | None = None
                max_in_flight = backend.workers * per_worker
                can_feed = not exhausted and not failed and in_flight < max_in_flight
                size = 0
                if can_feed and run is not None:  # stored tasks replay: not the sizer's
                    size = run.stored_run(fed, REPLAY_BATCH)
                if can_feed and not size:  # (the sizer counts its calls: ask only to feed)
                    remaining = None if total is None else total - fed
                    size = sizer.next_size(remaining, in_flight, fed - finished)
                if can_feed and (size or not in_flight):  # size 0: await a measurement
                    if run is None:
                        batch = list(itertools.islice(items, max(size, 1)))
                        exhausted = len(batch) < max(size, 1)
                        if batch:
                            chunk = Chunk(job, seq, range(fed, fed + len(batch)), batch)
                            seq += 1
                            fed += len(batch)
                            in_flight += 1
                            backend.submit(Attempt(chunk, 0, len(batch)))
                    else:
                        pieces, exhausted = run.take(items, fed, max(size, 1))
                        for piece in pieces:
                            chunk = _stored_chunk(job, seq, piece)
                            seq += 1
                            fed += len(chunk)
                            in_flight += 1
                            if piece[2] is None:
                                backend.submit(Attempt(chunk, 0, len(chunk)))
                            else:  # stored: back at once, through the queue, in its turn
                                replayed.add(chunk.seq)
                                job.chunk_done(chunk)
                    if not prime and not job.done.empty():  # (priming fills the window)
                        done = job.done.get_nowait()
                    elif not exhausted and in_flight < max_in_flight:
                        continue
                if prime:
                    prime = False
                    yield None
                if in_flight == 0:
                    return
                if done is None:
                    done = self._next_done(job, flow.deadline)
                elif isinstance(done, BaseException):
                    raise done
                if run is not None:
                    if done.seq in replayed:
                        replayed.discard(done.seq)
                    else:  # before it is yielded: yielding lets go of its results
                        run.record(done)
                finished += len(done)
                if bar is not None:
                    bar.update(len(done))
                failed = failed or (bool(done.errors) and not flow.options.return_exceptions)
                if not flow.options.ordered:
                    in_flight -= 1
                    yield done
                    continue
                held[done.seq] = done
                while next_seq in held:
                    in_flight -= 1
                    yield held.pop(next_seq)
                    next_seq += 1
        except GeneratorExit:  # the caller stopped early (break, close())
            if run is not None:
                _record_finished(job, run, replayed)
            raise
        except KeyboardInterrupt:
            try:  # (before the workers are stopped: what finished before the Ctrl-C)
                if run is not None:
                    _record_finished(job, run, replayed)
            finally:
                self.terminate()  # one Ctrl-C stops every worker, not just this call
            raise
        finally:
            job.cancel()
            job.close()
            if bar is not None:
                bar.close()
            try:
                if run is not None:
                    run.close()
            finally:
                if on_done is not None:
                    on_done()

    @staticmethod
    def _next_done(job: StreamJob, deadline: float | None) -> Chunk:
        try:
            if deadline is None:
                done = job.done.get()
            else:
                done = job.done.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("Executor.map timed out before all results were ready") from None
        if isinstance(done, BaseException):
            raise done
        return done


# Input items read at a time when outcomes are only replayed from a checkpoint.
REPLAY_BATCH = 4096


def _record_finished(job: StreamJob, run: CheckpointRun, replayed: set[int]) -> None:
    """Keep the chunks that finished but were not consumed: a call stopped early resumes
    without running them again."""
    while True:
        try:
            done = job.done.get_nowait()
        except queue.Empty:
            return
        if isinstance(done, Chunk) and done.seq not in replayed:
            run.record(done)


def _stored_chunk(job: StreamJob, seq: int, piece: Any) -> Chunk:
    """A chunk for a checkpoint's piece: resolved already if its outcomes are stored."""
    first, args, stored = piece
    chunk = Chunk(job, seq, range(first, first + len(args)), args)
    if stored is not None:
        chunk.values, chunk.errors = stored
        chunk.unresolved = 0
    return chunk


class _Flow:
    """How one call's results flow back: its options, its input's length if known, and the
    time.monotonic() by which Executor.map must finish."""

    __slots__ = ("deadline", "options", "total")

    def __init__(self, options: CallOptions, total: int | None, deadline: float | None) -> None:
        self.options = options
        self.total = total
        self.deadline = deadline


class Results(Iterator[R]):
    """The iterator ``imap`` and ``map`` return; ``close()`` stops the call early.

    Iterating it in a ``for`` loop or ``list()`` runs a C-level ``itertools.chain`` over the
    chunks' result lists: per result, a generator frame of our own would cost more than a tiny
    task does. It holds the results of one chunk at a time, so a long ``imap`` keeps only what is
    in flight; ``let_go`` (``Executor.map``, as the standard library's) also lets go of each
    result as it is yielded, at ~6 ns a result (see ``_outcomes``).
    """

    def __init__(
        self, chunks: Iterator[Chunk | None], return_exceptions: bool, let_go: bool
    ) -> None:
        self._chunks = chunks
        outcomes = functools.partial(_outcomes, return_exceptions=return_exceptions, let_go=let_go)
        self._flat: Iterator[R] = itertools.chain.from_iterable(map(outcomes, chunks))

    def __iter__(self) -> Iterator[R]:
        return self._flat

    def __next__(self) -> R:
        return next(self._flat)

    def close(self) -> None:
        """Stop: cancel the tasks not yet started and release the pool."""
        self._chunks.close()  # type: ignore[attr-defined]


class _UnreadChunks(Iterator["Chunk | None"]):
    """An Executor.map call's chunks, which the executor holds until someone reads them.

    Executor.shutdown() runs the rest of an unread map's input (``run_to_end``), as the
    standard library runs every future it submitted, keeping the chunks only if a reader still
    holds the results. Held by the executor, the generator is not closed (which would cancel
    the work) when the caller drops an unread ``map(...)``.
    """

    def __init__(
        self, chunks: Iterator[Chunk | None], flow: _Flow, on_first_read: Callable[[], None]
    ) -> None:
        self._chunks = chunks
        self._flow = flow
        self._on_first_read: Callable[[], None] | None = on_first_read
        self._kept: deque[Chunk | None] = deque()
        self._error: BaseException | None = None
        self._lock = threading.Lock()  # a reader waits for a run_to_end in another thread

    def __next__(self) -> Chunk | None:
        with self._lock:
            self._claim()
            if self._kept:
                return self._kept.popleft()
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return next(self._chunks)

    def close(self) -> None:
        with self._lock:
            self._claim()
            self._kept.clear()
            self._chunks.close()  # type: ignore[attr-defined]

    def _claim(self) -> None:
        """The caller reads (or closes) it: the executor no longer runs it at shutdown."""
        if self._on_first_read is not None:
            self._on_first_read()
            self._on_first_read = None

    def run_to_end(self) -> None:
        """Run every remaining task now, keeping the chunks for a reader. (Whoever reads holds
        this source, through ``Results`` or its ``iter()``; once nobody does, the chunks go
        with it: the executor let go of it when its shutdown began.)"""
        with self._lock:
            # As submitted futures would: a failure no longer stops the input (a reader still
            # gets it raised in its place), and the map's timeout no longer applies.
            self._flow.options = self._flow.options.merge(return_exceptions=True)
            self._flow.deadline = None
            try:
                self._kept.extend(self._chunks)
            except Exception as error:  # the executor broke: the reader will see it
                self._error = error


def _outcomes(chunk: Chunk | None, return_exceptions: bool, let_go: bool) -> Iterable[Any]:
    """A chunk's results in order: its list itself when nothing failed (the fast path). With
    ``let_go`` each is let go of as it is yielded (a caller that drops a result frees it, as
    with the standard library's map): popped off the reversed list, in C."""
    if chunk is None:  # Executor.map's first window went out
        return ()
    values = chunk.values
    if not chunk.errors:
        if not let_go:
            return values
        values.reverse()
        return map(list.pop, itertools.repeat(values, len(values)))
    return _outcomes_with_errors(values, chunk.errors, return_exceptions)


def _outcomes_with_errors(
    values: list[Any], errors: dict[int, BaseException], return_exceptions: bool
) -> Iterator[Any]:
    """Yield up to the first failure, then raise it: the lowest failing index, as serially."""
    for position in range(len(values)):
        value, values[position] = values[position], None
        error = errors.pop(position, None)
        if error is None:
            yield value
        elif return_exceptions:
            yield error
        else:
            raise error


def _native_threads(given: int | None, workers: int) -> int | None:
    """The limit each process worker sets on its native thread pools (see Executor)."""
    if given is not None:
        return given
    from .._backends._processes._native import left_to_environment

    return None if left_to_environment() else max(available_cpus() // workers, 1)


def _shut_down_backends(backends: dict[str, Backend]) -> None:
    for backend in list(backends.values()):
        backend.shutdown(wait=False)


def _common_length(iterables: tuple[Iterable[Any], ...]) -> int | None:
    if all(isinstance(items, Sized) for items in iterables):
        return min(len(items) for items in iterables)  # type: ignore[arg-type]
    return None
