"""lightwork as joblib's backend, tested with its real client: scikit-learn.

Each test states what a joblib or scikit-learn user gets from ``backend="lightwork"``: the same
scores as loky, a killed worker that costs a retry instead of the search, one Ctrl-C that stops
it, joblib's own options kept, and bounded memory on an endless input.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import psutil
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

import lightwork
import lightwork.joblib
from joblib_tasks import (
    KillsItsWorkerOnce,
    array_flags,
    blas_threads,
    lightwork_inside,
    nested_backend,
    nested_sum,
    payload,
    pid,
)

from tasks import DRIVER_HEADER, wait_gone

GRID = {"n_neighbors": [1, 3, 5, 7]}


@pytest.fixture(scope="module")
def digits() -> tuple[Any, Any]:
    return load_digits(return_X_y=True)


def test_cross_val_score_matches_loky(digits: tuple[Any, Any]) -> None:
    X, y = digits
    with joblib.parallel_config(backend="loky", n_jobs=2):
        expected = cross_val_score(KNeighborsClassifier(), X, y, cv=5)
    with joblib.parallel_config(backend="lightwork", n_jobs=2):
        got = cross_val_score(KNeighborsClassifier(), X, y, cv=5)
    assert got.tolist() == expected.tolist()


def test_grid_search_matches_loky(digits: tuple[Any, Any]) -> None:
    X, y = digits
    with joblib.parallel_config(backend="loky", n_jobs=2):
        expected = GridSearchCV(KNeighborsClassifier(), GRID, cv=3).fit(X, y)
    with joblib.parallel_config(backend="lightwork", n_jobs=2) as config:
        got = GridSearchCV(KNeighborsClassifier(), GRID, cv=3).fit(X, y)
        # the search ran on lightwork's workers, not in the caller
        assert config["backend"].statistics().tasks_done > 0
    assert got.cv_results_["mean_test_score"].tolist() == (
        expected.cv_results_["mean_test_score"].tolist()
    )
    assert got.best_params_ == expected.best_params_


def test_a_worker_killed_mid_search_costs_one_retry(
    digits: tuple[Any, Any], tmp_path: Path
) -> None:
    X, y = digits
    marker = str(tmp_path / "killed")
    model = KillsItsWorkerOnce(marker=marker)
    with joblib.parallel_config(backend="lightwork", n_jobs=2, retries=1) as config:
        search = GridSearchCV(model, GRID, cv=3).fit(X, y)
        stats = config["backend"].statistics()
    assert os.path.exists(marker)  # a worker was killed
    assert stats.workers_crashed == 1
    expected = GridSearchCV(KNeighborsClassifier(), GRID, cv=3, n_jobs=1).fit(X, y)
    assert search.cv_results_["mean_test_score"].tolist() == (
        expected.cv_results_["mean_test_score"].tolist()
    )


CTRL_C_DRIVER = (
    DRIVER_HEADER
    + """
import threading, time
import joblib
import lightwork.joblib
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from joblib_tasks import Slow
from tasks import announce_workers

if __name__ == "__main__":
    X, y = load_digits(return_X_y=True)
    threading.Thread(target=announce_workers, daemon=True).start()
    try:
        with joblib.parallel_config(backend="lightwork", n_jobs=2):
            GridSearchCV(Slow(), {"n_neighbors": [1, 3, 5, 7]}, cv=3).fit(X, y)
    except KeyboardInterrupt:
        print("STOPPED", time.monotonic(), flush=True)
        raise
"""
)


def test_one_ctrl_c_stops_the_search_within_a_second(tmp_path: Path) -> None:
    script = tmp_path / "search.py"
    script.write_text(CTRL_C_DRIVER)
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    pids: list[int] = []
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("PIDS"), line + process.stderr.read()  # type: ignore[union-attr]
        pids = [int(p) for p in line.split()[1:]]
        sent = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = process.communicate(timeout=10)
        ended = time.monotonic()
        assert "STOPPED" in out, err
        assert ended - sent < 1.0, f"the search took {ended - sent:.2f} s to stop"
        assert err.count("KeyboardInterrupt") == 1, err  # one traceback, not one per worker
        assert wait_gone([process.pid, *pids], 1.0) == [], "processes left after Ctrl-C"
    finally:
        process.kill()
        for leftover in pids:
            try:
                os.kill(leftover, signal.SIGKILL)
            except ProcessLookupError:
                pass


# (joblib says so when a generator's reader stops early, as this one does on purpose)
@pytest.mark.filterwarnings("ignore:.*tasks have been successfully executed:UserWarning")
def test_a_generator_over_an_endless_input_stays_in_bounded_memory() -> None:
    pulled = 0

    def endless() -> Any:
        nonlocal pulled
        for i in itertools.count():
            pulled += 1
            yield joblib.delayed(payload)(i)

    me = psutil.Process()
    with joblib.parallel_config(backend="lightwork", n_jobs=2):
        results = joblib.Parallel(return_as="generator", batch_size=256)(endless())
        for _ in itertools.islice(results, 10_000):
            pass
        start = me.memory_info().rss
        for consumed, _ in enumerate(itertools.islice(results, 100_000), 10_001):
            if consumed % 10_000 == 0:
                time.sleep(0.05)  # a slow reader: the workers could do ~20,000 more meanwhile
            # input is read only a few batches ahead of what was consumed
            assert pulled - consumed < 16 * 256
        grown = me.memory_info().rss - start  # 100 MB of results went by
        results.close()
    assert grown < 10 << 20, f"memory grew by {grown >> 20} MiB"


def test_generator_unordered_yields_every_result() -> None:
    with joblib.parallel_config(backend="lightwork", n_jobs=2):
        results = joblib.Parallel(return_as="generator_unordered", batch_size=1)(
            joblib.delayed(abs)(-i) for i in range(50)
        )
        assert sorted(results) == list(range(50))


def test_negative_n_jobs_means_all_cpus_but_some() -> None:
    backend = lightwork.joblib.LightworkBackend()
    cpus = lightwork.available_cpus()
    assert backend.effective_n_jobs(-1) == cpus
    assert backend.effective_n_jobs(-cpus - 5) == 1
    with pytest.raises(ValueError, match="n_jobs == 0"):
        backend.effective_n_jobs(0)


def test_n_jobs_1_runs_in_the_caller_as_joblib_always_does() -> None:
    with joblib.parallel_config(backend="lightwork", n_jobs=1):
        assert joblib.Parallel()(joblib.delayed(pid)(i) for i in range(2)) == [os.getpid()] * 2


def test_timeout_stops_the_call_and_its_workers() -> None:
    with joblib.parallel_config(backend="lightwork", n_jobs=2) as config:
        started = time.monotonic()
        with pytest.raises(multiprocessing.TimeoutError):  # joblib's, as on loky
            joblib.Parallel(timeout=0.5)(joblib.delayed(time.sleep)(30) for _ in range(2))
        assert time.monotonic() - started < 5
        # the pool was stopped, and the next call gets fresh workers
        assert joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(3)) == [0, 1, 2]
        assert config["backend"].statistics().tasks_done >= 1


def test_a_task_exception_reaches_the_caller_as_its_own_type() -> None:
    with (
        joblib.parallel_config(backend="lightwork", n_jobs=2),
        pytest.raises(ZeroDivisionError),
    ):
        joblib.Parallel()(joblib.delayed(divmod)(1, i) for i in [1, 0, 2])


def test_verbose_prints_joblibs_own_progress(capsys: pytest.CaptureFixture[str]) -> None:
    with joblib.parallel_config(backend="lightwork", n_jobs=2):
        joblib.Parallel(verbose=10, batch_size=1)(joblib.delayed(abs)(-i) for i in range(4))
    err = capsys.readouterr().err
    assert "Using backend LightworkBackend with 2 concurrent workers" in err
    assert "Done   4 out of   4" in err


def test_nested_parallel_in_a_worker_runs_on_its_cpu_share() -> None:
    # No oversubscription: the nested call gets threads up to the worker's CPU share (so on a
    # 2-CPU machine with 2 workers, sequential), as under loky.
    with joblib.parallel_config(backend="lightwork", n_jobs=2):
        inner = joblib.Parallel()(joblib.delayed(nested_backend)(i) for i in range(2))
        sums = joblib.Parallel()(joblib.delayed(nested_sum)(n) for n in (3, 4))
    share = max(lightwork.available_cpus() // 2, 1)
    assert inner == [("ThreadingBackend", share)] * 2
    assert sums == [3, 6]


def test_lightwork_runs_inside_a_loky_worker() -> None:
    # A loky worker's default start method is "loky", which lightwork's workers can't set.
    inner = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(lightwork_inside)(n) for n in (3, 4)
    )
    assert inner == [3, 6]


def test_large_arrays_are_mapped_read_only_unless_max_nbytes_is_none() -> None:
    big = np.ones(1 << 18)  # 2 MiB
    with joblib.parallel_config(backend="lightwork", n_jobs=2):
        shared = joblib.Parallel()(joblib.delayed(array_flags)(big) for _ in range(2))
        copied = joblib.Parallel(max_nbytes=None)(
            joblib.delayed(array_flags)(big) for _ in range(2)
        )
    assert shared == [(False, False, float(1 << 18))] * 2  # a read-only mapping, as loky's
    assert [writeable for writeable, _, _ in copied] == [True, True]  # a copy of its own


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries must be an int >= 0"),
        ({"chunksize": 3}, "unknown option 'chunksize'"),
        ({"inner_backend": "loky"}, "inner_backend must be one of"),
        ({"inner_backend": "threads", "start_method": "fork"}, "processes backend only"),
        ({"native_threads": 0}, "native_threads must be a positive int"),
    ],
)
def test_bad_options_fail_at_parallel_config(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        joblib.parallel_config(backend="lightwork", **options)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"temp_folder": "/tmp"}, "temp_folder does not apply"),
        ({"mmap_mode": "r+"}, "mmap_mode='r\\+' is not supported"),
    ],
)
def test_joblib_options_lightwork_cannot_honour_are_refused(
    keywords: dict[str, Any], message: str
) -> None:
    with (
        joblib.parallel_config(backend="lightwork", n_jobs=2),
        pytest.raises(ValueError, match=message),
    ):
        joblib.Parallel(**keywords)(joblib.delayed(abs)(i) for i in range(2))


def test_inner_max_num_threads_sets_the_workers_native_threads() -> None:
    with joblib.parallel_config(backend="lightwork", n_jobs=2, inner_max_num_threads=2) as config:
        threads = joblib.Parallel()(joblib.delayed(blas_threads)(i) for i in range(2))
        assert config["backend"].statistics().native_threads == 2
    assert [set(pools) for pools in threads] == [{2}, {2}]  # NumPy's and SciPy's OpenBLAS


def test_inner_backend_threads_runs_batches_on_threads() -> None:
    with joblib.parallel_config(backend="lightwork", n_jobs=2, inner_backend="threads"):
        assert set(joblib.Parallel()(joblib.delayed(pid)(i) for i in range(4))) == {os.getpid()}


def test_without_joblib_the_import_says_what_to_install() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['joblib'] = None\n"
            "try:\n"
            "    import lightwork.joblib\n"
            "except ImportError as error:\n"
            "    print(type(error).__name__, error)\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == (
        "MissingDependencyError lightwork.joblib needs joblib: pip install 'lightwork[joblib]'"
    )
