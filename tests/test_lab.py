"""The scaling lab measures real runs: speed-ups, the time breakdown, the fit, the table, the
JSON, the plot and the ``lightwork scale`` command.

Most runs use sleeping tasks on threads: sleep releases the GIL, so threads scale with their
number whatever the load on the machine, and the test stays quick on two cores.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import lightwork
from lightwork import InvalidOptionError
from lightwork.lab import (
    WORKLOADS,
    AmdahlFit,
    GustafsonFit,
    ScalingPoint,
    ScalingReport,
    karp_flatt,
    resolve,
    scale,
)
from lightwork.lab._cli import add_parser, run
from lightwork.lab._scale import default_worker_counts
from lightwork.lab._workloads import sleep_task, tiny_task

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class SerialThenParallel:
    """Amdahl's model as a job: a serial phase, then a parallel phase that waits for it.

    Task 0 sleeps ``serial`` seconds; the other tasks wait until task 0 of their run is done,
    then sleep ``parallel / (tasks - 1)`` each. On one worker a run takes ``serial + parallel``,
    so the serial fraction is ``serial / (serial + parallel)``. Runs are told apart by counting,
    since each run starts every task once: parallel task k belongs to run k // (tasks - 1).
    """

    def __init__(self, serial: float, parallel: float, tasks: int) -> None:
        self.serial = serial
        self.each = parallel / (tasks - 1)
        self.per_run = tasks - 1
        self.condition = threading.Condition()
        self.serial_phases_done = 0
        self.parallel_tasks_started = 0

    def __call__(self, index: int) -> None:
        if index == 0:
            time.sleep(self.serial)
            with self.condition:
                self.serial_phases_done += 1
                self.condition.notify_all()
            return
        with self.condition:
            run_number = self.parallel_tasks_started // self.per_run
            self.parallel_tasks_started += 1
            self.condition.wait_for(lambda: self.serial_phases_done > run_number)
        time.sleep(self.each)


@pytest.fixture(scope="module")
def report() -> ScalingReport:
    """One strong-scaling measurement on threads, shared by the tests that only read it."""
    return scale(
        sleep_task,
        [0.004] * 16,
        max_workers=[4, 1, 2],
        backends=["threads"],
        repeat=3,
        chunksize=1,
        name="sleepy",
    )


# ---- what a report holds -----------------------------------------------------------------------


def test_points_cover_each_worker_count_in_order(report: ScalingReport) -> None:
    assert [(p.backend, p.workers) for p in report.points] == [
        ("threads", 1),
        ("threads", 2),
        ("threads", 4),
    ]
    assert report.mode == "strong" and report.workload == "sleepy"
    assert (report.baseline.backend, report.baseline.workers) == ("serial", 1)


@pytest.mark.parametrize("which", ["baseline", 0, 1, 2])
def test_point_fields_are_consistent(report: ScalingReport, which: str | int) -> None:
    point = report.baseline if which == "baseline" else report.points[int(which)]
    assert isinstance(point, ScalingPoint)
    assert len(point.seconds) == len(point.speedups) == report.rounds == report.repeat == 3
    assert report.stopped == "rounds"  # no budget: exactly `repeat` rounds
    assert point.min_seconds <= point.median_seconds <= point.max_seconds
    # Each round's speed-up is that round's baseline run over the point's run: paired.
    for baseline, seconds, speedup in zip(
        report.baseline.seconds, point.seconds, point.speedups, strict=True
    ):
        assert speedup == pytest.approx(baseline / seconds)
    assert point.speedup == pytest.approx(statistics.median(point.speedups))
    assert point.speedup_stderr >= 0
    assert point.efficiency == pytest.approx(point.speedup / point.workers)
    if point.workers == 1:
        assert point.karp_flatt is None
    else:
        assert point.karp_flatt == pytest.approx(karp_flatt(point.speedup, point.workers))
    if which == "baseline":  # the serial backend in a fresh process, as a worker runs
        assert report.baseline_where == "a fresh process" and math.isnan(point.startup_seconds)
    else:
        assert point.startup_seconds >= 0
    assert point.items == 16


def test_the_machines_ceiling_is_measured_in_the_same_rounds(report: ScalingReport) -> None:
    # On 1 worker the ceiling is the baseline itself: the serial backend in a fresh process.
    assert [(c.backend, c.workers) for c in report.ceiling] == [("ceiling", 2), ("ceiling", 4)]
    ceilings = {1: report.baseline.seconds} | {c.workers: c.seconds for c in report.ceiling}
    for ceiling in report.ceiling:
        assert len(ceiling.seconds) == report.rounds
        assert ceiling.speedup == pytest.approx(
            statistics.median(
                b / s for b, s in zip(report.baseline.seconds, ceiling.seconds, strict=True)
            )
        )
    for point in report.points:
        shares = zip(ceilings[point.workers], point.seconds, strict=True)
        assert point.of_ceiling == pytest.approx(statistics.median(c / s for c, s in shares))
    assert report.ceiling[-1].speedup > 2  # 4 processes sleeping: ideally 4
    assert report.ceiling_fit is not None and "ceiling (Amdahl): " in report.table()
    # The machine's own departure from linear is part of each fit's error.
    fit = report.fits["threads"]
    assert fit.machine_stderr >= abs(report.ceiling_fit.raw_serial_fraction)
    assert fit.stderr >= fit.machine_stderr


def test_threads_speed_sleeping_tasks_up(report: ScalingReport) -> None:
    assert report.points[-1].speedup > 2  # 4 threads; ideal 4


def test_breakdown_accounts_for_the_workers_time(report: ScalingReport) -> None:
    for point in report.points:
        b = point.breakdown
        assert b.capacity == pytest.approx(point.workers * sum(point.seconds) / len(point.seconds))
        assert min(b.busy, b.serialize, b.deserialize, b.idle, b.other) >= 0
        assert b.busy + b.serialize + b.deserialize + b.idle + b.other >= b.capacity * 0.999
        shares = b.fractions()
        assert set(shares) == {"busy", "serialize", "deserialize", "idle", "other"}
        assert shares["busy"] > 0.5  # sleeping is the tasks' work


def test_fit_is_amdahl_per_backend_with_a_bootstrap_interval(report: ScalingReport) -> None:
    fit = report.fits["threads"]
    assert isinstance(fit, AmdahlFit)
    assert fit.n_points == 2  # the medians on 2 and 4 workers
    assert 0 <= fit.serial_fraction < 0.2
    low, high = fit.interval
    assert low <= fit.raw_serial_fraction <= high and fit.stderr >= 0


def test_table_shows_every_point_and_the_fit(report: ScalingReport) -> None:
    table = report.table()
    assert str(report) == table
    lines = table.splitlines()
    assert any(line.startswith("serial ") for line in lines)
    assert sum(line.startswith("threads ") and "Amdahl" not in line for line in lines) == 3
    for column in ("median s", "speed-up", "Karp-Flatt", "busy", "idle", "start-up s"):
        assert column in table
    fit = report.fits["threads"]
    assert f"threads (Amdahl): serial fraction f = {fit.serial_fraction:.3f} ± " in table
    assert "95% interval" in table and "predicted speed-up 4: " in table and "ceiling" in table
    assert "3 rounds (as many as asked)" in table and "shuffled order" in table


def test_to_json_round_trips(report: ScalingReport) -> None:
    data = json.loads(report.to_json())
    assert data["mode"] == "strong" and data["workload"] == "sleepy"
    assert data["baseline_seconds"] == report.baseline_seconds
    assert [p["workers"] for p in data["points"]] == [1, 2, 4]
    first = data["points"][0]
    assert first["seconds"] == list(report.points[0].seconds)
    assert first["breakdown"]["fractions"]["busy"] == report.points[0].breakdown.fractions()["busy"]
    fit = data["fits"]["threads"]
    assert fit["law"] == "amdahl"
    assert fit["serial_fraction"] == report.fits["threads"].serial_fraction
    assert set(fit["predicted"]) == set(fit["predicted_range"]) == {"4", "8", "16", "64"}
    assert fit["interval"] == list(report.fits["threads"].interval)
    assert data["rounds"] == 3 and data["stopped"] == "rounds"
    assert [c["workers"] for c in data["ceiling"]] == [2, 4]
    assert data["baseline_where"] == "a fresh process"
    assert data["noisy"] == bool(report.notes or fit["notes"])


def test_json_has_no_nan_even_when_the_fit_is_undetermined() -> None:
    one = scale(
        sleep_task, [0.001] * 2, max_workers=[1], backends=["threads"], repeat=1, ceiling=False
    )
    assert math.isnan(one.fits["threads"].serial_fraction)
    data = json.loads(one.to_json())  # strict JSON: NaN became null
    assert data["fits"]["threads"]["serial_fraction"] is None


def test_plot_writes_a_png(report: ScalingReport, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = report.plot(tmp_path / "scaling.png")
    assert path == tmp_path / "scaling.png"
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_points_and_report_are_frozen(report: ScalingReport) -> None:
    with pytest.raises(AttributeError):
        report.mode = "weak"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        report.points[0].speedup = 99.0  # type: ignore[misc]


# ---- the accuracy target -----------------------------------------------------------------------


def test_fitted_serial_fraction_matches_a_known_serial_part() -> None:
    # 10% of the single-worker time is serial: 17.8 ms alone, then 8 tasks of 20 ms in parallel.
    # Few, long tasks: a loaded machine delays each thread wake-up by a millisecond or more.
    parallel = 0.16
    job = SerialThenParallel(serial=parallel / 9, parallel=parallel, tasks=9)
    result = scale(
        job, range(9), max_workers=[1, 2, 4, 8], backends=["threads"], repeat=3, chunksize=1
    )
    fit = result.fits["threads"]
    assert abs(fit.serial_fraction - 0.10) < 0.03, result.table()
    # (each thread's wake-up adds its delay to the parallel part: 0.11 seen on a busy machine)
    assert fit.interval[0] <= 0.10 <= fit.interval[1] or abs(fit.raw_serial_fraction - 0.1) < 0.02
    # Its condition variable can't travel to another process: no ceiling, and a note says so.
    assert not result.ceiling
    assert any("ceiling was not measured" in note for note in result.notes)
    estimates = [p.karp_flatt for p in result.points if p.karp_flatt is not None]
    assert abs(sum(estimates) / len(estimates) - 0.10) < 0.05, result.table()


# ---- processes ---------------------------------------------------------------------------------


def test_processes_report_pickling_in_the_breakdown() -> None:
    result = scale(tiny_task, range(2000), max_workers=[1, 2], repeat=1, ceiling=False)
    assert [(p.backend, p.workers) for p in result.points] == [("processes", 1), ("processes", 2)]
    for point in result.points:
        assert point.speedup == pytest.approx(result.baseline_seconds / point.median_seconds)
        assert point.breakdown.deserialize > 0  # process workers unpickle every chunk
        assert point.startup_seconds > 0
    assert isinstance(result.fits["processes"], AmdahlFit)


# ---- weak scaling ------------------------------------------------------------------------------


def test_weak_scaling_grows_the_work_and_fits_gustafson() -> None:
    result = scale(
        sleep_task,
        lambda p: [0.004] * (4 * p),
        max_workers=[1, 2, 4],
        backends=["threads"],
        mode="weak",
        repeat=3,
        chunksize=1,
    )
    assert [p.items for p in result.points] == [4, 8, 16]
    assert [c.items for c in result.ceiling] == [8, 16]
    assert result.baseline.items == 4
    for point in result.points:
        scaled = [
            point.workers * b / s
            for b, s in zip(result.baseline.seconds, point.seconds, strict=True)
        ]
        assert point.speedup == pytest.approx(statistics.median(scaled))
        assert point.efficiency == pytest.approx(point.speedup / point.workers)
        assert point.karp_flatt is None  # Karp-Flatt is a strong-scaling measure
    fit = result.fits["threads"]
    assert isinstance(fit, GustafsonFit) and fit.serial_fraction < 0.2
    assert "threads (Gustafson): serial fraction f = " in result.table()
    assert json.loads(result.to_json())["fits"]["threads"]["law"] == "gustafson"


def test_weak_scaling_repeats_a_sequence_per_worker() -> None:
    result = scale(
        tiny_task,
        [1, 2, 3],
        max_workers=[1, 3],
        backends=["threads"],
        mode="weak",
        repeat=1,
        ceiling=False,
    )
    assert [p.items for p in result.points] == [3, 9]


# ---- options -----------------------------------------------------------------------------------


def test_default_worker_counts_are_powers_of_two_and_the_cpu_count() -> None:
    assert default_worker_counts(1) == [1]
    assert default_worker_counts(2) == [1, 2]
    assert default_worker_counts(12) == [1, 2, 4, 8, 12]
    assert default_worker_counts() == default_worker_counts(lightwork.available_cpus())


def test_a_generator_of_items_is_read_once_and_measured_every_run() -> None:
    result = scale(
        tiny_task,
        (x for x in range(50)),
        max_workers=[2],
        backends=["threads"],
        repeat=2,
        ceiling=False,
    )
    assert result.points[0].items == 50


def test_progress_shows_a_bar_over_every_run(capsys: pytest.CaptureFixture[str]) -> None:
    scale(tiny_task, range(10), max_workers=[1, 2], backends=["threads"], repeat=2, progress=True)
    err = capsys.readouterr().err
    # (1 warm-up + 2 rounds) x (the baseline in a fresh process + 2 points + the ceiling on 2)
    assert "scale" in err and "12/12" in err


BAD_OPTIONS: dict[str, dict[str, Any]] = {
    "no worker counts": {"max_workers": []},
    "zero workers": {"max_workers": [0, 2]},
    "fractional workers": {"max_workers": [1.5]},
    "a bare int for worker counts": {"max_workers": 4},
    "unknown mode": {"mode": "medium"},
    "no repeats": {"repeat": 0},
    "negative warm-up": {"warmup": -1},
    "unknown backend": {"backends": ["gpu"]},
    "no backends": {"backends": []},
    "serial is the baseline": {"backends": ["serial"]},
    "a backend twice": {"backends": ["threads", "threads"]},
    "zero chunksize": {"chunksize": 0},
    "negative budget": {"budget": -1},
    "zero precision": {"precision": 0},
    "no items": {"items": []},
    "a function of p in strong mode": {"items": lambda p: range(p)},
    "neither sequence nor function in weak mode": {"items": iter([1]), "mode": "weak"},
}


@pytest.mark.parametrize("options", list(BAD_OPTIONS.values()), ids=list(BAD_OPTIONS))
def test_bad_options_raise_invalid_option_error(options: dict[str, Any]) -> None:
    options = {"items": range(4), "backends": ["threads"], **options}
    items = options.pop("items")
    with pytest.raises(InvalidOptionError):
        scale(tiny_task, items, **options)


def test_invalid_option_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown mode 'medium'"):
        scale(tiny_task, range(4), mode="medium")


# ---- built-in workloads ------------------------------------------------------------------------


def test_every_builtin_workload_runs_and_gives_sensible_results() -> None:
    for workload in WORKLOADS.values():
        items = workload.items(2)
        assert len(items) == 2 and workload.description
        assert len(workload.items()) == workload.default_items
        results = lightwork.map(workload.fn, items, backend="serial", seed=1)
        if workload.name.startswith("pi"):
            assert abs(4 * sum(results) / sum(items) - math.pi) < 0.02
        elif workload.name == "bbp":
            assert results[0] == lightwork.workloads.pi_hex_digits(2000, 8)


def test_resolve_accepts_module_function() -> None:
    workload = resolve("math:sqrt")
    assert workload.fn(9.0) == 3.0
    assert workload.items(3) == [0, 1, 2]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("pie", "did you mean 'pi'"),
        ("no_such_module_xyz:f", "cannot import"),
        ("math:no_such_function", "has no"),
        ("math:pi", "not a function"),
        (":f", "module:function"),
    ],
)
def test_resolve_explains_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        resolve(spec)


def test_items_must_be_positive() -> None:
    with pytest.raises(InvalidOptionError):
        WORKLOADS["tiny"].items(0)


# ---- lightwork scale ---------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lightwork")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["scale", *argv])


def test_cli_parses_lists_and_counts() -> None:
    args = parse("pi", "--items", "1e3", "--max-workers", "1,2,4", "--backends", "threads")
    assert args.items == 1000
    assert args.max_workers == [1, 2, 4]
    assert args.backends == ["threads"]
    assert parse("pi", "--items", "1_000").items == 1000
    defaults = parse("pi")
    assert defaults.backends == ["processes"] and defaults.repeat == 5
    assert defaults.budget == 60 and defaults.precision == 0.005 and defaults.ceiling
    assert parse("pi", "--budget", "0", "--no-ceiling").ceiling is False


def test_cli_rejects_an_unknown_backend(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("pi", "--backends", "processes,gpu")
    assert "unknown backend 'gpu'" in capsys.readouterr().err


def test_cli_scales_tiny_on_processes_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiny.json"
    args = parse(
        "tiny", "--items", "2000", "--max-workers", "1,2", "--repeat", "3", "--budget", "0"
    )
    args.json = out
    assert run(args) == 0
    printed = capsys.readouterr().out
    assert "tiny: strong scaling" in printed and "processes (Amdahl)" in printed
    data = json.loads(out.read_text())
    assert data["workload"] == "tiny" and len(data["points"]) == 2


def test_cli_scales_sleep_on_threads_in_weak_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sleep.json"
    args = parse(
        "sleep",
        "--items=4",
        "--max-workers=1,2",
        "--backends=threads",
        "--repeat=1",
        "--budget=0",
        "--mode=weak",
        f"--json={out}",
        "--quiet",
    )
    assert run(args) == 0
    assert "threads (Gustafson)" in capsys.readouterr().out
    assert [p["items"] for p in json.loads(out.read_text())["points"]] == [4, 8]


def test_cli_writes_the_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "plot.png"
    args = parse(
        "sleep", "--items=2", "--max-workers=1,2", "--backends=threads", "--repeat=3", "--budget=0"
    )
    args.plot = out
    assert run(args) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_cli_reports_an_unknown_workload(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse("nope")) == 2
    assert "unknown workload 'nope'" in capsys.readouterr().err


def test_bench_compares_lightwork_with_its_peers_side_by_side() -> None:
    from lightwork.lab._bench import bench, table

    rows = bench(["tiny"], items=2000, max_workers=2, repeat=1)
    by_name = {row.contender: row for row in rows}
    assert by_name["lightwork processes"].ratio_to_lightwork == 1.0
    assert {"multiprocessing.Pool", "ThreadPoolExecutor", "joblib", "mpire"} <= set(by_name)
    for row in rows:
        if row.median_seconds is not None:
            assert (
                row.ratio_to_lightwork
                == row.median_seconds / by_name["lightwork processes"].median_seconds
            )
    assert "x lightwork" in table(rows)


def test_make_scale_writes_only_untracked_results(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    if shutil.which("make") is None or not (root / ".git").exists():
        pytest.skip("needs make and a git checkout")
    command = subprocess.run(
        ["make", "-n", "--no-print-directory", "scale"], cwd=root, capture_output=True, text=True
    ).stdout.splitlines()[-1]
    outputs = [word for word in command.split() if word.endswith((".png", ".json"))]
    assert "lightwork scale pi" in command and len(outputs) == 2, command
    for output in outputs:
        ignored = subprocess.run(["git", "check-ignore", "-q", output], cwd=root)
        assert ignored.returncode == 0, f"make scale would write {output}, which git tracks"
