"""Native thread pools (OpenBLAS, MKL, OpenMP) in process workers: each worker gets its share
of the CPUs, whether NumPy was loaded before the worker started (fork, or the fork server's
preload: threadpoolctl) or after (spawn: the environment variables)."""

from __future__ import annotations

from typing import Any

import numpy  # noqa: F401  (loaded in the parent: the fork server preloads it)
import pytest

import lightwork
from joblib_tasks import native_limits

SHARE = max(lightwork.available_cpus() // 2, 1)


@pytest.fixture(autouse=True)
def no_limit_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("start_method", ["forkserver", "spawn", "fork"])
def test_each_worker_gets_its_share_of_the_cpus_by_default(start_method: str) -> None:
    with lightwork.Executor(2, start_method=start_method) as ex:
        omp, pools = ex.submit(native_limits, 0).result()
        assert ex.statistics().native_threads == SHARE
    assert omp == str(SHARE)
    assert pools and set(pools) == {SHARE}


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_native_threads_sets_the_limit(start_method: str) -> None:
    # (the default for one worker would be every CPU; OpenBLAS caps a limit at the cores)
    with lightwork.Executor(1, start_method=start_method, native_threads=1) as ex:
        omp, pools = ex.submit(native_limits, 0).result()
        assert ex.statistics().native_threads == 1
    assert (omp, set(pools)) == ("1", {1})


def test_a_limit_the_environment_sets_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with lightwork.Executor(2, start_method="spawn") as ex:
        omp, _ = ex.submit(native_limits, 0).result()
        assert ex.statistics().native_threads is None
    assert omp == "2"


def test_statistics_say_none_where_there_are_no_process_workers() -> None:
    with lightwork.Executor(2, backend="threads") as ex:
        assert ex.statistics().native_threads is None


def test_statistics_say_none_where_auto_chose_no_process_workers() -> None:
    with lightwork.Executor(2, backend="auto") as ex:
        assert list(ex.imap(abs, [-1, -2])) == [1, 2]  # (too short for a pool: serial)
        assert ex.statistics().auto is not None
        assert ex.statistics().native_threads is None


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "2"])
def test_a_bad_native_threads_is_refused(value: Any) -> None:
    with pytest.raises(lightwork.InvalidOptionError, match="native_threads must be a positive"):
        lightwork.Executor(2, native_threads=value)


def test_native_threads_is_for_process_workers_only() -> None:
    # (the message says which of the process pools' options was given)
    with pytest.raises(lightwork.InvalidOptionError, match="processes backend only") as info:
        lightwork.Executor(2, backend="threads", native_threads=1)
    assert str(info.value).startswith("native_threads=1 given with backend='threads': ")


def test_map_takes_native_threads_for_its_warm_pool() -> None:
    # (one worker's default would be every CPU)
    results = lightwork.map(native_limits, range(2), max_workers=1, native_threads=1)
    assert [omp for omp, _ in results] == ["1", "1"]


@pytest.mark.parametrize(
    ("option", "value", "warm"),
    [("native_threads", True, 1), ("native_threads", 1.0, 1), ("max_workers", True, 1)],
)
def test_a_bad_value_is_refused_even_with_the_equal_ones_pool_warm(
    option: str, value: Any, warm: int
) -> None:
    # (True == 1 == 1.0: as a warm pool's key, they found the pool made for 1)
    assert lightwork.map(abs, [-1], backend="processes", **{option: warm}) == [1]
    with pytest.raises(lightwork.InvalidOptionError, match=f"{option} must be a positive"):
        lightwork.map(abs, [-1], backend="processes", **{option: value})
