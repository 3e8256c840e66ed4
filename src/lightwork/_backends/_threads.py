"""The threads backend: worker threads in this process, for work that releases the GIL.

Attempts wait in one queue; each worker thread takes the next one and runs it with the shared
``run_chunk`` loop. A thread cannot be killed, so ``task_timeout`` works differently from the
process backend: at the deadline a watchdog fails the task with TaskTimeoutError (or retries it
on another thread), re-queues the rest of its chunk, starts a replacement thread and abandons the
stuck one. The stuck thread runs on until its task returns, and its result is discarded.

At interpreter exit, as with ``ThreadPoolExecutor``, every pool finishes the work it was given
(unless ``shutdown(cancel_futures=True)`` dropped it) and then refuses new work. Worker threads
are daemons joined by that exit hook, so an abandoned one never blocks exit.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core._counters import WorkerCounters
from .._core._errors import (
    BrokenWorkerError,
    ExecutorShutdownError,
    TaskTimeoutError,
    WorkerInitializationError,
    as_thread_pool_error,
)
from .._core._run import run_chunk
from .._core._tasks import Attempt, Job, copy_error, fail_attempt
from ._base import Backend

if TYPE_CHECKING:
    from .._core._stats import WorkerStatistics

# How often the watchdog looks for over-time tasks, at most: a deadline is met within this.
WATCHDOG_INTERVAL = 0.05
# A pool of the default size grows while work waits in the queue and the process leaves the
# CPU idle: its tasks wait (I/O, sleeping), and more threads overlap more waiting. Below this
# many CPUs' worth of use, measured over GROW_CHECK_SECONDS; a GIL-bound pool uses ~1 CPU and
# stays as it is, as does one computing with the GIL released.
GROW_BELOW_CPUS = 0.8
GROW_CHECK_SECONDS = 0.05
# The most threads a pool of the default size grows to, as ThreadPoolExecutor's default caps
# itself at 32: each idle thread costs a stack, and the services being called have limits.
MAX_DEFAULT_THREADS = 32


class _ThreadWorker:
    """One worker thread and what the watchdog needs to know about it."""

    def __init__(self, backend: ThreadBackend, number: int, first: Attempt | None = None) -> None:
        self.backend = backend
        self.first = first  # the rest of an abandoned thread's chunk, which it takes over
        self.counters = WorkerCounters(number)
        self.attempt: Attempt | None = None  # the attempt this thread is running, if any
        self.position = 0  # the chunk position of the task it is running
        self.task_started = 0.0  # time.monotonic() when that task started
        self.abandoned = False  # set by the watchdog: this thread's outcomes are discarded
        self.ready = threading.Event()  # set once its initializer has run
        self.started_at = time.monotonic()
        self.thread = threading.Thread(
            target=self.run, name=f"lightwork-thread-{number}", daemon=True
        )

    def run(self) -> None:
        backend = self.backend
        counters = self.counters
        try:
            try:
                self.start_up()
            except BaseException as error:
                backend.break_on(error)  # then serve the queue, failing what arrives
            finally:
                counters.startup = time.monotonic() - self.started_at
                self.ready.set()
            if self.first is not None:
                first, self.first = self.first, None
                if not self._run(first):
                    return
                del first
            while self._serve_next():
                pass
            counters.alive = False
        finally:
            self.finish()

    def start_up(self) -> None:
        """Make the thread ready for work: run the executor's initializer."""
        if self.backend.initializer is not None:
            self.backend.initializer(*self.backend.initargs)

    def run_tasks(
        self, job: Job, indices: range, args: list[Any]
    ) -> tuple[list[Any], dict[int, BaseException], float]:
        """Run tasks in order: (values, errors by position, compute seconds), as run_chunk."""
        return run_chunk(job, indices, args)

    def finish(self) -> None:
        """The thread ends (stopped, or its stuck task returned after it was abandoned)."""

    def _serve_next(self) -> bool:
        """Take the next attempt and run it; False when this thread is to stop.

        A method of its own so that, while the thread waits for more work, no variable of
        its holds the last task's function, arguments or results alive.
        """
        waited = time.perf_counter()
        attempt = self.backend.queue.get()
        self.counters.idle += time.perf_counter() - waited
        if attempt is None or self.abandoned:
            return False
        return self._run(attempt)

    def _run(self, attempt: Attempt) -> bool:
        """Run one attempt; False once this thread has been abandoned."""
        if self.backend.broken is not None:
            fail_attempt(attempt, self.backend.broken)
            return True
        job = attempt.chunk.job
        if not job.start():
            return True
        if job.options.task_timeout is not None:
            return self._run_watched(attempt)
        values, errors, seconds = self.run_tasks(job, attempt.indices(), attempt.args())
        self._record(attempt, len(values), seconds)
        attempt.chunk.resolve(attempt.lo, values, {attempt.lo + p: e for p, e in errors.items()})
        if self.backend.grow_to > self.backend.workers:
            self.backend.grow_if_waiting()
        return True

    def _record(self, attempt: Attempt, tasks: int, seconds: float) -> None:
        self.counters.tasks += tasks
        self.counters.chunks += 1
        self.counters.busy += seconds
        attempt.chunk.job.measured(tasks, seconds)

    def _run_watched(self, attempt: Attempt) -> bool:
        """Run task by task under the watchdog's eye; False once this thread is abandoned."""
        chunk = attempt.chunk
        job = chunk.job
        lock = self.backend.lock
        for position in range(attempt.lo, attempt.hi):
            with lock:
                self.attempt, self.position = attempt, position
                self.task_started = time.monotonic()
            self.backend.watch()
            values, errors, seconds = self.run_tasks(
                job, chunk.indices[position : position + 1], chunk.args[position : position + 1]
            )
            with lock:
                if self.abandoned:
                    return False
                self.attempt = None
                self.counters.tasks += 1
                self.counters.busy += seconds
                job.measured(1, seconds)
                chunk.resolve(position, values, {position + p: e for p, e in errors.items()})
            if self.backend.grow_to > self.backend.workers:  # timed tasks wait too
                self.backend.grow_if_waiting()
        self.counters.chunks += 1
        return True


class ThreadBackend(Backend):
    name = "threads"
    #: what runs each worker thread (the interpreters backend gives its own)
    worker_class: type[_ThreadWorker] = _ThreadWorker

    def __init__(
        self,
        max_workers: int,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        grow_to: int | None = None,
    ) -> None:
        """``max_workers`` threads; with ``grow_to``, up to that many while tasks wait."""
        self.workers = max_workers
        self.grow_to = max(grow_to or max_workers, max_workers)
        self._grow_checked = (time.perf_counter(), time.process_time())
        self.initializer = initializer
        self.initargs = initargs
        self.queue: queue.SimpleQueue[Attempt | None] = queue.SimpleQueue()
        # Guards abandoning a thread against its last resolve, and shutdown's stop markers
        # against a submit. Reentrant: a future's done-callback runs under it (a resolve), and
        # may call shutdown().
        self.lock = threading.RLock()
        self._threads: list[_ThreadWorker] = []
        self._watchdog: threading.Thread | None = None
        self._closed = threading.Event()
        self._tasks_retried = 0
        self.broken: BrokenWorkerError | None = None
        _live_backends.add(self)

    def submit(self, attempt: Attempt) -> None:
        if _interpreter_exiting:
            raise ExecutorShutdownError("cannot schedule new futures after interpreter shutdown")
        if self.broken is not None:  # as ThreadPoolExecutor does, once it is broken
            raise copy_error(self.broken)
        with self.lock:  # not between shutdown's count of threads and its stop markers
            if self._closed.is_set():
                raise ExecutorShutdownError("cannot submit work: the executor has been shut down")
            # Queued first: a thread started now takes it at once (before a shutdown that
            # cancels what is still queued), as in ThreadPoolExecutor.
            self.queue.put(attempt)
            self._ensure_threads()

    def _ensure_threads(self) -> None:
        if not self._threads:
            with self.lock:
                if not self._threads:
                    for _ in range(self.workers):
                        self._start_thread()

    def grow_if_waiting(self) -> None:
        """Double the threads, up to ``grow_to``, if work is queued while the CPU idles."""
        now, cpu = time.perf_counter(), time.process_time()
        checked, cpu_then = self._grow_checked
        if now - checked < GROW_CHECK_SECONDS:
            return
        self._grow_checked = (now, cpu)
        if (cpu - cpu_then) / (now - checked) >= GROW_BELOW_CPUS or self.queue.empty():
            return
        with self.lock:
            if self._closed.is_set():
                return
            more = min(self.workers, self.grow_to - self.workers)
            self.workers += more  # the executor keeps more chunks in flight for them
            for _ in range(more):
                self._start_thread()

    def start_workers(self) -> None:
        self._ensure_threads()
        for worker in list(self._threads):
            worker.ready.wait()
        if self.broken is not None:
            raise copy_error(self.broken)

    def break_on(self, error: BaseException) -> None:
        """The initializer raised (or, given a BrokenWorkerError, a worker broke otherwise):
        every task, queued or to come, fails with that."""
        if isinstance(error, BrokenWorkerError):
            broken = error
        else:
            broken = as_thread_pool_error(
                WorkerInitializationError(
                    "the executor's initializer raised in a worker thread; its exception is "
                    "the cause"
                )
            )
            broken.__cause__ = error
        self.broken = broken
        for attempt in self._take_queued():
            fail_attempt(attempt, broken)

    def _start_thread(self, first: Attempt | None = None) -> None:
        worker = self.worker_class(self, len(self._threads), first)
        self._threads.append(worker)
        worker.thread.start()

    def _live_threads(self) -> list[_ThreadWorker]:
        with self.lock:  # an abandoned thread and its replacement change together
            return [w for w in self._threads if not w.abandoned and w.thread.is_alive()]

    def watch(self) -> None:
        """Make sure the watchdog runs: called when a task with a time limit starts."""
        if self._watchdog is None:
            with self.lock:
                if self._watchdog is None:
                    self._watchdog = threading.Thread(
                        target=self._watch, name="lightwork-thread-watchdog", daemon=True
                    )
                    self._watchdog.start()

    def _watch(self) -> None:
        # Until the pool is closed and its threads are done: shutdown(wait=True), at exit
        # too, must not wait forever on a task that overruns its time limit.
        while True:
            time.sleep(WATCHDOG_INTERVAL)
            if self._closed.is_set() and not self._live_threads():
                return
            now = time.monotonic()
            with self.lock:
                for worker in list(self._threads):
                    attempt = worker.attempt
                    if worker.abandoned or attempt is None:
                        continue
                    limit = attempt.chunk.job.options.task_timeout
                    if limit is not None and now - worker.task_started > limit:
                        self._abandon(worker, attempt, worker.position, limit)

    def _abandon(
        self, worker: _ThreadWorker, attempt: Attempt, position: int, limit: float
    ) -> None:
        """Give up on a stuck thread (lock held): fail or retry its task; a new thread takes
        over the rest of its chunk (not through the queue: after shutdown's stop markers, no
        thread would take it)."""
        worker.abandoned = True
        worker.counters.alive = False
        chunk = attempt.chunk
        rest_lo = position + 1
        if chunk.charge_retry(position):
            self._tasks_retried += 1
            rest_lo = position
        else:
            chunk.fail(
                position,
                TaskTimeoutError(
                    f"task {chunk.indices[position]} ran longer than task_timeout={limit:g}s; "
                    "its thread could not be stopped and was abandoned"
                ),
            )
        self._start_thread(Attempt(chunk, rest_lo, attempt.hi) if rest_lo < attempt.hi else None)

    def shutdown(self, wait: bool = True) -> None:
        with self.lock:
            if not self._closed.is_set():
                self._closed.set()
                # One stop marker per thread not abandoned: a thread that replaces an
                # abandoned one later takes the marker the abandoned one would have.
                for _ in range(sum(not w.abandoned for w in self._threads)):
                    self.queue.put(None)
        if wait:
            while live := self._live_threads():  # threads abandoned meanwhile don't count
                live[0].thread.join(WATCHDOG_INTERVAL)

    def _take_queued(self) -> list[Attempt]:
        """Take the attempts no thread has taken yet; shutdown's stop markers stay queued (a
        thread still in a failing initializer must find its own)."""
        taken: list[Attempt] = []
        markers = 0
        while True:
            try:
                attempt = self.queue.get_nowait()
            except queue.Empty:
                break
            if attempt is None:
                markers += 1
            else:
                taken.append(attempt)
        for _ in range(markers):
            self.queue.put(None)
        return taken

    def cancel_pending(self) -> None:
        for attempt in self._take_queued():
            attempt.chunk.job.abort(ExecutorShutdownError("cancelled by shutdown()"))

    def terminate(self) -> None:
        self.cancel_pending()  # running tasks cannot be stopped in a thread
        self.shutdown(wait=False)
        # Stopped, not finished (Ctrl-C): the exit hook must not wait for the chunks its
        # threads are still running; they are daemons, abandoned as a timed-out one is.
        _live_backends.discard(self)

    def worker_statistics(self) -> list[WorkerStatistics]:
        return [w.counters.snapshot() for w in self._threads]

    def extra_statistics(self) -> tuple[int, int, int]:
        abandoned = sum(w.abandoned for w in self._threads)
        return (len(self._threads), abandoned, self._tasks_retried)


_live_backends: weakref.WeakSet[ThreadBackend] = weakref.WeakSet()
# In a forked child the pools are the parent's, without their threads: nothing to wait for.
os.register_at_fork(after_in_child=_live_backends.clear)
_interpreter_exiting = False


def _finish_at_exit() -> None:
    """At interpreter exit, let every pool finish its work, then refuse more (as the standard
    library's thread pools do); runs before atexit handlers, once the main thread is done."""
    global _interpreter_exiting
    _interpreter_exiting = True
    for backend in list(_live_backends):
        backend.shutdown(wait=True)


try:
    threading._register_atexit(_finish_at_exit)  # type: ignore[attr-defined]
except RuntimeError:  # first imported while the interpreter exits: take no new work
    _interpreter_exiting = True
