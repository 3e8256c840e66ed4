"""``Pipeline``: the public API, which declares stages and starts a run when iterated."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar, Unpack

from .._core._errors import InvalidOptionError
from .._core._options import check_iterable
from ._run import Run
from ._stages import Stage, StageOptions
from ._stats import PipelineStatistics

__all__ = ["Pipeline"]

T = TypeVar("T")
R = TypeVar("R")

# Items each buffer between stages holds by default: room for a burst of a few items per worker
# of the next stage, small enough that memory stays bounded (the threading tutorial's queue
# held 10).
DEFAULT_BUFFER = 16


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
        self._stages: tuple[Stage, ...] = ()
        self._run: Run | None = None
        self._lock = threading.Lock()

    def map(
        self, fn: Callable[[T], R], *, name: str | None = None, **options: Unpack[StageOptions]
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
        stage = Stage.create("map", fn, name, self._names(), options)
        return self._then(stage)

    def filter(
        self,
        predicate: Callable[[T], object],
        *,
        name: str | None = None,
        **options: Unpack[StageOptions],
    ) -> Pipeline[T]:
        """A new pipeline with a stage that passes on the items for which ``predicate`` is true.

        The options are those of :meth:`map`. On processes the item travels back with the
        verdict, so an unordered filter needs no bookkeeping in the parent.

        >>> from lightwork import Pipeline
        >>> list(Pipeline(range(10)).filter(lambda x: x % 3 == 0))
        [0, 3, 6, 9]
        """
        stage = Stage.create("filter", predicate, name, self._names(), options)
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
        return self._then(Stage("batch", None, f"batch({size})", batch=size))

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

    def _then(self, stage: Stage) -> Pipeline[Any]:
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
            run = self._run = Run(self._source, self._stages, self._buffer)
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


def _short(source: object) -> str:
    text = repr(source)
    return text if len(text) <= 40 else f"<{type(source).__name__}>"
