"""The async backend: ``async def`` functions on an event loop, ``max_workers`` at a time.

An ``async def`` function passed to ``map``, ``imap``, ``starmap``, ``submit`` or a pipeline
stage runs here, whatever backend was asked for: coroutines are for waiting (network, disk,
sleeps), which one event loop overlaps better than any pool. The loop runs in a daemon thread of
the calling process; each attempt becomes one asyncio task that starts its tasks under a
semaphore of ``max_workers`` and resolves the chunk when they are all done.

Each coroutine runs in its own context, so ``lightwork.rng()`` and ``lightwork.random()`` give
it its own task's stream even while tasks interleave.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core._counters import WorkerCounters
from .._core._errors import TaskTimeoutError
from .._core._random import async_task
from .._core._run import add_task_note
from .._core._tasks import Attempt, Job
from ._base import Backend

if TYPE_CHECKING:
    from .._core._stats import WorkerStatistics


class AsyncBackend(Backend):
    name = "async"
    # A chunk's coroutines all wait at once, so its size does not trade dispatch cost against
    # balance as for a pool; 64 makes hand-offs rare and results still stream.
    default_chunksize = 64

    def __init__(
        self,
        max_workers: int,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        self.workers = max_workers
        self._initializer = initializer
        self._initargs = initargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._semaphore: asyncio.Semaphore | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._counters = WorkerCounters(0)
        self._tasks_retried = 0
        self._stopped = False

    def submit(self, attempt: Attempt) -> None:
        loop = self._ensure_loop()
        loop.call_soon_threadsafe(self._schedule, attempt)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                ready = threading.Event()
                self._thread = threading.Thread(
                    target=self._run_loop, args=(ready,), name="lightwork-async", daemon=True
                )
                self._thread.start()
                ready.wait()
            assert self._loop is not None
            return self._loop

    def _run_loop(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._semaphore = asyncio.Semaphore(self.workers)
        if self._initializer is not None:
            self._initializer(*self._initargs)
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _schedule(self, attempt: Attempt) -> None:
        if not attempt.chunk.job.start():
            return
        task = asyncio.get_running_loop().create_task(self._run_attempt(attempt))
        self._running.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._running.discard)

    async def _run_attempt(self, attempt: Attempt) -> None:
        chunk = attempt.chunk
        started = time.perf_counter()
        outcomes = await asyncio.gather(
            *(
                self._run_task(chunk.job, chunk.indices[p], chunk.args[p])
                for p in range(attempt.lo, attempt.hi)
            )
        )
        values: list[Any] = []
        errors: dict[int, BaseException] = {}
        for position, (value, error) in enumerate(outcomes, attempt.lo):
            values.append(value)
            if error is not None:
                add_task_note(error, chunk.indices[position])
                errors[position] = error
        seconds = time.perf_counter() - started
        self._counters.tasks += len(values)
        self._counters.chunks += 1
        chunk.job.measured(len(values), seconds)
        chunk.resolve(attempt.lo, values, errors)

    async def _run_task(self, job: Job, index: int, arg: Any) -> tuple[Any, BaseException | None]:
        assert self._semaphore is not None
        options = job.options
        async with self._semaphore:
            async_task.set((job.entropy, index))  # this coroutine's own context
            started = time.perf_counter()
            try:
                for attempt in range(options.retries + 1):
                    try:
                        if options.task_timeout is None:
                            return await job.fn(arg), None
                        return await asyncio.wait_for(job.fn(arg), options.task_timeout), None
                    except TimeoutError:
                        if options.task_timeout is None or attempt == options.retries:
                            if options.task_timeout is None:
                                raise
                            return None, TaskTimeoutError(
                                f"task {index} ran longer than "
                                f"task_timeout={options.task_timeout:g}s and was cancelled"
                            )
                        self._tasks_retried += 1
                    except Exception as error:
                        if not isinstance(error, options.retry_on) or attempt == options.retries:
                            raise
                        self._tasks_retried += 1
                raise AssertionError("unreachable")
            except Exception as error:
                return None, error
            finally:
                self._counters.busy += time.perf_counter() - started

    def cancel_pending(self) -> None:
        loop = self._loop
        if loop is not None and not self._stopped:
            loop.call_soon_threadsafe(self._cancel_all)

    def _cancel_all(self) -> None:
        for task in list(self._running):
            task.cancel()

    def shutdown(self, wait: bool = True) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or self._stopped:
            return
        self._stopped = True
        if wait:
            future = asyncio.run_coroutine_threadsafe(self._drain(), loop)
            future.result()
        loop.call_soon_threadsafe(loop.stop)
        if wait:
            thread.join()
        self._counters.alive = False

    async def _drain(self) -> None:
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def terminate(self) -> None:
        self.cancel_pending()
        self.shutdown(wait=False)

    def worker_statistics(self) -> list[WorkerStatistics]:
        return [self._counters.snapshot()]

    def extra_statistics(self) -> tuple[int, int, int]:
        return (1 if self._loop is not None else 0, 0, self._tasks_retried)
