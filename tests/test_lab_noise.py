"""The lab's defences against a noisy machine: rounds, stopping, error bars and the notes that
say when the noise is larger than the effect. Fake jobs and made-up speed-ups, no workers."""

from __future__ import annotations

import itertools
import json
import math
import time

import pytest

from lightwork.lab import ScalingPoint, scale
from lightwork.lab._noise import bootstrap, fit_notes, median_estimate
from lightwork.lab._plot import _notes
from lightwork.lab._scale import _fit, _point, _report_notes, _rounds
from lightwork.lab._workloads import tiny_task


def logging_jobs(count: int, log: list[int], seconds: float = 1.0) -> list[object]:
    def job(index: int) -> float:
        log.append(index)
        return seconds

    return [lambda i=i: job(i) for i in range(count)]


def test_every_configuration_runs_once_a_round_in_a_shuffled_order() -> None:
    log: list[int] = []
    times, stopped = _rounds(logging_jobs(4, log), 6, None, 0.005, None)  # type: ignore[arg-type]
    assert stopped == "rounds" and [len(t) for t in times] == [6, 6, 6, 6]
    rounds = [log[i : i + 4] for i in range(0, len(log), 4)]
    assert all(sorted(r) == [0, 1, 2, 3] for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1  # the order changes from round to round


def test_rounds_stop_once_every_speedup_is_stable() -> None:
    log: list[int] = []
    # Identical times: every ratio's spread is 0, stable at the fewest rounds allowed.
    times, stopped = _rounds(logging_jobs(3, log), 3, 60.0, 0.005, None)  # type: ignore[arg-type]
    assert stopped == "stable" and len(times[0]) == 3


def test_rounds_stop_when_the_budget_is_spent() -> None:
    noise = itertools.cycle([0.010, 0.014, 0.009, 0.016])

    def noisy() -> float:
        time.sleep(0.002)
        return next(noise)

    times, stopped = _rounds([lambda: 0.01, noisy], 3, 0.05, 0.005, None)
    assert stopped == "budget" and len(times[0]) >= 3


def test_a_disturbed_round_barely_moves_the_median() -> None:
    quiet = median_estimate([1.95, 1.96, 1.97, 1.96, 1.95])
    disturbed = median_estimate([1.95, 1.96, 1.40, 1.96, 1.95])
    assert abs(disturbed.value - quiet.value) < 0.02  # the mean would move by 0.11
    assert disturbed.low < disturbed.value < disturbed.high
    assert math.isnan(median_estimate([1.9, 2.0]).stderr)  # two rounds tell no spread


def test_bootstrap_is_reproducible_and_brackets_the_estimate() -> None:
    values = [0.020, 0.031, 0.024, 0.027, 0.022, 0.029]
    first = bootstrap(len(values), lambda picked: sorted(values[i] for i in picked)[3])
    assert first == bootstrap(len(values), lambda picked: sorted(values[i] for i in picked)[3])
    assert first[1] <= 0.027 <= first[2]


NOTES = [
    ((0.03, 0.005, 0.02, 0.04), None),
    ((0.004, 0.006, -0.008, 0.016), "noise larger than the effect"),
    ((-0.004, 0.006, -0.015, 0.008), "better than linear by less than its noise"),
    ((-0.05, 0.01, -0.07, -0.03), "better than linear beyond the noise"),
    ((0.05, math.nan, math.nan, math.nan), "uncertainty unknown"),
]


@pytest.mark.parametrize(("fit", "expected"), NOTES)
def test_fit_notes_say_when_the_noise_is_larger_than_the_effect(
    fit: tuple[float, float, float, float], expected: str | None
) -> None:
    notes = fit_notes(*fit)
    if expected is None:
        assert notes == ()
    else:
        assert len(notes) == 1 and expected in notes[0]


def point(workers: int, speedups: list[float], backend: str = "processes") -> ScalingPoint:
    return _point(backend, workers, 8, [1.0 / s for s in speedups], tuple(speedups), "strong")


def test_a_noisy_fit_is_flagged_in_its_summary_json_and_plot() -> None:
    noisy = [1.70, 2.05, 1.98, 2.10, 1.80, 2.02, 1.92]
    fit = _fit("strong", [(1, (1.0,) * 7), (2, tuple(noisy))], 7)
    assert fit.notes and "noise larger than the effect" in fit.notes[0]
    assert fit.interval[0] < 0 < fit.interval[1]
    report = scale(
        tiny_task, range(10), max_workers=[1, 2], backends=["threads"], repeat=1, ceiling=False
    )
    flagged = type(report)(**{**report.__dict__, "fits": {"threads": fit}})
    assert "  ! noise larger than the effect" in flagged.table()
    data = json.loads(flagged.to_json())
    assert data["noisy"] and data["fits"]["threads"]["notes"] == list(fit.notes)
    assert any("noise larger than the effect" in line for line in _notes(flagged))


def test_better_than_linear_speedup_is_never_a_confident_fit() -> None:
    beyond = _fit("strong", [(2, (2.20, 2.21, 2.19, 2.22, 2.20))], 5)
    assert beyond.serial_fraction == 0 and "better than linear beyond the noise" in beyond.notes[0]
    within = _fit("strong", [(2, (2.01, 1.96, 2.03, 1.99, 2.02))], 5)
    assert within.serial_fraction == 0 and "better than linear" in within.notes[0]
    assert "noise larger than the effect" in within.notes[0]


def test_a_one_worker_point_off_the_curve_gets_a_note() -> None:
    slow = point(1, [0.95, 0.96, 0.95, 0.94, 0.95])
    fast = point(1, [1.30, 1.35, 1.33, 1.36, 1.34], backend="threads")
    notes = _report_notes([slow, fast], [])
    assert any("processes on 1 worker ran at 0.95" in n and "1 at one worker" in n for n in notes)
    assert any("threads on 1 worker beat the serial baseline" in n for n in notes)
    steady = point(1, [0.999, 1.001, 1.0, 0.998, 1.002])
    assert _report_notes([steady], []) == []


def test_a_busy_machine_gets_a_note() -> None:
    busy = [point(2, [1.30, 1.32, 1.29, 1.31, 1.30], backend="ceiling")]
    notes = _report_notes([], busy)
    assert any(
        "the machine was busy: 2 independent processes reached only 1.30x" in n for n in notes
    )
    quiet = [point(2, [1.97, 1.99, 1.98, 2.0, 1.98], backend="ceiling")]
    assert _report_notes([], quiet) == []


def test_the_machines_own_departure_from_linear_widens_the_error() -> None:
    speedups = [(2, (1.90, 1.91, 1.89, 1.90, 1.92, 1.90))]
    alone = _fit("strong", speedups, 6)
    machine = _fit("strong", [(2, (1.94, 1.95, 1.93, 1.94, 1.96, 1.94))], 6)
    both = _fit("strong", speedups, 6, machine)
    assert both.serial_fraction == alone.serial_fraction
    assert both.machine_stderr == pytest.approx(
        math.hypot(machine.raw_serial_fraction, machine.stderr)
    )
    assert both.stderr == pytest.approx(math.hypot(alone.stderr, both.machine_stderr))
    assert both.interval[0] < alone.interval[0] and both.interval[1] > alone.interval[1]
    assert "machine ± " in both.summary() and "machine" not in alone.summary()


def test_without_the_ceiling_the_baseline_runs_in_this_process() -> None:
    report = scale(
        tiny_task, range(10), max_workers=[1, 2], backends=["threads"], repeat=1, ceiling=False
    )
    assert report.baseline_where == "this process" and not report.ceiling
    assert report.baseline.startup_seconds >= 0  # its own executor, in this process
