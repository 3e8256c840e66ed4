"""joblib on lightwork's backend against joblib's own (loky), side by side in one run.

    cd /work/main && .venv/bin/python bench/bench_joblib.py              # ~1-2 minutes
    cd /work/main && .venv/bin/python bench/bench_joblib.py --quick      # smoke run
    cd /work/main && .venv/bin/python bench/bench_joblib.py --markdown   # Markdown tables

(a) scikit-learn's ``GridSearchCV`` (SVC on load_digits, 6 candidates x 5 folds, n_jobs=2)
on ``backend="lightwork"`` and ``"loky"``, warm pools (both reuse theirs between calls), with
``n_jobs=1`` for reference. Goal: lightwork no slower than loky (within 1.10x: this machine's
noise).

(b) 100,000 tiny ``delayed(square)(i)`` calls through ``Parallel(n_jobs=2)``: on lightwork
with joblib's auto batching steered to 20-200 ms batches (the backend's default), on lightwork
with joblib's own 0.2-2 s batches (loky's), on loky, and
``lightwork.map`` for the same work without joblib. The floor is joblib's own per-call
machinery: ``Parallel(n_jobs=1)`` runs the same calls in the caller, with no pool at all;
each row says how close to it it gets.

Medians (and minimums) over interleaved rounds whose order rotates.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import _measure
from _measure import Table, fmt_s, fmt_x, interleaved, log, med, verdict

TARGET = 1.10
TASKS = 100_000


def square(x: int) -> int:
    return x * x


def grid_search(backend: str, n_jobs: int) -> Callable[[], None]:
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    X, y = load_digits(return_X_y=True)
    grid = {"C": [1, 10], "gamma": [0.0005, 0.001, 0.002]}

    def run() -> None:
        with joblib.parallel_config(backend=backend, n_jobs=n_jobs):
            GridSearchCV(SVC(), grid, cv=5).fit(X, y)

    return run


def tiny_parallel(backend: str, n_jobs: int, tasks: int) -> Callable[[], None]:
    import joblib

    def run() -> None:
        with joblib.parallel_config(backend=backend, n_jobs=n_jobs):
            out = joblib.Parallel()(joblib.delayed(square)(i) for i in range(tasks))
        assert len(out) == tasks

    return run


def tiny_parallel_joblib_batches(tasks: int) -> Callable[[], None]:
    import joblib
    from joblib._parallel_backends import AutoBatchingMixin

    import lightwork.joblib as lj

    def run() -> None:
        # joblib's own batch durations (0.2-2 s, loky's) instead of lightwork's 20-200 ms
        backend = lj.LightworkBackend
        saved = backend.MIN_IDEAL_BATCH_DURATION, backend.MAX_IDEAL_BATCH_DURATION
        backend.MIN_IDEAL_BATCH_DURATION = AutoBatchingMixin.MIN_IDEAL_BATCH_DURATION
        backend.MAX_IDEAL_BATCH_DURATION = AutoBatchingMixin.MAX_IDEAL_BATCH_DURATION
        try:
            with joblib.parallel_config(backend="lightwork", n_jobs=2):
                out = joblib.Parallel()(joblib.delayed(square)(i) for i in range(tasks))
        finally:
            backend.MIN_IDEAL_BATCH_DURATION, backend.MAX_IDEAL_BATCH_DURATION = saved
        assert len(out) == tasks

    return run


def lightwork_map(tasks: int) -> Callable[[], None]:
    import lightwork

    def run() -> None:
        assert len(lightwork.map(square, range(tasks), max_workers=2)) == tasks

    return run


def main() -> int:
    args = _measure.parse_args(__doc__)
    rounds = args.rounds or (2 if args.quick else 5)
    tasks = TASKS // (10 if args.quick else 1)
    _measure.compile_lightwork()
    import lightwork.joblib  # noqa: F401  (registers "lightwork")

    header = _measure.machine_line() + "\n" + _measure.cpu_check()
    log(header)
    started = time.perf_counter()

    searches: dict[str, Callable[[], None]] = {
        "lightwork": grid_search("lightwork", 2),
        "loky": grid_search("loky", 2),
        "n_jobs=1 (in the caller)": grid_search("loky", 1),
    }
    for run in searches.values():  # warm: start each pool, import scikit-learn in its workers
        run()
    search_times = interleaved(
        {name: _measure.stopwatch(run) for name, run in searches.items()},
        rounds,
        label="GridSearchCV",
    )
    loky = med(search_times["loky"])
    table_a = Table(
        "(a) GridSearchCV(SVC, 6 candidates x 5 folds) on load_digits, n_jobs=2",
        ["backend", "median / min", "x loky"],
    )
    for name, times in search_times.items():
        table_a.add(name, f"{fmt_s(med(times))} / {fmt_s(min(times))}", fmt_x(med(times) / loky))

    tiny: dict[str, Callable[[], None]] = {
        "Parallel, n_jobs=1 (joblib's per-call floor)": tiny_parallel("loky", 1, tasks),
        "Parallel on lightwork (20-200 ms batches, the default)": tiny_parallel(
            "lightwork", 2, tasks
        ),
        "Parallel on lightwork (joblib's 0.2-2 s batches)": tiny_parallel_joblib_batches(tasks),
        "Parallel on loky": tiny_parallel("loky", 2, tasks),
        "lightwork.map": lightwork_map(tasks),
    }
    for run in tiny.values():
        run()
    tiny_times = interleaved(
        {name: _measure.stopwatch(run) for name, run in tiny.items()}, rounds, label="tiny"
    )
    floor = med(tiny_times["Parallel, n_jobs=1 (joblib's per-call floor)"])
    table_b = Table(
        f"(b) {tasks:,} tiny delayed(square)(i) calls, n_jobs=2",
        ["variant", "median / min", "per call", "x joblib's floor"],
    )
    for name, times in tiny_times.items():
        table_b.add(
            name,
            f"{fmt_s(med(times))} / {fmt_s(min(times))}",
            f"{med(times) / tasks * 1e6:.2f} us",
            fmt_x(med(times) / floor),
        )

    ratio = med(search_times["lightwork"]) / loky
    targets = Table("Targets", ["what", "ratio", "goal", "verdict"])
    targets.add("GridSearchCV lightwork / loky", fmt_x(ratio), "<= 1.10x", verdict(ratio <= TARGET))
    table_b.notes.append(f"{rounds} rounds, interleaved, order rotating")
    _measure.print_report(
        header,
        _measure.versions("lightwork", "joblib", "scikit-learn"),
        (table_a, table_b, targets),
        started,
        args.markdown,
    )
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    _measure.put_bench_dir_on_child_path()
    sys.exit(main())
