"""Pipelines: chains of executors joined by bounded buffers, the producer-consumer done once.

    source ─► stage 0 thread ──put─► buffer 0 ──get─► stage 1 thread ──put─► buffer 1 ─► caller
              imap(fn0, source)     (bounded)         imap(fn1, buffer 0)   (bounded)   for x in p
                 │        ▲                              │        ▲
              submit   results                        submit   results
                 ▼        │                              ▼        │
              Executor 0 workers                      Executor 1 workers
              (threads, say)                          (processes, say)

Who touches what:

* the source iterator: only stage 0's thread, from inside its ``imap``, so a generator never
  runs in two threads and is pulled only when stage 0 has room for more work;
* buffer k (a deque of at most ``buffer`` items, under a Condition): stage k puts, stage k + 1
  (or the caller, for the last one) gets; ``stop()`` wakes both sides at once;
* executor k: created by the caller when iteration starts, fed and drained by stage k's thread
  through one ``imap`` call, shut down by that thread when it ends, or terminated by the
  caller on Ctrl-C;
* the run's failure: written once, by the first stage that fails; raised by the caller.

Backpressure needs no code of its own: a stage's ``imap`` pulls input only when it has room in
flight, and its thread waits while the next buffer is full, so a slow stage stops its
``imap``, which stops pulling from the buffer before it, and so on back to the source. Each
stage holds at most its buffer plus its executor's look-ahead (``4 * workers * chunksize``
items for threads and processes), so memory is bounded whatever the source's length.

Stopping: when the source ends, every item already taken drains through all stages and
iteration ends. An error in any stage, ``close()``, or leaving the ``for`` loop (which closes
the iterator) stops all of them: no more input is taken, queued tasks are cancelled, running
ones finish, and every thread and worker is gone before control returns. Ctrl-C does not wait
for running tasks: it terminates the stage executors (killing process workers) and re-raises
within a second. A stage thread that cannot be woken by then is left behind as a daemon: one
inside a thread worker's task, or a process stage whose tasks were all running (none queued),
whose ``imap`` a terminated executor never ends.

One trade-off of feeding through ``imap``: a stage's thread both submits and collects, so while
it waits for more input it does not pass on results it already has. With a steady source this
costs nothing; with a source that pauses, up to a stage's look-ahead of results wait in it
until the next item arrives or the source ends.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

from ._core._errors import InvalidOptionError
from ._core._options import check_callable, check_chunksize, check_iterable
from ._core._stats import ExecutorStatistics
from ._engine._executor import Executor

__all__ = ["Pipeline", "PipelineStatistics", "StageStatistics"]

T = TypeVar("T")
R = TypeVar("R")

# Items each buffer between stages holds by default: room for a burst of a few items per worker
# of the next stage, small enough that memory stays bounded (the threading tutorial's queue
# held 10).
DEFAULT_BUFFER = 16
# After Ctrl-C has terminated the executors, how long to wait for stage threads: one that cannot
# be woken (see the module docstring) must not delay the KeyboardInterrupt beyond a second.
TERMINATE_JOIN_SECONDS = 0.5
# How often a progress bar's postfix (busy share, input buffer fill) is refreshed: reading the
# executor's statistics on every item would cost more than a tiny task.
PROGRESS_REFRESH_SECONDS = 0.25

_END: Any = object()  # what a buffer's get() returns once it is finished or stopped


# ---- the public API ----------------------------------------------------------------------------


class Pipeline(Generic[T]):
    """Items from ``source`` through stages of workers, each stage as parallel as it needs.

    Each ``map`` or ``filter`` adds a stage that runs on its own :class:`lightwork.Executor`
    (threads by default; ``backend="processes"`` for CPU-bound work), with its own worker
    count and ordering. Stages are joined by buffers of ``buffer`` items, so a slow stage
    slows the stages before it instead of filling memory. Iterating yields the last stage's
    results (in source order unless a stage has ``ordered=False``); ``run()`` drains a
    pipeline whose last stage is a sink. The source may be any iterable, endless included.

    >>> from lightwork import Pipeline
    >>> squares = Pipeline(range(10)).map(lambda x: x * x, max_workers=2)
    >>> list(squares.filter(lambda x: x % 2 == 0))
    [0, 4, 16, 36, 64]
    >>> list(Pipeline("abcde").batch(2).map("".join))
    ['ab', 'cd', 'e']

    An exception in any stage stops every stage and is raised to the caller as the task's own
    type, with a note naming the stage. Stage executors start when iteration starts and are
    shut down when it ends, however it ends; ``with pipeline:`` also makes Ctrl-C in the body
    of the loop stop the workers at once.
    """

    def __init__(self, source: Iterable[T], *, buffer: int = DEFAULT_BUFFER) -> None:
        check_iterable(source, "source")
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise InvalidOptionError(f"buffer must be an int >= 1, not {buffer!r}")
        self._source: Iterable[Any] = source
        self._buffer = buffer
        self._stages: tuple[_Stage, ...] = ()
        self._run: _Run | None = None
        self._lock = threading.Lock()

    def map(
        self,
        fn: Callable[[T], R],
        *,
        backend: str = "threads",
        max_workers: int | None = None,
        ordered: bool = True,
        chunksize: int | None = None,
        retries: int = 1,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        task_timeout: float | None = None,
        seed: int | None = None,
        name: str | None = None,
        progress: bool = False,
    ) -> Pipeline[R]:
        """A new pipeline with a stage that yields ``fn(item)`` for each item.

        ``backend`` defaults to ``"threads"``: pipelines mostly wait on networks, disks and
        databases, threads start at once and pass items without pickling them. Ask for
        ``"processes"`` for CPU-bound Python (its items and results are pickled), ``"serial"``
        to run the stage in its own pipeline thread, one item at a time.

        ``max_workers``: the stage's workers (None: the CPUs this process may use).
        ``ordered=False`` passes results on as they finish. ``chunksize=None`` sends one item
        per task, so items move on as soon as each is done and the buffers bound memory; a
        number amortizes the dispatch cost of tiny tasks on processes, at the cost of holding
        up to ``4 * workers * chunksize`` items in the stage. ``retries``, ``retry_on``,
        ``task_timeout`` and ``seed`` are those of :class:`lightwork.Executor`: a task whose
        worker crashed is re-run, so every item still passes the stage exactly once.
        ``name`` names the stage in errors, statistics and progress bars (default: the
        function's name). ``progress=True`` shows a tqdm bar for the stage.

        Options are checked here, not when the pipeline runs.

        >>> from lightwork import Pipeline
        >>> list(Pipeline([3, 1, 2]).map(str, backend="serial"))
        ['3', '1', '2']
        """
        stage = _Stage.create(
            "map",
            fn,
            name,
            backend=backend,
            max_workers=max_workers,
            ordered=ordered,
            chunksize=chunksize,
            retries=retries,
            retry_on=retry_on,
            task_timeout=task_timeout,
            seed=seed,
            progress=progress,
            taken=self._names(),
        )
        return self._then(stage)

    def filter(
        self,
        predicate: Callable[[T], object],
        *,
        backend: str = "threads",
        max_workers: int | None = None,
        ordered: bool = True,
        chunksize: int | None = None,
        retries: int = 1,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        task_timeout: float | None = None,
        seed: int | None = None,
        name: str | None = None,
        progress: bool = False,
    ) -> Pipeline[T]:
        """A new pipeline with a stage that passes on the items for which ``predicate`` is true.

        The options are those of :meth:`map`. On processes the item travels back with the
        verdict, so an unordered filter needs no bookkeeping in the parent.

        >>> from lightwork import Pipeline
        >>> list(Pipeline(range(10)).filter(lambda x: x % 3 == 0))
        [0, 3, 6, 9]
        """
        stage = _Stage.create(
            "filter",
            predicate,
            name,
            backend=backend,
            max_workers=max_workers,
            ordered=ordered,
            chunksize=chunksize,
            retries=retries,
            retry_on=retry_on,
            task_timeout=task_timeout,
            seed=seed,
            progress=progress,
            taken=self._names(),
        )
        return self._then(stage)

    def batch(self, size: int) -> Pipeline[list[T]]:
        """A new pipeline whose items are lists of ``size`` consecutive items (the last may be
        shorter): one task per list, such as one database transaction per batch of rows.

        Batching is not a stage of its own: the next stage's thread groups its input.

        >>> from lightwork import Pipeline
        >>> list(Pipeline(range(5)).batch(2).map(sum))
        [1, 5, 4]
        """
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidOptionError(f"batch size must be an int >= 1, not {size!r}")
        return self._then(_Stage("batch", None, f"batch({size})", batch=size))

    def run(self) -> PipelineStatistics:
        """Run to the end, discarding the last stage's results; return the statistics.

        For pipelines whose last stage is a sink, such as a database writer. Ctrl-C stops
        every stage at once and is re-raised.

        >>> from lightwork import Pipeline
        >>> saved = []
        >>> stats = Pipeline(range(4)).map(saved.append, max_workers=1).run()
        >>> saved, stats.stages[0].items_out
        ([0, 1, 2, 3], 4)
        """
        try:
            for _ in self:
                pass
        except KeyboardInterrupt:
            self._terminate()
            raise
        return self.statistics()

    def __iter__(self) -> Iterator[T]:
        """Start the stages and yield the last one's results; leaving the loop stops them."""
        return self._iterate()

    def statistics(self) -> PipelineStatistics:
        """Where the time went, per stage, for the current or last run (zeros before one).

        >>> from lightwork import Pipeline
        >>> p = Pipeline(range(3)).map(abs, name="absolute")
        >>> _ = list(p)
        >>> [(s.name, s.items_in, s.items_out) for s in p.statistics().stages]
        [('absolute', 3, 3)]
        """
        run = self._run
        if run is None:
            work = [s for s in self._stages if s.kind != "batch"]
            return PipelineStatistics(tuple(s.idle_statistics() for s in work), 0.0, False)
        return run.statistics()

    def close(self) -> None:
        """Stop the running pipeline: take no more input, cancel queued tasks, wait for running
        ones, shut the executors down. Safe to call from any thread, and more than once.

        From another thread it is what the tutorial's ``Event.set()`` was: the iterating
        thread's loop then ends normally. From inside a task it only asks the stages to stop.
        """
        run = self._run
        if run is not None:
            run.close()

    def __enter__(self) -> Pipeline[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._terminate()
        else:
            self.close()

    def __repr__(self) -> str:
        steps = "".join(f".{s.describe()}" for s in self._stages)
        return f"Pipeline({_short(self._source)}){steps}"

    # ---- internals ---------------------------------------------------------------------------

    def _then(self, stage: _Stage) -> Pipeline[Any]:
        """A new pipeline: this one's stages and one more (so ``p.map(f)`` leaves ``p`` as is)."""
        pipeline: Pipeline[Any] = Pipeline(self._source, buffer=self._buffer)
        pipeline._stages = (*self._stages, stage)
        return pipeline

    def _names(self) -> set[str]:
        return {s.name for s in self._stages}

    def _iterate(self) -> Iterator[T]:
        # A generator, so that leaving a for loop (the generator is closed) stops the stages.
        with self._lock:
            if self._run is not None and not self._run.closed:
                raise RuntimeError("this pipeline is already running: iterate it once at a time")
            run = self._run = _Run(self._source, self._stages, self._buffer)
        try:
            yield from run.output()
        except KeyboardInterrupt:
            run.terminate()  # don't wait for running tasks: the user wants to stop now
            raise
        finally:
            run.close()
        run.raise_failure()

    def _terminate(self) -> None:
        run = self._run
        if run is not None:
            run.terminate()


@dataclass(frozen=True)
class StageStatistics:
    """One stage of a pipeline, in ``Pipeline.statistics().stages``.

    The stage that limits the pipeline has the highest ``utilization``: the stages before it
    spend their time ``blocked`` (its input buffer is full), those after it ``starved``.
    """

    name: str
    kind: str  #: "map" or "filter"
    backend: str
    max_workers: int
    items_in: int  #: items taken from the stage's input (lists, after a batch())
    items_out: int  #: items passed on (fewer than in for a filter, or when stopped early)
    busy_seconds: float  #: time the stage's workers spent running its function, summed
    blocked_seconds: float  #: time waiting for room in the next buffer: later stages are slower
    starved_seconds: float  #: time waiting for input: earlier stages (or the source) are slower
    elapsed_seconds: float  #: from the start of the run to the stage's end (or now)
    executor: ExecutorStatistics | None  #: the stage executor's own: crashes, retries, workers

    @property
    def utilization(self) -> float:
        """The busy share of the stage's worker capacity: near 1.0 for the bottleneck."""
        capacity = self.max_workers * self.elapsed_seconds
        return self.busy_seconds / capacity if capacity > 0 else 0.0


@dataclass(frozen=True)
class PipelineStatistics:
    """What a pipeline has done, per stage: ``Pipeline.statistics()`` and ``run()``.

    ``str()`` of it is a small table that points at the bottleneck.
    """

    stages: tuple[StageStatistics, ...]
    elapsed_seconds: float  #: since the run started, to its end if it has ended
    running: bool

    @property
    def bottleneck(self) -> str | None:
        """The name of the stage with the highest utilization; None before any work."""
        busiest = max(self.stages, key=lambda s: s.utilization, default=None)
        return busiest.name if busiest is not None and busiest.busy_seconds > 0 else None

    def __str__(self) -> str:
        width = max([len(repr(s.name)) for s in self.stages] + [5])
        lines = [
            f"{'stage':<{width}}  {'backend':<9} {'workers':>7} {'in':>7} {'out':>7} "
            f"{'busy':>5} {'blocked':>9} {'starved':>9}"
        ]
        bottleneck = self.bottleneck
        for s in self.stages:
            mark = "  <- bottleneck" if s.name == bottleneck else ""
            lines.append(
                f"{s.name!r:<{width}}  {s.backend:<9} {s.max_workers:>7} {s.items_in:>7} "
                f"{s.items_out:>7} {s.utilization:>5.0%} {s.blocked_seconds:>7.2f} s "
                f"{s.starved_seconds:>7.2f} s{mark}"
            )
        return "\n".join(lines)


# ---- stages ------------------------------------------------------------------------------------


class _Keep:
    """A filter stage's task: ``(True, item)`` passes the item on, ``(False, None)`` drops it."""

    __slots__ = ("fn",)  # ``fn`` by that name: the process backend names it if it won't pickle

    def __init__(self, fn: Callable[[Any], object]) -> None:
        self.fn = fn

    def __call__(self, item: Any) -> tuple[bool, Any]:
        return (True, item) if self.fn(item) else (False, None)


@dataclass(frozen=True)
class _Stage:
    """One step of a pipeline as declared: its function and options, already checked."""

    kind: str  # "map", "filter" or "batch"
    fn: Callable[[Any], Any] | None
    name: str
    batch: int = 0  # the list size, for a "batch" step
    backend: str = "threads"
    max_workers: int = 1  # resolved: None became the CPU count
    ordered: bool = True
    chunksize: int = 1
    progress: bool = False
    retries: int = 1
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = ()
    task_timeout: float | None = None
    seed: int | None = None

    @classmethod
    def create(
        cls,
        kind: str,
        fn: Callable[[Any], Any],
        name: str | None,
        *,
        backend: str,
        max_workers: int | None,
        ordered: bool,
        chunksize: int | None,
        retries: int,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
        task_timeout: float | None,
        seed: int | None,
        progress: bool,
        taken: set[str],
    ) -> _Stage:
        check_callable(fn)
        if name is None:
            name = _unique(getattr(fn, "__name__", type(fn).__name__), taken)
        elif not isinstance(name, str):
            raise InvalidOptionError(f"name must be a str or None, not {name!r}")
        stage = cls(
            kind,
            _Keep(fn) if kind == "filter" else fn,
            name,
            backend=backend,
            max_workers=0,
            ordered=bool(ordered),
            chunksize=check_chunksize(chunksize) or 1,  # why 1: see map()'s docstring
            progress=bool(progress),
            retries=retries,
            retry_on=retry_on,
            task_timeout=task_timeout,
            seed=seed,
        )
        # The executor checks its own options, with its own messages; it starts nothing yet.
        probe = stage._executor(max_workers)
        return dataclasses.replace(stage, backend=probe.backend, max_workers=probe.max_workers)

    def executor(self) -> Executor:
        return self._executor(self.max_workers)

    def _executor(self, max_workers: int | None) -> Executor:
        return Executor(
            max_workers,
            backend=self.backend,
            retries=self.retries,
            retry_on=self.retry_on,
            task_timeout=self.task_timeout,
            seed=self.seed,
        )

    def describe(self) -> str:
        if self.kind == "batch":
            return self.name
        return f"{self.kind}({self.name!r}, backend={self.backend!r})"

    def idle_statistics(self) -> StageStatistics:
        return StageStatistics(
            self.name, self.kind, self.backend, self.max_workers, 0, 0, 0.0, 0.0, 0.0, 0.0, None
        )


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    return next(f"{name}#{n}" for n in itertools.count(2) if f"{name}#{n}" not in taken)


def _short(source: object) -> str:
    text = repr(source)
    return text if len(text) <= 40 else f"<{type(source).__name__}>"


# ---- a run -------------------------------------------------------------------------------------


class _Buffer:
    """A bounded FIFO between two threads: ``put`` waits while full, ``get`` while empty.

    One thread puts and one gets, and the buffer cannot be full and empty at once, so at most
    one of them waits and ``notify()`` always wakes the right one. ``stop()`` wakes both.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[Any] = deque()  # e.g. deque([b'msg 41', b'msg 42'])
        self._cond = threading.Condition(threading.Lock())
        self._finished = False  # the producer has put its last item
        self._stopped = False  # the run stopped: put drops its item, get returns _END

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Any) -> float | None:
        """Append ``item``: the seconds spent waiting for room, or None if the run stopped."""
        with self._cond:
            waited = 0.0
            if len(self._items) >= self.capacity and not self._stopped:
                started = time.perf_counter()
                while len(self._items) >= self.capacity and not self._stopped:
                    self._cond.wait()
                waited = time.perf_counter() - started
            if self._stopped:
                return None
            self._items.append(item)
            self._cond.notify()
            return waited

    def get(self) -> tuple[Any, float]:
        """The next item, or _END once finished and empty, or stopped; and the seconds waited."""
        with self._cond:
            waited = 0.0
            if not self._items and not self._finished and not self._stopped:
                started = time.perf_counter()
                while not self._items and not self._finished and not self._stopped:
                    self._cond.wait()
                waited = time.perf_counter() - started
            if self._stopped or not self._items:
                return _END, waited
            item = self._items.popleft()
            self._cond.notify()
            return item, waited

    def finish(self) -> None:
        """No more items will come: get() returns _END once the buffer is empty."""
        with self._cond:
            self._finished = True
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()


class _Counters:
    """One stage's running totals; each is written by the stage's own thread only."""

    __slots__ = ("blocked", "ended", "final", "items_in", "items_out", "starved")

    def __init__(self) -> None:
        self.items_in = self.items_out = 0
        self.blocked = self.starved = 0.0
        self.ended: float | None = None  # time.monotonic() when the stage's thread ended
        self.final: ExecutorStatistics | None = None  # the executor's, taken before it went


class _Run:
    """One run of a pipeline: its threads, buffers and executors, from start to cleanup."""

    def __init__(self, source: Iterable[Any], stages: tuple[_Stage, ...], buffer: int) -> None:
        self.started = time.monotonic()
        self.ended: float | None = None
        self.closed = False
        self.failure: BaseException | None = None
        self.stopped = False
        self._terminated = False
        self._lock = threading.Lock()
        # Work stages, each with the batch sizes applied to its input; and to the output.
        self.stages: list[_Stage] = []
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
        self.counters = [_Counters() for _ in self.stages]
        self.buffers = [_Buffer(buffer) for _ in self.stages]  # buffers[k]: stage k's output
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

    def fail(self, error: BaseException, stage: _Stage | None) -> None:
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
        bar: _StageBar | None = None
        results = None
        try:
            bar = _StageBar(k, stage, executor, self.buffers[k - 1] if k else None, self.started)
            items = self._pull_source(counters) if k == 0 else self._drain(self.buffers[k - 1], k)
            for size in self.batches[k]:
                items = _batched(items, size)
            assert stage.fn is not None
            results = executor.imap(
                stage.fn,
                _counted(items, counters),
                chunksize=stage.chunksize,
                ordered=stage.ordered,
            )
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

    def _pull_source(self, counters: _Counters) -> Iterator[Any]:
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

    def _drain(self, buffer: _Buffer, k: int | None) -> Iterator[Any]:
        """A buffer's items until it ends; stage k's starved time grows by the waits."""
        while True:
            item, waited = buffer.get()
            if k is not None:
                self.counters[k].starved += waited
            if item is _END:
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


def _counted(items: Iterator[Any], counters: _Counters) -> Iterator[Any]:
    for item in items:
        counters.items_in += 1
        yield item


def _batched(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


class _StageBar:
    """A stage's tqdm bar (tqdm imported only if asked for): items done, with the stage's busy
    share and its input buffer's fill, which together point at the bottleneck: a full input
    and ~100% busy is the slow stage; an empty input means an earlier stage is slower."""

    def __init__(
        self,
        position: int,
        stage: _Stage,
        executor: Executor,
        inbox: _Buffer | None,
        started: float,
    ) -> None:
        self._bar: Any = None
        if not stage.progress:
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(desc=stage.name, unit="item", position=position, dynamic_ncols=True)
        self._executor = executor
        self._capacity = stage.max_workers
        self._inbox = inbox
        self._started = started
        self._next_refresh = 0.0

    def update(self) -> None:
        bar = self._bar
        if bar is None:
            return
        bar.update()
        now = time.monotonic()
        if now < self._next_refresh:
            return
        self._next_refresh = now + PROGRESS_REFRESH_SECONDS
        busy = self._executor.statistics().busy_seconds
        share = busy / max(self._capacity * (now - self._started), 1e-9)
        postfix = f"busy {share:.0%}"
        if self._inbox is not None:
            postfix += f", input {len(self._inbox)}/{self._inbox.capacity}"
        bar.set_postfix_str(postfix, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
