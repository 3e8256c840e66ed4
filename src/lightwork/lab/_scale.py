"""The scaling lab: speed-up and efficiency over worker counts and backends, and the law behind.

    scale(fn, items)
      set-up, untimed: every configuration gets its own fresh pool, started (start-up timed
        apart) and warmed (fn's first trip to each worker, its imports):
          the serial baseline; each backend at each worker count p;
          the machine's ceiling: p independent processes running 1/p of the work each
      rounds: every configuration runs the work once per round, in a shuffled order
        at least `repeat` rounds; then, with a `budget`, more until every speed-up is known
        to `precision` or the budget is spent
      per point: the speed-up of each round (its baseline run's time over the point's), their
        median and its standard error; its share of the machine's ceiling likewise
      per backend: Amdahl's law (strong) or Gustafson's (weak) fitted to the medians, with a
        bootstrap over the rounds for its error, and notes where the noise is larger than the
        effect

Why rounds: a shared machine's load comes and goes over seconds. Measured one configuration
after another, a burst of other work lands on one of them and reads as a property of it (one
worker beating the serial baseline, a serial fraction of 0.6 one run and 0 the next); taken in
turns, every configuration sees the same conditions, the ratios within a round cancel them,
and the median over rounds ignores a disturbed round. The ceiling, measured in the same rounds,
tells what the machine itself gave: a pool can't be faster than independent processes.

Every configuration has its own executor, so none inherits another's warm workers. Each run is
one complete ``imap`` over the items, results collected as a user would.
"""

from __future__ import annotations

import json
import math
import platform
import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._core._cpus import available_cpus
from .._core._errors import InvalidOptionError
from .._core._options import check_backend, check_callable, check_chunksize
from .._core._stats import ExecutorStatistics
from .._engine._executor import Executor
from ._ceiling import Ceiling, CeilingUnavailable
from ._fit import AmdahlFit, GustafsonFit, fit_amdahl, fit_gustafson, karp_flatt
from ._modes import BASELINE_BACKEND, CEILING, MODES
from ._noise import Z_95, Estimate, bootstrap, fit_notes, median_estimate

if TYPE_CHECKING:
    from .._core._progress import ProgressBar

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
    """One backend at one worker count: its timed runs, one a round, and what they mean."""

    backend: str  #: or "ceiling" for the machine's own: independent processes
    workers: int
    items: int  #: tasks in one run (in weak mode, they grow with ``workers``)
    seconds: tuple[float, ...]  #: wall-clock seconds of each timed run, one a round
    median_seconds: float
    min_seconds: float
    max_seconds: float
    #: median over rounds of the round's baseline time / this point's time (strong); times
    #: ``workers`` in weak mode, the scaled speed-up
    speedup: float
    efficiency: float  #: speed-up / workers
    #: Amdahl's f solved from this point alone (strong mode, more than one worker); else None
    karp_flatt: float | None
    startup_seconds: float  #: wall-clock time of ``executor.start()``, not in ``seconds``
    breakdown: TimeBreakdown
    speedup_stderr: float = math.nan  #: of the median; NaN with fewer than three rounds
    speedups: tuple[float, ...] = ()  #: each round's speed-up, in round order
    #: median over rounds of the ceiling's time / this point's: 1.0 is as fast as independent
    #: processes on as many cores; NaN without a ceiling (and for the ceiling itself)
    of_ceiling: float = math.nan
    of_ceiling_stderr: float = math.nan

    def run_speedups(self) -> list[float]:
        """The speed-up of each timed run (round), what the fits' bootstrap resamples."""
        if self.speedups:
            return list(self.speedups)
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
    points: tuple[ScalingPoint, ...]  #: per backend, per worker count
    #: Amdahl (strong) or Gustafson (weak) fitted to the backend's median speed-ups, with the
    #: standard error and interval of a bootstrap over the rounds, and notes on the noise
    fits: dict[str, AmdahlFit | GustafsonFit]
    repeat: int  #: the fewest rounds asked for
    warmup: int
    chunksize: int | None
    cpus: int  #: ``lightwork.available_cpus()`` where it ran
    python: str = field(default_factory=platform.python_version)  #: the version it ran on
    machine: str = field(default_factory=platform.platform)  #: the platform it ran on
    rounds: int = 0  #: rounds run: every configuration once a round
    #: why the rounds ended: "rounds" (as many as asked), "stable" (every speed-up known to the
    #: precision asked) or "budget" (the time budget was spent first)
    stopped: str = "rounds"
    #: where the serial baseline ran: "a fresh process" (with the ceiling: as workers run,
    #: with a heap that lightwork's own bookkeeping has not shaped) or "this process"
    baseline_where: str = "this process"
    #: the machine's own: the same work in p independent processes, per worker count; empty
    #: when not measured (``notes`` says why)
    ceiling: tuple[ScalingPoint, ...] = ()
    ceiling_fit: AmdahlFit | GustafsonFit | None = None  #: the law fitted to the ceiling
    notes: tuple[str, ...] = ()  #: what the reader should know before trusting the numbers

    @property
    def baseline_seconds(self) -> float:
        """The median serial time of the one-worker work: T1."""
        return self.baseline.median_seconds

    @property
    def backends(self) -> list[str]:
        """The backends measured, in order."""
        return list(dict.fromkeys(p.backend for p in self.points))

    def points_for(self, backend: str) -> list[ScalingPoint]:
        """The points of one backend (or "ceiling"), by worker count."""
        chosen = self.ceiling if backend == CEILING else self.points
        return sorted((p for p in chosen if p.backend == backend), key=lambda p: p.workers)

    def table(self) -> str:
        """A fixed-width table of every point, one line per backend with its fit, and notes."""
        weak = self.mode == "weak"
        what = "scaled speed-up S = p T1 / T(p)" if weak else "speed-up S = T1 / T(p)"
        name = self.workload or "work"
        lines = [
            f"{name}: {self.mode} scaling on {self.cpus} CPUs, {self.baseline.items:,} items"
            f"{' per worker' if weak else ''}; {self.rounds} round"
            f"{'s' if self.rounds != 1 else ''} ({_STOPPED[self.stopped]}), every configuration "
            "once a round in a shuffled order",
            f"T1: the serial backend in {self.baseline_where}; "
            f"{what} per round, median over rounds ± its standard error"
            + (
                f"; {CEILING}: the same work in p independent processes (the machine's own limit)"
                if self.ceiling
                else ""
            ),
            "",
        ]
        header = (
            f"{'backend':<10} {'workers':>7} {'items':>8} {'median s':>9} {'min s':>8} "
            f"{'max s':>8} {'speed-up':>14} {'effic.':>7} {'of ceiling':>10} {'Karp-Flatt':>10}"
            f"  {'busy':>5} {'ser':>5} {'deser':>5} {'idle':>5} {'other':>5}  {'start-up s':>10}"
        )
        lines += [
            " " * header.index(" busy") + " where the time went (% of workers x wall)",
            header,
            "-" * len(header),
        ]
        for point in (self.baseline, *self.points, *self.ceiling):
            lines.append(_row(point))
        lines.append("")
        law = "Gustafson" if weak else "Amdahl"
        fits = [(backend, self.fits[backend]) for backend in self.backends]
        if self.ceiling_fit is not None:
            fits.append((CEILING, self.ceiling_fit))
        for backend, fit in fits:
            lines.append(f"{backend} ({law}): {fit.summary()}")
            lines += [f"  ! {note}" for note in fit.notes]
        lines += [f"! {note}" for note in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        """Everything, as plain JSON-ready data (NaN and infinity become None)."""
        record: dict[str, Any] = {
            "mode": self.mode,
            "workload": self.workload,
            "repeat": self.repeat,
            "rounds": self.rounds,
            "baseline_where": self.baseline_where,
            "stopped": self.stopped,
            "warmup": self.warmup,
            "chunksize": self.chunksize,
            "cpus": self.cpus,
            "python": self.python,
            "machine": self.machine,
            "baseline_seconds": self.baseline_seconds,
            "baseline": _point_record(self.baseline),
            "points": [_point_record(p) for p in self.points],
            "fits": {b: _fit_record(f) for b, f in self.fits.items()},
            "ceiling": [_point_record(p) for p in self.ceiling],
            "ceiling_fit": None if self.ceiling_fit is None else _fit_record(self.ceiling_fit),
            "notes": list(self.notes),
            # One flag for a script to check: is any figure here smaller than its noise?
            "noisy": bool(self.notes) or any(f.notes for f in self.fits.values()),
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


_STOPPED = {
    "rounds": "as many as asked",
    "stable": "until every speed-up was known to the precision asked",
    "budget": "until the time budget was spent",
}


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
    budget: float | None = None,
    precision: float = 0.005,
    ceiling: bool = True,
) -> ScalingReport:
    """Measure how ``fn`` over ``items`` speeds up with workers, and fit the law behind it.

    ``mode="strong"`` (Amdahl): the same ``items`` on every worker count; ``items`` is read once
    into a list unless it is already a sequence. ``mode="weak"`` (Gustafson): the work grows
    with the workers: ``items`` is then ``items(p) -> iterable``, or a sequence repeated ``p``
    times, and the scaled speed-up is ``p x T1 / T(p)``.

    Every configuration (the serial baseline, each of ``backends`` at each of ``max_workers``,
    default 1, 2, 4, ... and the CPU count, and with ``ceiling`` the same work in independent
    processes) gets a fresh executor, started (timed apart: ``startup_seconds``) and warmed by
    ``warmup`` untimed runs. Then rounds: each configuration runs once a round, in a shuffled
    order; ``repeat`` rounds, or with a ``budget`` in seconds more until every speed-up's
    relative standard error is below ``precision`` or the budget is spent. ``progress=True``
    shows a bar over the runs; ``name`` labels the table and the plot.

    >>> import time
    >>> from lightwork.lab import scale
    >>> report = scale(time.sleep, [0.01] * 8, max_workers=[1, 2, 4], backends=["threads"],
    ...                repeat=3, chunksize=1, ceiling=False)
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
    limit = _check_budget(budget)
    target = _check_precision(precision)
    if mode not in MODES:
        raise InvalidOptionError(f"unknown mode {mode!r}: choose 'strong' or 'weak'")
    work = _work(items, mode)
    label = name if name is not None else getattr(fn, "__name__", None)
    notes: list[str] = []
    with ExitStack() as stack:
        machine: Ceiling | None = None
        if ceiling:
            try:
                machine = stack.enter_context(Ceiling(fn, work, sorted({1, *counts}), size))
            except CeilingUnavailable as error:
                notes.append(f"the machine's ceiling was not measured: {error}")
        # Every job by (backend, workers), the baseline first. With the ceiling's processes up,
        # the baseline is the serial backend in one of them (see ScalingReport.baseline_where).
        jobs: dict[tuple[str, int], Callable[[], float]] = {}
        configs = [_Config(b, p, work(p)) for b in names for p in counts]
        if machine is None:
            configs.insert(0, _Config(BASELINE_BACKEND, 1, work(1)))
        else:
            jobs[BASELINE_BACKEND, 1] = _ceiling_run(machine, 1)
        jobs |= {(c.backend, c.workers): c.run for c in configs}
        if machine is not None:
            jobs |= {(CEILING, p): _ceiling_run(machine, p) for p in counts if p > 1}
        total = None if limit is not None else (warm + runs) * len(jobs)
        bar = _progress_bar(total) if progress else None
        if bar is not None:
            stack.callback(bar.close)
        for config in configs:
            config.open(stack, fn, size, warm, bar)
        for key, job in jobs.items():
            if key[0] in (BASELINE_BACKEND, CEILING) and machine is not None:
                for _ in range(warm):  # the independent processes' warm-up runs
                    job()
                    _tick(bar)
        for config in configs:
            config.begin()
        measured, stopped = _rounds(list(jobs.values()), runs, limit, target, bar)
        for config in configs:
            config.end()
    times = dict(zip(jobs, measured, strict=True))
    base = times[BASELINE_BACKEND, 1]
    rounds = len(base)
    factor = {p: float(p if mode == "weak" else 1) for p in counts}
    if machine is None:
        baseline = configs.pop(0).point(base, base, 1.0, mode, None)
    else:
        baseline = _point(BASELINE_BACKEND, 1, len(work(1)), base, (1.0,) * rounds, mode)
    ceilings = {p: seconds for (backend, p), seconds in times.items() if backend == CEILING}
    shares = {1: base, **ceilings} if machine is not None else {}
    points = [
        c.point(base, times[c.backend, c.workers], factor[c.workers], mode, shares.get(c.workers))
        for c in configs
    ]
    ceiling_points = [
        _ceiling_point(p, work(p), base, seconds, factor[p], mode)
        for p, seconds in ceilings.items()
    ]
    ceiling_fit = None
    if ceiling_points:
        ceiling_fit = _fit(mode, [(p.workers, p.speedups) for p in ceiling_points], rounds)
    fits = {
        b: _fit(
            mode, [(p.workers, p.speedups) for p in points if p.backend == b], rounds, ceiling_fit
        )
        for b in names
    }
    notes += _report_notes(points, ceiling_points)
    return ScalingReport(
        mode,
        label,
        baseline,
        tuple(points),
        fits,
        runs,
        warm,
        size,
        available_cpus(),
        rounds=rounds,
        stopped=stopped,
        baseline_where="a fresh process" if machine is not None else "this process",
        ceiling=tuple(ceiling_points),
        ceiling_fit=ceiling_fit,
        notes=tuple(notes),
    )


# ---- measuring ---------------------------------------------------------------------------------

# Floor for a run's seconds in divisions: perf_counter's resolution, far below any real run.
_TINY = 1e-9
# Rounds are shuffled with a fixed seed: the same options give the same order of runs.
_ORDER_SEED = 0


class _Config:
    """One configuration kept warm for the whole measurement: its executor and its runs."""

    def __init__(self, backend: str, workers: int, items: Sequence[Any]) -> None:
        self.backend = backend
        self.workers = workers
        self.items = items
        self.seconds: list[float] = []

    def open(
        self,
        stack: ExitStack,
        fn: Callable[[Any], Any],
        chunksize: int | None,
        warmup: int,
        bar: ProgressBar | None,
    ) -> None:
        """Start a fresh executor (timed apart) and warm it up: fn's first trip to each worker."""
        self.fn, self.chunksize = fn, chunksize
        self.executor = stack.enter_context(Executor(self.workers, backend=self.backend))
        started = time.perf_counter()
        self.executor.start()
        self.startup = time.perf_counter() - started
        for _ in range(warmup):
            self._run()
            _tick(bar)
        # The workers' waits that end in the timed runs began at the end of the warm-up (while
        # the other configurations started): the window they fall in starts here.
        self.window = time.perf_counter()

    def begin(self) -> None:
        self.before = self.executor.statistics()

    def run(self) -> float:
        seconds = self._run()
        self.seconds.append(seconds)
        return seconds

    def end(self) -> None:
        self.after = self.executor.statistics()
        # Outside its own runs the workers waited: for the other configurations' set-up and runs.
        self.gaps = max(0.0, time.perf_counter() - self.window - math.fsum(self.seconds))

    def _run(self) -> float:
        started = time.perf_counter()
        list(self.executor.imap(self.fn, self.items, chunksize=self.chunksize))
        return time.perf_counter() - started

    def point(
        self,
        baseline: list[float],
        seconds: list[float],
        factor: float,
        mode: str,
        ceiling: list[float] | None,
    ) -> ScalingPoint:
        """This configuration against the baseline run of the same round, and the ceiling's."""
        speedups = tuple(factor * b / max(s, _TINY) for b, s in zip(baseline, seconds, strict=True))
        point = _point(self.backend, self.workers, len(self.items), seconds, speedups, mode)
        share = Estimate(math.nan, math.nan)
        if ceiling is not None:
            share = median_estimate(
                [c / max(s, _TINY) for c, s in zip(ceiling, seconds, strict=True)]
            )
        breakdown = _breakdown(self.before, self.after, self.workers, seconds, self.gaps)
        return replace(
            point,
            startup_seconds=self.startup,
            breakdown=breakdown,
            of_ceiling=share.value,
            of_ceiling_stderr=share.stderr,
        )


def _point(
    backend: str,
    workers: int,
    items: int,
    seconds: Sequence[float],
    speedups: tuple[float, ...],
    mode: str,
) -> ScalingPoint:
    speedup = median_estimate(speedups)
    nothing = TimeBreakdown(workers * statistics.fmean(seconds), *[math.nan] * 5)
    return ScalingPoint(
        backend=backend,
        workers=workers,
        items=items,
        seconds=tuple(seconds),
        median_seconds=statistics.median(seconds),
        min_seconds=min(seconds),
        max_seconds=max(seconds),
        speedup=speedup.value,
        efficiency=speedup.value / workers,
        karp_flatt=karp_flatt(speedup.value, workers) if mode == "strong" else None,
        startup_seconds=math.nan,
        breakdown=nothing,
        speedup_stderr=speedup.stderr,
        speedups=speedups,
    )


def _ceiling_run(machine: Ceiling, workers: int) -> Callable[[], float]:
    return lambda: machine.run(workers)


def _ceiling_point(
    workers: int,
    items: Sequence[Any],
    baseline: list[float],
    seconds: list[float],
    factor: float,
    mode: str,
) -> ScalingPoint:
    speedups = tuple(factor * b / max(s, _TINY) for b, s in zip(baseline, seconds, strict=True))
    return _point(CEILING, workers, len(items), seconds, speedups, mode)


def _tick(bar: ProgressBar | None) -> None:
    if bar is not None:
        bar.update(1)


def _rounds(
    jobs: list[Callable[[], float]],
    least: int,
    budget: float | None,
    precision: float,
    bar: ProgressBar | None,
) -> tuple[list[list[float]], str]:
    """Run every job once a round until done: each job's seconds, and why the rounds ended.

    Job 0 is the baseline. With a budget, rounds go on past ``least`` until every job's speed-up
    against the baseline (its median over rounds) has a relative standard error below
    ``precision``, or until another round would overrun the budget.
    """
    times: list[list[float]] = [[] for _ in jobs]
    order = list(range(len(jobs)))
    shuffle = random.Random(_ORDER_SEED).shuffle
    started = time.perf_counter()
    while True:
        round_started = time.perf_counter()
        shuffle(order)
        for index in order:
            times[index].append(jobs[index]())
            _tick(bar)
        done = len(times[0])
        if bar is not None and hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"round {done}")
        if done < least:
            continue
        if budget is None:
            return times, "rounds"
        if _stable(times, precision):
            return times, "stable"
        now = time.perf_counter()
        if now - started + (now - round_started) > budget:
            return times, "budget"


def _stable(times: list[list[float]], precision: float) -> bool:
    """Whether every job's speed-up over the baseline is known to ``precision`` (relative)."""
    baseline = times[0]
    for seconds in times[1:]:
        ratios = [b / max(s, _TINY) for b, s in zip(baseline, seconds, strict=True)]
        if not median_estimate(ratios).relative_error() < precision:
            return False
    return True


def _fit(
    mode: str,
    speedups: list[tuple[int, tuple[float, ...]]],
    rounds: int,
    machine: AmdahlFit | GustafsonFit | None = None,
) -> AmdahlFit | GustafsonFit:
    """The law fitted to the median speed-ups, its error bootstrapped over the rounds.

    With ``machine`` (the law fitted to the ceiling, measured in the same rounds) the error
    also counts the machine's own departure from linear scaling: independent processes that
    don't reach p times the serial speed show load (or clocks, or memory bandwidth) that the
    rounds can't average away, and part of what the pool lost may be that. Both parts are
    added in quadrature; without the ceiling that part is unknown, and a note says so.
    """
    law = fit_gustafson if mode == "weak" else fit_amdahl

    def raw_fraction(picked: list[int]) -> float:
        medians = [(p, statistics.median(s[i] for i in picked)) for p, s in speedups]
        return law(medians).raw_serial_fraction

    fit = law([(p, statistics.median(s)) for p, s in speedups])
    if math.isnan(fit.raw_serial_fraction):
        return fit
    stderr, low, high = bootstrap(rounds, raw_fraction)
    raw = fit.raw_serial_fraction
    from_machine = math.nan
    if machine is not None and not math.isnan(machine.raw_serial_fraction):
        from_machine = math.hypot(machine.raw_serial_fraction, _or_zero(machine.stderr))
        stderr = math.hypot(stderr, from_machine)
        spread = Z_95 * from_machine
        low = raw - math.hypot(raw - low, spread)
        high = raw + math.hypot(high - raw, spread)
    notes = fit_notes(raw, stderr, low, high)
    return fit.with_uncertainty(stderr, (low, high), notes, from_machine)


# A point whose 95% interval misses this far past the expected value is worth a note: smaller
# differences are the kind a quiet machine shows from run to run.
_NOTABLE = 0.02
# The machine's ceiling below this share of p cores: the machine was busy with other work.
_BUSY = 0.9


def _report_notes(points: list[ScalingPoint], ceiling: list[ScalingPoint]) -> list[str]:
    """What the reader should know before trusting the figures."""
    notes = []
    for point in points:
        if point.workers == 1 and _differs(point, 1.0):
            if point.speedup > 1:
                notes.append(
                    f"{point.backend} on 1 worker beat the serial baseline "
                    f"({point.speedup:.2f} ± {point.speedup_stderr:.2f}): a slower baseline "
                    "or a faster code path (memory, caches), not parallelism"
                )
            else:
                notes.append(
                    f"{point.backend} on 1 worker ran at {point.speedup:.2f} of the serial "
                    "speed: the backend's own cost (dispatch, pickling); Amdahl's law is 1 at "
                    "one worker by definition, so the fit leaves it out"
                )
    busiest = max(ceiling, key=lambda c: c.workers, default=None)
    if busiest is not None and busiest.workers > 1:
        high = busiest.speedup + 1.96 * _or_zero(busiest.speedup_stderr)
        if high < _BUSY * busiest.workers:
            notes.append(
                f"the machine was busy: {busiest.workers} independent processes reached only "
                f"{busiest.speedup:.2f}x; the fits describe the load as much as the work "
                "(compare each point's share of the ceiling)"
            )
    for point in (*points, *ceiling):
        if point.workers > 1 and point.speedup > point.workers and _differs(point, point.workers):
            notes.append(
                f"{point.backend} on {point.workers} workers: speed-up {point.speedup:.2f} is "
                "better than linear beyond the noise: suspect the baseline or caches"
            )
    return notes


def _differs(point: ScalingPoint, expected: float) -> bool:
    """Whether ``point``'s speed-up is off ``expected`` by more than noise and than _NOTABLE."""
    if math.isnan(point.speedup_stderr):
        return False
    gap = abs(point.speedup - expected)
    return gap > 1.96 * point.speedup_stderr and gap > _NOTABLE * expected


def _or_zero(x: float) -> float:
    return 0.0 if math.isnan(x) else x


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


def _progress_bar(total: int | None) -> ProgressBar:
    from .._core._progress import progress_bar

    return progress_bar(total, "scale", unit="run")


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


def _check_budget(budget: object) -> float | None:
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not budget >= 0:
        raise InvalidOptionError(f"budget must be a number of seconds >= 0 or None, not {budget!r}")
    return float(budget)


def _check_precision(precision: object) -> float:
    if isinstance(precision, bool) or not isinstance(precision, int | float) or not precision > 0:
        raise InvalidOptionError(
            f"precision must be a number > 0, such as 0.005, not {precision!r}"
        )
    return float(precision)


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
    speedup = f"{point.speedup:.2f}"
    if not math.isnan(point.speedup_stderr):
        speedup += f" ± {point.speedup_stderr:.2f}"
    share = "-" if math.isnan(point.of_ceiling) else _percent(point.of_ceiling)
    startup = "-" if math.isnan(point.startup_seconds) else _secs(point.startup_seconds)
    return (
        f"{point.backend:<10} {point.workers:>7} {point.items:>8} {_secs(point.median_seconds):>9} "
        f"{_secs(point.min_seconds):>8} {_secs(point.max_seconds):>8} {speedup:>14} "
        f"{_percent(point.efficiency):>7} {share:>10} {kf:>10}  {where}  {startup:>10}"
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
    record["speedups"] = list(point.speedups)
    record["breakdown"]["fractions"] = point.breakdown.fractions()
    return record


def _fit_record(fit: AmdahlFit | GustafsonFit) -> dict[str, Any]:
    record = asdict(fit)
    record["law"] = fit.law
    record["predicted"] = {str(p): s for p, s in fit.predicted.items()}
    record["predicted_range"] = {str(p): list(r) for p, r in fit.predicted_range().items()}
    record["interval"] = list(fit.interval)
    record["notes"] = list(fit.notes)
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
