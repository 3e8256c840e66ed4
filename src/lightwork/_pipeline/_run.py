"""One run of a pipeline: its stage threads, buffers and executors, from start to cleanup."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from .._core._stats import ExecutorStatistics
from ._buffer import END, Buffer
from ._progress import StageBar
from ._stages import Stage
from ._stats import PipelineStatistics, StageStatistics

__all__ = ["Run"]

# After Ctrl-C has terminated the executors, how long to wait for stage threads: one that cannot
# be woken (see the package docstring) must not delay the KeyboardInterrupt beyond a second.
TERMINATE_JOIN_SECONDS = 0.5


class Counters:
    """One stage's running totals; each is written by the stage's own thread only."""

    __slots__ = ("blocked", "ended", "final", "items_in", "items_out", "starved")

    def __init__(self) -> None:
        self.items_in = self.items_out = 0
        self.blocked = self.starved = 0.0
        self.ended: float | None = None  # time.monotonic() when the stage's thread ended
        self.final: ExecutorStatistics | None = None  # the executor's, taken before it went


class Run:
    """One run of a pipeline: its threads, buffers and executors, from start to cleanup."""

    def __init__(self, source: Iterable[Any], stages: tuple[Stage, ...], buffer: int) -> None:
        self.started = time.monotonic()
        self.ended: float | None = None
        self.closed = False
        self.failure: BaseException | None = None
        self.stopped = False
        self._terminated = False
        self._lock = threading.Lock()
        # Work stages, each with the batch sizes applied to its input; and to the output.
        self.stages: list[Stage] = []
        self.batches: list[tuple[int, ...]] = []
        pending: list[int] = []
        for stage in stages:
            if stage.kind == "batch":
                pending.append(stage.batch)
            else:
                self.stages.append(stage)
                self.batches.append(tuple(pending))
                pending = []
        self.output_batches = tuple(pending)
        self.source = iter(source)
        self.counters = [Counters() for _ in self.stages]
        self.buffers = [Buffer(buffer) for _ in self.stages]  # buffers[k]: stage k's output
        self.executors = [stage.executor() for stage in self.stages]
        self.threads = [
            threading.Thread(
                target=self._work,
                args=(k,),
                name=f"lightwork-pipeline-{k}-{stage.name}",
                daemon=True,  # a thread stuck in a task or a blocking source never blocks exit
            )
            for k, stage in enumerate(self.stages)
        ]
        for thread in self.threads:
            thread.start()

    # ---- the caller's side ---------------------------------------------------------------

    def output(self) -> Iterator[Any]:
        if not self.stages:  # nothing to run in parallel: the (batched) source itself
            items: Iterator[Any] = self.source
        else:
            items = self._drain(self.buffers[-1], None)
        for size in self.output_batches:
            items = _batched(items, size)
        return items

    def stop(self) -> None:
        """Ask every stage to stop: buffers drop what is put and end what is got."""
        with self._lock:
            if self.stopped:
                return
            self.stopped = True
        for buffer in self.buffers:
            buffer.stop()

    def fail(self, error: BaseException, stage: Stage | None) -> None:
        note = f"in pipeline stage {stage.name!r}" if stage else "in the pipeline's source"
        if note not in getattr(error, "__notes__", ()):
            error.add_note(note)
        with self._lock:
            # The first failure is the cause; errors after a stop are only its echoes.
            if self.failure is None and not self.stopped:
                self.failure = error
        self.stop()

    def close(self) -> None:
        """Stop, and wait for every stage thread (each shuts its executor down as it ends)."""
        self.stop()
        if self._terminated:
            return  # Ctrl-C already waited as long as it may
        if threading.current_thread().name.startswith("lightwork"):
            return  # called from a task: joining would wait for this very task
        try:
            for thread in self.threads:
                thread.join()
        except KeyboardInterrupt:  # a second Ctrl-C while waiting: stop now
            self.terminate()
            raise
        self._finish()

    def terminate(self) -> None:
        """Ctrl-C: stop, terminate every executor (kill process workers), wait a moment."""
        self.stop()
        with self._lock:
            if self._terminated:
                return
            self._terminated = True
        for counters, executor in zip(self.counters, self.executors, strict=True):
            counters.final = executor.statistics()  # terminate() forgets the workers
            executor.terminate()
        deadline = time.monotonic() + TERMINATE_JOIN_SECONDS
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._finish()

    def _finish(self) -> None:
        if self.ended is None:
            self.ended = time.monotonic()
        self.closed = True

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def statistics(self) -> PipelineStatistics:
        now = time.monotonic()
        stages = []
        for stage, counters, executor in zip(
            self.stages, self.counters, self.executors, strict=True
        ):
            final = counters.final or executor.statistics()
            end = counters.ended or now
            stages.append(
                StageStatistics(
                    stage.name,
                    stage.kind,
                    stage.backend,
                    stage.max_workers,
                    counters.items_in,
                    counters.items_out,
                    final.busy_seconds,
                    counters.blocked,
                    counters.starved,
                    end - self.started,
                    final,
                )
            )
        return PipelineStatistics(
            tuple(stages), (self.ended or now) - self.started, running=self.ended is None
        )

    # ---- a stage's thread ------------------------------------------------------------------

    def _work(self, k: int) -> None:
        stage, counters, executor = self.stages[k], self.counters[k], self.executors[k]
        outbox = self.buffers[k]
        filtering = stage.kind == "filter"
        bar: StageBar | None = None
        results = None
        try:
            bar = StageBar(k, stage, executor, self.buffers[k - 1] if k else None, self.started)
            items = self._pull_source(counters) if k == 0 else self._drain(self.buffers[k - 1], k)
            for size in self.batches[k]:
                items = _batched(items, size)
            assert stage.fn is not None
            assert stage.options is not None
            results = executor._stream(stage.fn, _counted(items, counters), stage.options)
            for value in results:
                bar.update()
                if filtering:
                    keep, value = value
                    if not keep:
                        continue
                waited = outbox.put(value)
                if waited is None:
                    break  # stopped: what is left in flight is cancelled below
                counters.blocked += waited
                counters.items_out += 1
            else:
                outbox.finish()
        except BaseException as error:  # the task's own, or an executor's: all stop the run
            self.fail(error, stage)
        finally:
            if results is not None:
                results.close()  # cancels this stage's queued tasks
            executor.shutdown(wait=True, cancel_futures=True)
            if counters.final is None:
                counters.final = executor.statistics()
            if k == 0 and self.stopped:
                self._close_source()
            counters.ended = time.monotonic()
            if bar is not None:
                bar.close()

    def _pull_source(self, counters: Counters) -> Iterator[Any]:
        """The source, as stage 0's imap input: stops at stop(), times the waits for items."""
        source = self.source
        clock = time.perf_counter
        while not self.stopped:
            started = clock()
            try:
                item = next(source)
            except StopIteration:
                return
            except Exception as error:
                self.fail(error, None)
                return
            counters.starved += clock() - started
            yield item

    def _drain(self, buffer: Buffer, k: int | None) -> Iterator[Any]:
        """A buffer's items until it ends; stage k's starved time grows by the waits."""
        while True:
            item, waited = buffer.get()
            if k is not None:
                self.counters[k].starved += waited
            if item is END:
                return
            yield item

    def _close_source(self) -> None:
        """Stopped early: close a generator source here, in the one thread that runs it, so its
        ``finally`` blocks run now (a socket closes, a file flushes) rather than at collection."""
        close = getattr(self.source, "close", None)
        if close is not None:
            try:
                close()
            except Exception as error:
                self.fail(error, None)


def _counted(items: Iterator[Any], counters: Counters) -> Iterator[Any]:
    for item in items:
        counters.items_in += 1
        yield item


def _batched(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(itertools.islice(items, size)):
        yield batch
