"""What a pipeline has done, per stage: ``Pipeline.statistics()``."""

from __future__ import annotations

from dataclasses import dataclass

from .._core._stats import ExecutorStatistics

__all__ = ["PipelineStatistics", "StageStatistics"]


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
