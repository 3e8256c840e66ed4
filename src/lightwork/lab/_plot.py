"""The scaling plot: speed-up and efficiency against workers, with the fitted law.

matplotlib is imported here only, and used through its object interface on an Agg canvas, so
drawing a report neither needs a display nor changes the caller's pyplot backend.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._fit import AmdahlFit, GustafsonFit
from ._modes import CEILING
from ._noise import Z_95

if TYPE_CHECKING:
    from ._scale import ScalingPoint, ScalingReport

__all__ = ["plot"]

# The fitted curve runs this far past the largest worker count measured: enough to show where
# it is heading, not so far that the extrapolation dominates the picture.
EXTEND = 1.3
# Above this ratio of largest to smallest worker count, a log2 axis spreads 1, 2, 4, ... evenly.
LOG_AXIS_RATIO = 16
CURVE_STEPS = 200
DPI = 130


def plot(report: ScalingReport, path: str | Path, *, title: str | None = None) -> Path:
    """Save a PNG of ``report``: speed-up (left) and efficiency (right) against workers.

    Each backend's median speed-up is a marker with its 95% interval as an error bar, its fitted
    law a line of the same colour over a band for the law's 95% interval; the machine's ceiling
    (independent processes) grey squares; the ideal ``S = p`` dotted grey, Amdahl's ceiling
    ``1/f`` dashed when in view. The report's notes (noise larger than the effect, a 1-worker
    point off the curve, a busy machine) are printed under the plots. Returns the path written.

    >>> import tempfile, time
    >>> from lightwork.lab import scale
    >>> report = scale(time.sleep, [0.005] * 4, max_workers=[1, 2], backends=["threads"],
    ...                repeat=1, chunksize=1)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     print(report.plot(Path(folder) / "scaling.png").stat().st_size > 10_000)
    True
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("the plot needs matplotlib: pip install 'lightwork[plot]'") from error

    weak = report.mode == "weak"
    notes = _notes(report)
    figure = Figure(figsize=(12, 5.2 + 0.22 * len(notes)), layout="constrained")
    FigureCanvasAgg(figure)
    speed, efficiency = figure.subplots(1, 2)
    counts = sorted({p.workers for p in report.points})
    largest = max(counts)
    log_axis = largest / min(counts) >= LOG_AXIS_RATIO
    right = largest * EXTEND if largest > 1 else 2.0
    grid = _grid(1.0, right, log_axis)
    top = right

    # Dotted and on top: a fit that is nearly ideal would otherwise hide the ideal line.
    ideal = {"color": "0.35", "linestyle": ":", "linewidth": 1.6, "zorder": 2.5}
    speed.plot(grid, grid, label="ideal: S = p", **ideal)
    efficiency.axhline(100, label="ideal: 100%", **ideal)
    series = [(backend, f"C{index}") for index, backend in enumerate(report.backends)]
    if report.ceiling:
        series.append((CEILING, "0.45"))
    for index, (backend, colour) in enumerate(series):
        points = report.points_for(backend)
        low, mid, high = _speedup_ranges(points)
        workers = [p.workers for p in points]
        what = "independent processes (the machine's ceiling)" if backend == CEILING else backend
        style: dict[str, Any] = {
            "fmt": "s" if backend == CEILING else "o",
            "markersize": 7,
            "capsize": 4,
            "color": colour,
            "label": f"{what}: median, 95% interval",
            "zorder": 3,
        }
        speed.errorbar(workers, mid, yerr=[_minus(mid, low), _minus(high, mid)], **style)
        top = max(top, *high)
        e_low, e_mid, e_high = (
            [100 * s / p for s, p in zip(v, workers, strict=True)] for v in (low, mid, high)
        )
        efficiency.errorbar(
            workers, e_mid, yerr=[_minus(e_mid, e_low), _minus(e_high, e_mid)], **style
        )
        for x, s in zip(workers, mid, strict=True):
            speed.annotate(
                f"{s:.2f}",
                (x, s),
                textcoords="offset points",
                xytext=(8, -12 - 11 * index),  # one line per backend, never on top
                fontsize=8,
                color=colour,
            )
        fit = report.ceiling_fit if backend == CEILING else report.fits[backend]
        if fit is None or math.isnan(fit.serial_fraction):
            continue
        law = "Gustafson" if weak else "Amdahl"
        curve = [fit.speedup(p) for p in grid]
        spread = "" if math.isnan(fit.stderr) else f" ± {fit.stderr:.3f}"
        noisy = " (noise > effect)" if fit.notes else ""
        fit_label = f"{backend}: {law} fit, f = {fit.serial_fraction:.3f}{spread}{noisy}"
        line = {"color": colour, "linewidth": 1.8, "linestyle": "--" if fit.notes else "-"}
        speed.plot(grid, curve, label=fit_label, **line)
        efficiency.plot(
            grid, [100 * s / p for s, p in zip(curve, grid, strict=True)], label=fit_label, **line
        )
        band = _band(fit, grid)
        if band is not None:
            lower, upper = band
            speed.fill_between(grid, lower, upper, color=colour, alpha=0.12, linewidth=0)
            efficiency.fill_between(
                grid,
                [100 * s / p for s, p in zip(lower, grid, strict=True)],
                [100 * s / p for s, p in zip(upper, grid, strict=True)],
                color=colour,
                alpha=0.12,
                linewidth=0,
            )
        if isinstance(fit, AmdahlFit) and fit.ceiling <= top * 1.05:
            speed.axhline(
                fit.ceiling,
                color=colour,
                linestyle="--",
                linewidth=1.2,
                label=f"{backend}: ceiling 1/f = {fit.ceiling:.1f}",
            )

    for axes in (speed, efficiency):
        _worker_axis(axes, counts, right, log_axis)
        axes.grid(True, color="0.9")
        axes.set_axisbelow(True)
        axes.legend(fontsize=8.5, loc="best", framealpha=0.9)
    if log_axis:  # log-log: the ideal line stays straight, and so do power laws
        speed.set_yscale("log", base=2)
        bottom = min(0.5, min(p.speedup for p in report.points) / 1.5)
        speed.set_ylim(bottom, top * 1.3)
        ticks = [
            2.0**k for k in range(math.floor(math.log2(bottom)), math.ceil(math.log2(top)) + 1)
        ]
        speed.set_yticks(ticks, [f"{t:g}" for t in ticks])
    else:
        speed.set_ylim(0, top * 1.08)
    speed.set_ylabel("scaled speed-up  p·T1 / T(p)" if weak else "speed-up  T1 / T(p)")
    speed.set_title("Scaled speed-up (weak scaling)" if weak else "Speed-up (strong scaling)")
    highest = max(
        100 * h / p.workers
        for p in (*report.points, *report.ceiling)
        for h in _speedup_ranges([p])[2]
    )
    efficiency.set_ylim(0, max(110, highest * 1.08))
    efficiency.set_ylabel("efficiency  S / p  (%)")
    efficiency.set_title("Efficiency")
    figure.suptitle(title or _title(report), fontsize=13)
    if notes:
        figure.supxlabel("\n".join(notes), fontsize=8, color="firebrick", ha="left", x=0.01)
    target = Path(path)
    figure.savefig(target, dpi=DPI, format="png")
    return target


def _title(report: ScalingReport) -> str:
    name = report.workload or "work"
    per = " per worker" if report.mode == "weak" else ""
    return (
        f"{name}: {report.mode} scaling, {report.baseline.items:,} items{per}, "
        f"serial baseline {report.baseline_seconds:.3g} s, {report.cpus} CPUs"
    )


def _speedup_ranges(points: list[ScalingPoint]) -> tuple[list[float], list[float], list[float]]:
    """Per point: the low end of its median speed-up's 95% interval, the median, the high end.

    With too few rounds for an interval, the speed-ups of the slowest and fastest rounds."""
    low, mid, high = [], [], []
    for p in points:
        spread = Z_95 * p.speedup_stderr
        mid.append(p.speedup)
        if math.isnan(spread):
            speedups = p.run_speedups()
            low.append(min(speedups))
            high.append(max(speedups))
        else:
            low.append(p.speedup - spread)
            high.append(p.speedup + spread)
    return low, mid, high


def _band(
    fit: AmdahlFit | GustafsonFit, grid: list[float]
) -> tuple[list[float], list[float]] | None:
    """The law at both ends of the fit's interval over ``grid``: the band the curve may lie in."""
    if math.isnan(fit.interval[0]):
        return None
    ends = [replace(fit, serial_fraction=min(1.0, max(0.0, f))) for f in fit.interval]
    a, b = ([end.speedup(p) for p in grid] for end in ends)
    return [min(x, y) for x, y in zip(a, b, strict=True)], [
        max(x, y) for x, y in zip(a, b, strict=True)
    ]


def _notes(report: ScalingReport) -> list[str]:
    """The notes to print under the plots: the fits' (named by backend) and the report's."""
    notes = [f"{backend}: {note}" for backend, fit in report.fits.items() for note in fit.notes]
    if report.ceiling_fit is not None:
        notes += [f"{CEILING}: {note}" for note in report.ceiling_fit.notes]
    return [textwrap.shorten(n, 190, placeholder=" ...") for n in (*notes, *report.notes)]


def _minus(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def _grid(start: float, stop: float, log_axis: bool) -> list[float]:
    if log_axis:
        ratio = math.log(stop / start)
        return [start * math.exp(ratio * i / CURVE_STEPS) for i in range(CURVE_STEPS + 1)]
    return [start + (stop - start) * i / CURVE_STEPS for i in range(CURVE_STEPS + 1)]


def _worker_axis(axes: Any, counts: list[int], right: float, log_axis: bool) -> None:
    if log_axis:
        axes.set_xscale("log", base=2)
        axes.set_xlim(min(counts) / 1.2, right)
    else:
        axes.set_xlim(0.5, right)
    axes.set_xticks(counts, [str(c) for c in counts])
    axes.set_xlabel("workers")
