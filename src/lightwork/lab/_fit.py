"""Scaling laws fitted to measured speed-ups: pure arithmetic, no workers, no clock.

Amdahl (strong scaling: the same work on more workers) says a serial fraction ``f`` of the
single-worker time cannot be shared, so ``S(p) = 1 / (f + (1 - f) / p)``, never above ``1/f``.
Rearranged, ``1/S - 1/p = f * (1 - 1/p)``: a line through the origin in ``x = 1 - 1/p``, whose
least-squares slope has a closed form. Gustafson (weak scaling: the work grows with ``p``) says
the scaled speed-up is ``S(p) = p - f * (p - 1)``, i.e. ``p - S = f * (p - 1)``: another line
through the origin. Both fits use every measured point, repeats included, so run-to-run noise
shows in the standard error of ``f``.

>>> fit = fit_amdahl([(1, 1.0), (2, 1.82), (4, 3.08)])
>>> round(fit.serial_fraction, 2), round(fit.ceiling)
(0.1, 10)
>>> round(karp_flatt(3.08, 4), 3)
0.1
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

from .._core._errors import InvalidOptionError

__all__ = [
    "PREDICT_AT",
    "AmdahlFit",
    "GustafsonFit",
    "fit_amdahl",
    "fit_gustafson",
    "gustafson_serial_fraction",
    "karp_flatt",
]

# Worker counts to extrapolate to: a laptop, a workstation, a large server, a cluster node
# count; far enough out that a small serial fraction shows.
PREDICT_AT = (4, 8, 16, 64)


def karp_flatt(speedup: float, workers: int) -> float | None:
    """The experimentally determined serial fraction ``e = (1/S - 1/p) / (1 - 1/p)``.

    It is Amdahl's ``f`` solved from one measurement. If it grows with ``p``, the loss is not a
    fixed serial part but overhead that grows with the worker count (dispatch, contention).
    None for one worker, where every ``f`` predicts the same speed-up.

    >>> karp_flatt(1.6, 2)
    0.25
    >>> karp_flatt(1.0, 1) is None
    True
    """
    p = _check_workers(workers)
    s = _check_speedup(speedup)
    if p == 1:
        return None
    return (1 / s - 1 / p) / (1 - 1 / p)


def gustafson_serial_fraction(speedup: float, workers: int) -> float | None:
    """Gustafson's serial fraction solved from one scaled speed-up: ``(p - S) / (p - 1)``.

    >>> round(gustafson_serial_fraction(3.7, 4), 6)
    0.1
    """
    p = _check_workers(workers)
    s = _check_speedup(speedup)
    if p == 1:
        return None
    return (p - s) / (p - 1)


@dataclass(frozen=True)
class AmdahlFit:
    """Amdahl's law fitted to strong-scaling speed-ups: :func:`fit_amdahl`.

    ``serial_fraction`` is the least-squares ``f`` clamped to ``[0, 1]``: that is exactly the
    least-squares solution under the constraint, since the fit is a one-parameter quadratic.
    ``raw_serial_fraction`` is the unconstrained value: below 0 when the speed-up was better
    than linear (caches), above 1 when more workers made the work slower. Both are NaN when no
    point had more than one worker, since one worker says nothing about ``f``.
    """

    serial_fraction: float
    #: standard error of ``f`` from the residuals; NaN with fewer than two multi-worker points
    stderr: float
    #: predicted speed-up at 4, 8, 16 and 64 workers
    predicted: dict[int, float] = field(default_factory=dict)
    #: the speed-up no worker count exceeds, ``1/f``; infinite when ``f`` is 0
    ceiling: float = math.inf
    raw_serial_fraction: float = math.nan
    n_points: int = 0  #: points with more than one worker: the ones that inform ``f``
    #: 95% interval of the unclamped ``f`` (a bootstrap over rounds, from the lab); NaN if unknown
    interval: tuple[float, float] = (math.nan, math.nan)
    notes: tuple[str, ...] = ()  #: where the noise is larger than the effect, and so on
    #: the part of ``stderr`` that is the machine's own departure from linear scaling (the
    #: lab's ceiling), added in quadrature to the rounds' part; NaN when not measured
    machine_stderr: float = math.nan

    law: ClassVar[str] = "amdahl"

    def speedup(self, workers: float) -> float:
        """The speed-up this fit predicts on ``workers`` workers (any positive number).

        >>> round(AmdahlFit(0.1, 0.0).speedup(10), 3)
        5.263
        """
        f = self.serial_fraction
        return 1 / (f + (1 - f) / workers)

    def with_uncertainty(
        self,
        stderr: float,
        interval: tuple[float, float],
        notes: tuple[str, ...],
        machine_stderr: float = math.nan,
    ) -> AmdahlFit:
        """This fit with the standard error, interval and notes the lab measured for it."""
        return replace(
            self, stderr=stderr, interval=interval, notes=notes, machine_stderr=machine_stderr
        )

    def predicted_range(self) -> dict[int, tuple[float, float]]:
        """The predicted speed-ups at the ends of :attr:`interval` (clamped to ``[0, 1]``).

        >>> low, high = AmdahlFit(0.1, 0.01, interval=(0.08, 0.12)).predicted_range()[4]
        >>> round(low, 2), round(high, 2)  # f = 0.12 and f = 0.08
        (2.94, 3.23)
        """
        return {p: _ends(functools.partial(_amdahl, workers=p), self.interval) for p in PREDICT_AT}

    def summary(self) -> str:
        """One line: ``f`` with its standard error, predictions and the ceiling.

        >>> print(fit_amdahl([(2, 1.8), (4, 3.0), (4, 3.1)]).summary())  # doctest: +ELLIPSIS
        serial fraction f = 0.105 ± 0.005, predicted speed-up 4: 3.0, 8: 4.6, ..., ceiling 9.5
        """
        if math.isnan(self.serial_fraction):
            return "serial fraction not determined: it needs runs on more than one worker"
        ceiling = "none" if math.isinf(self.ceiling) else f"{self.ceiling:.1f}"
        return (
            f"serial fraction f = {_with_error(self.serial_fraction, self.stderr)}"
            f"{_uncertainty(self.stderr, self.machine_stderr, self.interval)}, predicted "
            f"speed-up {_predictions(self.predicted, self.predicted_range())}, ceiling {ceiling}"
            f"{'' if self.notes else _clamp_note(self.raw_serial_fraction, self.serial_fraction)}"
        )


@dataclass(frozen=True)
class GustafsonFit:
    """Gustafson's law fitted to weak-scaling (scaled) speed-ups: :func:`fit_gustafson`.

    Clamped to ``[0, 1]`` as :class:`AmdahlFit` is. The scaled speed-up has no ceiling: the
    serial part stays fixed while the parallel work grows with ``p``.
    """

    serial_fraction: float
    stderr: float  #: standard error of ``f``; NaN with fewer than two multi-worker points
    predicted: dict[int, float] = field(default_factory=dict)  #: at 4, 8, 16 and 64 workers
    raw_serial_fraction: float = math.nan
    n_points: int = 0  #: points with more than one worker
    interval: tuple[float, float] = (math.nan, math.nan)  #: as :class:`AmdahlFit`'s
    notes: tuple[str, ...] = ()
    machine_stderr: float = math.nan  #: as :class:`AmdahlFit`'s

    law: ClassVar[str] = "gustafson"

    def speedup(self, workers: float) -> float:
        """The scaled speed-up predicted on ``workers`` workers.

        >>> GustafsonFit(0.1, 0.0).speedup(10)
        9.1
        """
        return workers - self.serial_fraction * (workers - 1)

    def with_uncertainty(
        self,
        stderr: float,
        interval: tuple[float, float],
        notes: tuple[str, ...],
        machine_stderr: float = math.nan,
    ) -> GustafsonFit:
        """This fit with the standard error, interval and notes the lab measured for it."""
        return replace(
            self, stderr=stderr, interval=interval, notes=notes, machine_stderr=machine_stderr
        )

    def predicted_range(self) -> dict[int, tuple[float, float]]:
        """The predicted scaled speed-ups at the ends of :attr:`interval`."""
        return {
            p: _ends(functools.partial(_gustafson, workers=p), self.interval) for p in PREDICT_AT
        }

    def summary(self) -> str:
        """One line: ``f`` with its standard error and the predicted scaled speed-ups.

        >>> print(fit_gustafson([(2, 1.9), (4, 3.7)]).summary())  # doctest: +ELLIPSIS
        serial fraction f = 0.100 ± 0.000, predicted scaled speed-up 4: 3.7, ..., 64: 57.7
        """
        if math.isnan(self.serial_fraction):
            return "serial fraction not determined: it needs runs on more than one worker"
        return (
            f"serial fraction f = {_with_error(self.serial_fraction, self.stderr)}"
            f"{_uncertainty(self.stderr, self.machine_stderr, self.interval)}, "
            "predicted scaled speed-up "
            f"{_predictions(self.predicted, self.predicted_range())}"
            f"{'' if self.notes else _clamp_note(self.raw_serial_fraction, self.serial_fraction)}"
        )


def fit_amdahl(points: Sequence[tuple[int, float]]) -> AmdahlFit:
    """Fit Amdahl's law to ``(workers, speedup)`` points by least squares.

    The fit is linear in ``f``: ``1/S - 1/p = f (1 - 1/p)``, so ``f = sum(x y) / sum(x x)`` with
    ``x = 1 - 1/p`` and ``y = 1/S - 1/p``. Points on one worker have ``x = 0`` and do not
    affect it. Give every run, not only medians: repeats make the standard error meaningful.

    >>> fit = fit_amdahl([(1, 1.0), (2, 1.6), (2, 1.6)])
    >>> fit.serial_fraction, fit.ceiling, fit.predicted[4]
    (0.25, 4.0, 2.2857142857142856)
    >>> fit_amdahl([(2, 2.2)]).serial_fraction  # better than linear: clamped
    0.0
    """
    xs, ys = [], []
    for workers, speedup in _checked(points):
        xs.append(1 - 1 / workers)
        ys.append(1 / speedup - 1 / workers)
    raw, stderr, n = _slope_through_origin(xs, ys)
    f = _clamp(raw)
    predicted = {p: _amdahl(f, p) for p in PREDICT_AT}
    ceiling = math.nan if math.isnan(f) else (math.inf if f <= 0 else 1 / f)
    return AmdahlFit(f, stderr, predicted, ceiling, raw, n)


def fit_gustafson(points: Sequence[tuple[int, float]]) -> GustafsonFit:
    """Fit Gustafson's law ``S = p - f (p - 1)`` to ``(workers, scaled speedup)`` points.

    Least squares of ``p - S = f (p - 1)``, a line through the origin, clamped to ``[0, 1]``.

    >>> fit = fit_gustafson([(1, 1.0), (2, 1.9), (4, 3.7)])
    >>> round(fit.serial_fraction, 3), round(fit.predicted[64], 1)
    (0.1, 57.7)
    """
    xs, ys = [], []
    for workers, speedup in _checked(points):
        xs.append(float(workers - 1))
        ys.append(workers - speedup)
    raw, stderr, n = _slope_through_origin(xs, ys)
    f = _clamp(raw)
    predicted = {p: p - f * (p - 1) for p in PREDICT_AT}
    return GustafsonFit(f, stderr, predicted, raw, n)


def _slope_through_origin(xs: list[float], ys: list[float]) -> tuple[float, float, int]:
    """Least-squares slope of ``y = b x``, its standard error, and the points with ``x > 0``."""
    sxx = math.fsum(x * x for x in xs)
    n = sum(1 for x in xs if x > 0)
    if sxx == 0:
        return math.nan, math.nan, 0
    b = math.fsum(x * y for x, y in zip(xs, ys, strict=True)) / sxx
    if n < 2:  # one point fits exactly: no residual left to estimate the noise from
        return b, math.nan, n
    # Points with x = 0 have a residual that no slope can change: they carry no information
    # about b, so they count neither in the residuals nor in the degrees of freedom.
    rss = math.fsum((y - b * x) ** 2 for x, y in zip(xs, ys, strict=True) if x > 0)
    return b, math.sqrt(rss / (n - 1) / sxx), n


def _clamp(f: float) -> float:
    return f if math.isnan(f) else min(1.0, max(0.0, f))


def _amdahl(f: float, workers: int) -> float:
    return 1 / (f + (1 - f) / workers)


def _gustafson(f: float, workers: int) -> float:
    return workers - f * (workers - 1)


def _checked(points: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    checked = [(_check_workers(p), _check_speedup(s)) for p, s in points]
    if not checked:
        raise InvalidOptionError("a scaling law needs at least one (workers, speedup) point")
    return checked


def _check_workers(workers: object) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidOptionError(f"workers must be an int >= 1, not {workers!r}")
    return workers


def _check_speedup(speedup: object) -> float:
    if (
        isinstance(speedup, bool)
        or not isinstance(speedup, int | float)
        or not math.isfinite(speedup)
        or speedup <= 0
    ):
        raise InvalidOptionError(f"a speed-up must be a finite number > 0, not {speedup!r}")
    return float(speedup)


def _with_error(value: float, stderr: float) -> str:
    if math.isnan(stderr):
        error = "n/a"
    elif 1e-6 < stderr < 0.0005:  # one significant digit, not 0.000; rounding noise is 0
        error = f"{stderr:.1g}"
    else:
        error = f"{stderr:.3f}"
    return f"{value:.3f} ± {error}"


def _predictions(predicted: dict[int, float], ranges: dict[int, tuple[float, float]]) -> str:
    parts = []
    for p, s in predicted.items():
        low, high = ranges.get(p, (math.nan, math.nan))
        spread = "" if math.isnan(low) else f" ({low:.1f}-{high:.1f})"
        parts.append(f"{p}: {s:.1f}{spread}")
    return ", ".join(parts)


def _uncertainty(stderr: float, machine: float, interval: tuple[float, float]) -> str:
    """`` (rounds ± a, machine ± b; 95% interval c to d)``, or as much of it as is known."""
    parts = []
    if not math.isnan(machine):
        rounds = math.sqrt(max(0.0, stderr**2 - machine**2))
        parts.append(f"rounds ± {rounds:.3f}, machine ± {machine:.3f}")
    if not math.isnan(interval[0]):
        parts.append(f"95% interval {interval[0]:.3f} to {interval[1]:.3f}")
    return f" ({'; '.join(parts)})" if parts else ""


def _ends(predict: Callable[[float], float], interval: tuple[float, float]) -> tuple[float, float]:
    """``predict`` at both ends of ``interval`` clamped to [0, 1], lowest first."""
    if math.isnan(interval[0]):
        return math.nan, math.nan
    a, b = (predict(_clamp(f)) for f in interval)
    return min(a, b), max(a, b)


def _clamp_note(raw: float, clamped: float) -> str:
    if raw == clamped or math.isnan(raw):
        return ""
    why = "better than linear" if raw < 0 else "slower than one worker"
    return f" (least squares gave {raw:.3f}: {why}; clamped)"
