"""The scaling lab: speed-up and efficiency over worker counts and backends, and the law behind.

    scale(fn, items)
      baseline: Executor(backend="serial"), warm-up, `repeat` timed runs  -> T1 = their median
      per backend b, per worker count p, a fresh Executor(p, backend=b):
        start()                                  start-up, timed apart
        warm-up run, untimed                     fn's first trip to each worker, its imports
        statistics()
        repeat x  time list(imap(fn, items))     median, min, max; S = T1 / median
        statistics()                             the difference: where the workers' time went
      per backend: fit_amdahl (strong) or fit_gustafson (weak) to every timed run's speed-up

Every point gets a fresh executor, so no point inherits another's warm workers. Each run is
one complete ``imap`` over the items, results collected as a user would.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._engine._executor import Executor
from .._engine._stats import ExecutorStatistics
from .._errors import InvalidOptionError
from .._options import available_cpus, check_backend, check_callable, check_chunksize
from ._fit import AmdahlFit, GustafsonFit, fit_amdahl, fit_gustafson, karp_flatt
from ._modes import BASELINE_BACKEND, MODES

if TYPE_CHECKING:
    from .._progress import ProgressBar

__all__ = ["ScalingPoint", "ScalingReport", "TimeBreakdown", "default_worker_counts", "scale"]


@dataclass(frozen=True)
class TimeBreakdown:
    """Where the workers' time went during the timed runs: seconds per run, over all workers.

    The time there was is ``capacity``: workers x wall-clock seconds of a run. The workers
    report what they spent running tasks (``busy``), pickling results (``serialize``),
    unpickling functions and arguments (``deserialize``) and waiting for work (``idle``);
    ``other`` is the rest of the capacity, clipped at 0: data in transit, the parent's own
    dispatch, and waits the workers could not see. Thread and serial workers pickle nothing.

    A worker adds a wait to ``idle`` when the wait ends: its wait after the last task of the
    warm-up run is counted, that after the last timed run is not, which balances out over
    similar runs. The time between runs, when every worker waits but no run is timed, is taken
    off ``idle``.
    """

    capacity: float
    busy: float
    serialize: float
    deserialize: float
    idle: float
    other: float

    def fractions(self) -> dict[str, float]:
        """Each part as a fraction of the capacity.

        >>> TimeBreakdown(2.0, 1.5, 0.0, 0.1, 0.3, 0.1).fractions()["busy"]
        0.75
        """
        parts = {
            "busy": self.busy,
            "serialize": self.serialize,
            "deserialize": self.deserialize,
            "idle": self.idle,
            "other": self.other,
        }
        if self.capacity <= 0:
            return dict.fromkeys(parts, math.nan)
        return {name: seconds / self.capacity for name, seconds in parts.items()}


@dataclass(frozen=True)
class ScalingPoint:
    """One backend at one worker count: its timed runs and what they mean."""

    backend: str
    workers: int
    items: int  #: tasks in one run (in weak mode, they grow with ``workers``)
    seconds: tuple[float, ...]  #: wall-clock seconds of each timed run
    median_seconds: float
    min_seconds: float
    max_seconds: float
    #: baseline / median (strong); workers x baseline / median, the scaled speed-up (weak)
    speedup: float
    efficiency: float  #: speed-up / workers
    #: Amdahl's f solved from this point alone (strong mode, more than one worker); else None
    karp_flatt: float | None
    startup_seconds: float  #: wall-clock time of ``executor.start()``, not in ``seconds``
    breakdown: TimeBreakdown

    def run_speedups(self) -> list[float]:
        """The speed-up of each timed run: what the fits use, so that run-to-run noise counts."""
        # speedup x median is the baseline's time for this point's work (T1, or p x T1 weak).
        work = self.speedup * max(self.median_seconds, _TINY)
        return [work / max(s, _TINY) for s in self.seconds]


@dataclass(frozen=True)
class ScalingReport:
    """What :func:`scale` measured: the points, the serial baseline and the fitted law.

    ``print(report)`` shows :meth:`table`; :meth:`to_json` has everything; :meth:`plot` draws it.
    """

    mode: str  #: "strong" or "weak"
    workload: str | None  #: a name for the work, for titles
    baseline: ScalingPoint  #: the serial backend on the one-worker work
    points: tuple[ScalingPoint, ...]  #: per backend, per worker count, in measuring order
    #: Amdahl (strong) or Gustafson (weak) fitted to every run of the backend
    fits: dict[str, AmdahlFit | GustafsonFit]
    repeat: int
    warmup: int
    chunksize: int | None
    cpus: int  #: ``lightwork.available_cpus()`` where it ran
    python: str = field(default_factory=platform.python_version)  #: the version it ran on
    machine: str = field(default_factory=platform.platform)  #: the platform it ran on

    @property
    def baseline_seconds(self) -> float:
        """The median serial time of the one-worker work: T1."""
        return self.baseline.median_seconds

    @property
    def backends(self) -> list[str]:
        """The backends measured, in order."""
        return list(dict.fromkeys(p.backend for p in self.points))

    def points_for(self, backend: str) -> list[ScalingPoint]:
        """The points of one backend, by worker count."""
        return sorted((p for p in self.points if p.backend == backend), key=lambda p: p.workers)

    def table(self) -> str:
        """A fixed-width table of every point, then one line per backend with its fit."""
        weak = self.mode == "weak"
        what = "scaled speed-up S = p T1 / T(p)" if weak else "speed-up S = T1 / T(p)"
        name = self.workload or "work"
        lines = [
            f"{name}: {self.mode} scaling on {self.cpus} CPUs, {self.baseline.items:,} items"
            f"{' per worker' if weak else ''}, median of {self.repeat} run"
            f"{'s' if self.repeat != 1 else ''} each; {what}",
            "",
        ]
        header = (
            f"{'backend':<10} {'workers':>7} {'items':>8} {'median s':>9} {'min s':>8} "
            f"{'max s':>8} {'speed-up':>8} {'effic.':>7} {'Karp-Flatt':>10}  "
            f"{'busy':>5} {'ser':>5} {'deser':>5} {'idle':>5} {'other':>5}  {'start-up s':>10}"
        )
        lines += [
            " " * header.index(" busy") + " where the time went (% of workers x wall)",
            header,
            "-" * len(header),
        ]
        for point in (self.baseline, *self.points):
            lines.append(_row(point))
        lines.append("")
        law = "Gustafson" if weak else "Amdahl"
        for backend in self.backends:
            lines.append(f"{backend} ({law}): {self.fits[backend].summary()}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        """Everything, as plain JSON-ready data (NaN and infinity become None)."""
        record: dict[str, Any] = {
            "mode": self.mode,
            "workload": self.workload,
            "repeat": self.repeat,
            "warmup": self.warmup,
            "chunksize": self.chunksize,
            "cpus": self.cpus,
            "python": self.python,
            "machine": self.machine,
            "baseline_seconds": self.baseline_seconds,
            "baseline": _point_record(self.baseline),
            "points": [_point_record(p) for p in self.points],
            "fits": {b: _fit_record(f) for b, f in self.fits.items()},
        }
        cleaned: dict[str, Any] = _finite(record)
        return cleaned

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as strict JSON (no NaN): ``json.loads`` gives it back."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Draw speed-up and efficiency against workers to a PNG at ``path`` (needs matplotlib)."""
        from ._plot import plot

        return plot(self, path, title=title)


def default_worker_counts(cpus: int | None = None) -> list[int]:
    """1, 2, 4, ... up to the CPUs, and the CPU count itself.

    >>> default_worker_counts(6)
    [1, 2, 4, 6]
    >>> default_worker_counts(1)
    [1]
    """
    limit = available_cpus() if cpus is None else cpus
    counts = [1]
    while counts[-1] * 2 <= limit:
        counts.append(counts[-1] * 2)
    if counts[-1] != limit:
        counts.append(limit)
    return counts


def scale(
    fn: Callable[[Any], Any],
    items: Iterable[Any] | Callable[[int], Iterable[Any]],
    *,
    max_workers: Sequence[int] | None = None,
    backends: Sequence[str] = ("processes",),
    repeat: int = 3,
    mode: str = "strong",
    progress: bool = False,
    chunksize: int | None = None,
    warmup: int = 1,
    name: str | None = None,
) -> ScalingReport:
    """Measure how ``fn`` over ``items`` speeds up with workers, and fit the law behind it.

    ``mode="strong"`` (Amdahl): the same ``items`` on every worker count; ``items`` is read once
    into a list unless it is already a sequence. ``mode="weak"`` (Gustafson): the work grows
    with the workers: ``items`` is then ``items(p) -> iterable``, or a sequence repeated ``p``
    times, and the scaled speed-up is ``p x T1 / T(p)``.

    The baseline T1 is the median of ``repeat`` runs on the serial backend. Then for each of
    ``backends`` and each of ``max_workers`` (default: 1, 2, 4, ... and the CPU count) a fresh
    executor starts its workers (timed apart: ``startup_seconds``), runs ``warmup`` untimed
    runs (the function's first trip to each worker, the imports it triggers there, cold caches)
    and ``repeat`` timed ones. ``progress=True`` shows a bar over all runs; ``name`` labels the
    table and the plot.

    >>> import time
    >>> from lightwork.lab import scale
    >>> report = scale(time.sleep, [0.01] * 8, max_workers=[1, 2, 4], backends=["threads"],
    ...                repeat=1, chunksize=1)
    >>> [p.workers for p in report.points]
    [1, 2, 4]
    >>> report.points[-1].speedup > 2
    True
    >>> report.fits["threads"].serial_fraction < 0.2
    True
    """
    check_callable(fn)
    counts = _check_worker_counts(max_workers)
    names = _check_backends(backends)
    runs = _check_runs("repeat", repeat, 1)
    warm = _check_runs("warmup", warmup, 0)
    size = check_chunksize(chunksize)
    if mode not in MODES:
        raise InvalidOptionError(f"unknown mode {mode!r}: choose 'strong' or 'weak'")
    work = _work(items, mode)
    label = name if name is not None else getattr(fn, "__name__", None)
    bar = _progress_bar((warm + runs) * (1 + len(names) * len(counts))) if progress else None
    try:
        measure = _Measurer(fn, runs, warm, size, bar)
        baseline_run = measure(BASELINE_BACKEND, 1, work(1))
        t1 = baseline_run.median
        baseline = baseline_run.point(t1, 1.0, mode)
        points = [
            measure(backend, p, work(p)).point(t1, float(p if mode == "weak" else 1), mode)
            for backend in names
            for p in counts
        ]
    finally:
        if bar is not None:
            bar.close()
    fit = fit_gustafson if mode == "weak" else fit_amdahl
    fits: dict[str, AmdahlFit | GustafsonFit] = {
        backend: fit(
            [(p.workers, s) for p in points if p.backend == backend for s in p.run_speedups()]
        )
        for backend in names
    }
    return ScalingReport(
        mode, label, baseline, tuple(points), fits, runs, warm, size, available_cpus()
    )


# ---- measuring ---------------------------------------------------------------------------------

# Floor for a run's seconds in divisions: perf_counter's resolution, far below any real run.
_TINY = 1e-9


@dataclass(frozen=True)
class _Measured:
    backend: str
    workers: int
    items: int
    seconds: tuple[float, ...]
    gaps: float  #: seconds between the statistics snapshots outside the timed runs
    startup: float
    before: ExecutorStatistics
    after: ExecutorStatistics

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def point(self, t1: float, work_factor: float, mode: str) -> ScalingPoint:
        """This measurement against the baseline ``t1`` of ``1 / work_factor`` of the work."""
        median = max(self.median, _TINY)
        speedup = work_factor * t1 / median
        return ScalingPoint(
            backend=self.backend,
            workers=self.workers,
            items=self.items,
            seconds=self.seconds,
            median_seconds=self.median,
            min_seconds=min(self.seconds),
            max_seconds=max(self.seconds),
            speedup=speedup,
            efficiency=speedup / self.workers,
            karp_flatt=karp_flatt(speedup, self.workers) if mode == "strong" else None,
            startup_seconds=self.startup,
            breakdown=_breakdown(self.before, self.after, self.workers, self.seconds, self.gaps),
        )


class _Measurer:
    """Runs one point: a fresh executor, started, warmed, then timed."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        repeat: int,
        warmup: int,
        chunksize: int | None,
        bar: ProgressBar | None,
    ) -> None:
        self.fn = fn
        self.repeat = repeat
        self.warmup = warmup
        self.chunksize = chunksize
        self.bar = bar

    def __call__(self, backend: str, workers: int, items: Sequence[Any]) -> _Measured:
        if self.bar is not None and hasattr(self.bar, "set_postfix_str"):
            self.bar.set_postfix_str(f"{backend}, {workers} worker{'s' if workers > 1 else ''}")
        with Executor(workers, backend=backend) as executor:
            started = time.perf_counter()
            executor.start()
            window = time.perf_counter()
            startup = window - started
            for _ in range(self.warmup):
                self._run(executor, items)
                window = time.perf_counter()
            # The workers' waits that end in the timed runs began at the end of the warm-up
            # (or of the start-up): the window they fall in starts there.
            before = executor.statistics()
            seconds = tuple(self._run(executor, items) for _ in range(self.repeat))
            after = executor.statistics()
            gaps = max(0.0, time.perf_counter() - window - math.fsum(seconds))
        return _Measured(backend, workers, len(items), seconds, gaps, startup, before, after)

    def _run(self, executor: Executor, items: Sequence[Any]) -> float:
        started = time.perf_counter()
        list(executor.imap(self.fn, items, chunksize=self.chunksize))
        seconds = time.perf_counter() - started
        if self.bar is not None:
            self.bar.update(1)
        return seconds


def _breakdown(
    before: ExecutorStatistics,
    after: ExecutorStatistics,
    workers: int,
    runs: Sequence[float],
    gaps: float,
) -> TimeBreakdown:
    """Per-run seconds of each worker activity, from the statistics before and after the runs.

    ``gaps`` is the time in the measuring window outside the timed runs, when all the workers
    wait and their waits count as idle though no run is timed.
    """
    # A replaced worker is a new entry, so the pair (number, pid) names one worker's counters.
    earlier = {(w.worker, w.pid): w for w in before.workers}
    busy = serialize = deserialize = idle = 0.0
    for w in after.workers:
        old = earlier.get((w.worker, w.pid))
        busy += w.busy_seconds - (old.busy_seconds if old else 0.0)
        serialize += w.serialize_seconds - (old.serialize_seconds if old else 0.0)
        deserialize += w.deserialize_seconds - (old.deserialize_seconds if old else 0.0)
        idle += w.idle_seconds - (old.idle_seconds if old else 0.0)
    n = len(runs)
    capacity = workers * math.fsum(runs) / n
    idle = max(0.0, idle - workers * gaps)
    busy, serialize, deserialize, idle = (x / n for x in (busy, serialize, deserialize, idle))
    other = max(0.0, capacity - (busy + serialize + deserialize + idle))
    return TimeBreakdown(capacity, busy, serialize, deserialize, idle, other)


def _progress_bar(total: int) -> ProgressBar:
    from tqdm.auto import tqdm

    bar: ProgressBar = tqdm(total=total, desc="scale", unit="run", dynamic_ncols=True)
    return bar


# ---- validation --------------------------------------------------------------------------------


def _check_worker_counts(max_workers: Sequence[int] | None) -> list[int]:
    if max_workers is None:
        return default_worker_counts()
    if isinstance(max_workers, int | str) or not isinstance(max_workers, Iterable):
        raise InvalidOptionError(
            f"max_workers must be a sequence of worker counts such as [1, 2, 4], "
            f"not {max_workers!r}"
        )
    counts = list(max_workers)
    if not counts:
        raise InvalidOptionError("max_workers is empty: give at least one worker count")
    for p in counts:
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise InvalidOptionError(f"worker counts must be ints >= 1, not {p!r}")
    return sorted(set(counts))


def _check_backends(backends: Sequence[str]) -> list[str]:
    if isinstance(backends, str):
        backends = [backends]  # backends="threads" means the one backend, not its letters
    names = list(backends)
    if not names:
        raise InvalidOptionError("backends is empty: give at least one, such as ['processes']")
    for backend in names:
        check_backend(backend)
        if backend == BASELINE_BACKEND:
            raise InvalidOptionError(
                "the serial backend is the baseline every point is compared with, and it has "
                "one worker: scale 'threads' or 'processes'"
            )
    if len(set(names)) != len(names):
        raise InvalidOptionError(f"a backend is listed twice in {names!r}")
    return names


def _check_runs(what: str, runs: object, least: int) -> int:
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < least:
        raise InvalidOptionError(f"{what} must be an int >= {least}, not {runs!r}")
    return runs


def _work(
    items: Iterable[Any] | Callable[[int], Iterable[Any]], mode: str
) -> Callable[[int], Sequence[Any]]:
    """``p -> the items of a run on p workers``, each a sequence, so that runs can repeat it."""
    if mode == "strong":
        if not isinstance(items, Iterable):
            raise InvalidOptionError(
                f"items must be iterable in strong mode, not {type(items).__name__}; "
                "items(p) callables are for mode='weak'"
            )
        fixed = _sequence(items)
        _check_not_empty(fixed, "items")
        return lambda p: fixed
    if callable(items) and not isinstance(items, Iterable):
        grow = items

        def grown(p: int) -> Sequence[Any]:
            made = _sequence(grow(p))
            _check_not_empty(made, f"items({p})")
            return made

        return grown
    if not isinstance(items, Sequence):
        raise InvalidOptionError(
            "in weak mode items must be a function items(p) -> iterable, or a sequence to "
            f"repeat p times, not {type(items).__name__}"
        )
    base = list(items)
    _check_not_empty(base, "items")
    return lambda p: base * p


def _sequence(items: Iterable[Any]) -> Sequence[Any]:
    # A range or a list can be run again and again; a generator only once, so it is read now.
    return items if isinstance(items, Sequence) else list(items)


def _check_not_empty(items: Sequence[Any], what: str) -> None:
    if len(items) == 0:
        raise InvalidOptionError(f"{what} is empty: there is nothing to measure")


# ---- table and JSON ----------------------------------------------------------------------------


def _row(point: ScalingPoint) -> str:
    # round() + 0.0 turns a tiny negative into 0.000, not -0.000.
    kf = "-" if point.karp_flatt is None else f"{round(point.karp_flatt, 3) + 0.0:.3f}"
    shares = point.breakdown.fractions()
    where = " ".join(f"{_percent(shares[k]):>5}" for k in _PARTS)
    return (
        f"{point.backend:<10} {point.workers:>7} {point.items:>8} {_secs(point.median_seconds):>9} "
        f"{_secs(point.min_seconds):>8} {_secs(point.max_seconds):>8} {point.speedup:>8.2f} "
        f"{_percent(point.efficiency):>7} {kf:>10}  {where}  {_secs(point.startup_seconds):>10}"
    )


_PARTS = ("busy", "serialize", "deserialize", "idle", "other")


def _secs(seconds: float) -> str:
    """Three decimals, or three significant digits below 0.1 s: 61.234, 1.564, 0.0312."""
    return f"{seconds:.3f}" if seconds >= 0.1 else f"{seconds:.3g}"


def _percent(fraction: float) -> str:
    return "-" if math.isnan(fraction) else f"{100 * fraction:.0f}%"


def _point_record(point: ScalingPoint) -> dict[str, Any]:
    record = asdict(point)
    record["seconds"] = list(point.seconds)
    record["breakdown"]["fractions"] = point.breakdown.fractions()
    return record


def _fit_record(fit: AmdahlFit | GustafsonFit) -> dict[str, Any]:
    record = asdict(fit)
    record["law"] = fit.law
    record["predicted"] = {str(p): s for p, s in fit.predicted.items()}
    record["summary"] = fit.summary()
    return record


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None: strict JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
