"""backend="auto": chosen by measuring the job's first tasks, visible with its reason."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

import lightwork
from lightwork._backends._threads import MAX_DEFAULT_THREADS
from lightwork._engine import _auto
from lightwork._engine._auto import choose, threads_for

from tasks import fail_on, square, touch

# Where CPU-bound pure Python goes: subinterpreters where this Python has them (3.14+).
CPU_BOUND = "interpreters" if sys.version_info >= (3, 14) else "processes"


def python_work(n: int) -> int:
    total = 0
    for i in range(20_000):
        total += i * n
    return total


def numpy_work(n: int) -> float:
    import numpy as np

    data = np.random.default_rng(n).random(400_000)
    return float(np.sort(data)[n])


def sleepy(n: int) -> int:
    time.sleep(0.005)
    return n


@pytest.mark.parametrize(
    ("fn", "items", "expected"),
    [
        (python_work, range(300), CPU_BOUND),
        (numpy_work, range(60), "threads"),
        (sleepy, range(100), "threads"),
        (square, range(200_000), "serial"),
    ],
    ids=["pure-python", "numpy", "sleep", "tiny"],
)
def test_auto_picks_the_backend_by_measurement(fn: object, items: range, expected: str) -> None:
    with lightwork.Executor(2, backend="auto") as ex:
        results = list(ex.imap(fn, items))  # type: ignore[arg-type]
        choice = ex.statistics().auto
    assert choice is not None and choice.backend == expected, choice
    assert choice.reason
    assert results == [fn(x) for x in items[:50]] + results[50:]  # type: ignore[operator]


def test_auto_results_match_the_serial_reference() -> None:
    assert lightwork.map(python_work, range(40), backend="auto") == [
        python_work(n) for n in range(40)
    ]


def test_auto_small_input_runs_serially_within_the_probe() -> None:
    with lightwork.Executor(2, backend="auto") as ex:
        assert list(ex.imap(square, range(10))) == [x * x for x in range(10)]
        assert ex.statistics().auto.backend == "serial"
        assert ex.statistics().workers_started == 0


def test_auto_keeps_order_and_errors_of_probed_tasks() -> None:
    with pytest.raises(Exception, match="task got 3"):
        lightwork.map(fail_on, range(100), backend="auto")
    results = lightwork.map(fail_on, range(100), backend="auto", return_exceptions=True)
    assert isinstance(results[3], Exception) and results[:3] == [0, 1, 2]


def test_auto_with_task_timeout_never_chooses_serial() -> None:
    with lightwork.Executor(2, backend="auto") as ex:
        assert list(ex.imap(square, range(5), task_timeout=5)) == [0, 1, 4, 9, 16]
        assert ex.statistics().auto.backend == "threads"


def test_auto_seeded_run_matches_serial() -> None:
    def draw(_: int) -> float:
        return lightwork.random().random()

    assert lightwork.map(draw, range(300), backend="auto", seed=4) == lightwork.map(
        draw, range(300), backend="serial", seed=4
    )


CASES = [
    ({"exhausted": True}, "serial"),
    ({"cpu_share": 0.05, "gil_held": False}, "threads"),
    ({"gil_held": False}, "threads"),
    ({"free_threaded": True}, "threads"),
    ({"seconds_per_task": 1e-7, "remaining": 100_000}, "serial"),
    ({"seconds_per_task": 1e-7, "remaining": 10**9}, "serial"),  # transfer costs more
    ({"seconds_per_task": 2e-6, "remaining": 10**9}, "processes"),
    ({"seconds_per_task": 0.01, "remaining": 3}, "serial"),  # start-up costs more
    ({"seconds_per_task": 0.01, "remaining": 3, "processes_warm": True}, "processes"),
    ({"seconds_per_task": 0.001, "remaining": 20}, "serial"),
    ({"workers": 1}, "serial"),
    ({"exhausted": True, "serial_allowed": False}, "threads"),
    ({"interpreters": True}, "interpreters"),
    ({"interpreters": True, "seconds_per_task": 0.01, "remaining": 5}, "interpreters"),
    ({"seconds_per_task": 0.01, "remaining": 5}, "serial"),  # processes start slower
    ({"interpreters": True, "seconds_per_task": 1e-7, "remaining": 10**9}, "serial"),
    ({"interpreters": True, "gil_held": False}, "threads"),
    ({"interpreters": True, "free_threaded": True}, "threads"),
]


@pytest.mark.parametrize(("changes", "expected"), CASES)
def test_choose_policy(changes: dict[str, object], expected: str) -> None:
    measured: dict[str, object] = {
        "seconds_per_task": 0.01,
        "cpu_share": 1.0,
        "gil_held": True,
        "remaining": 1000,
        "workers": 2,
        "exhausted": False,
    }
    backend, reason = choose(**{**measured, **changes})  # type: ignore[arg-type]
    assert backend == expected, reason


def test_an_unread_executor_map_runs_on_auto(tmp_path: Path) -> None:
    # auto probes the first tasks in the caller at the first read: here, at shutdown.
    paths = [str(tmp_path / f"task-{i}") for i in range(60)]
    with lightwork.Executor(2, backend="auto") as ex:
        ex.map(touch, paths)
        results = ex.map(square, range(50))
    assert len(list(tmp_path.iterdir())) == 60
    assert list(results) == [x * x for x in range(50)]


def nap(_: object) -> None:
    time.sleep(0.02)


def test_auto_sizes_a_thread_pool_for_waiting_work_and_says_so() -> None:
    with lightwork.Executor(backend="auto") as ex:
        list(ex.imap(nap, range(60)))
        choice = ex.statistics().auto
    assert choice.backend == "threads"
    assert choice.workers == threads_for(choice.cpu_share, lightwork.available_cpus())
    assert choice.workers > lightwork.available_cpus()  # sleeping tasks use next to no CPU
    assert f"{choice.workers} threads" in choice.reason


def test_auto_obeys_an_explicit_max_workers_for_threads() -> None:
    with lightwork.Executor(2, backend="auto") as ex:
        list(ex.imap(nap, range(60)))
        assert ex.statistics().auto.workers == 2
        assert ex.statistics().workers_started == 2


def test_threads_for_keeps_the_cpus_busy_within_bounds() -> None:
    assert threads_for(1.0, 4) == 4  # computing: one per CPU
    assert threads_for(0.5, 4) == 8
    assert threads_for(0.0, 4) == MAX_DEFAULT_THREADS  # waiting: the cap
    assert threads_for(0.0, 64) == 64  # never fewer than the CPUs


def test_a_default_thread_pool_grows_while_its_tasks_wait() -> None:
    with lightwork.Executor(backend="threads") as ex:
        for future in [ex.submit(nap, i) for i in range(200)]:
            future.result(timeout=30)
        started = ex.statistics().workers_started
    assert lightwork.available_cpus() < started <= MAX_DEFAULT_THREADS


def test_an_explicit_thread_count_never_grows() -> None:
    with lightwork.Executor(2, backend="threads") as ex:
        list(ex.imap(nap, range(100)))
        assert ex.statistics().workers_started == 2


def test_a_default_thread_pool_grows_for_timed_tasks_too() -> None:
    with lightwork.Executor(backend="threads", task_timeout=30) as ex:
        for future in [ex.submit(nap, i) for i in range(200)]:
            future.result(timeout=30)
        assert ex.statistics().workers_started > lightwork.available_cpus()


@pytest.mark.parametrize(("gil_enabled", "expected"), [(False, "threads"), (True, CPU_BOUND)])
def test_auto_asks_the_interpreter_whether_threads_run_python_in_parallel(
    monkeypatch: pytest.MonkeyPatch, gil_enabled: bool, expected: str
) -> None:
    # No free-threaded build is installable here: the interpreter's answer is simulated.
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: gil_enabled, raising=False)
    with lightwork.Executor(2, backend="auto") as ex:
        assert list(ex.imap(python_work, range(300))) == [python_work(n) for n in range(300)]
        assert ex.statistics().auto.backend == expected


def refuse_subinterpreters(monkeypatch: pytest.MonkeyPatch) -> list[list[object]]:
    """Have auto's subinterpreter check refuse every function; returns the samples it saw."""
    asked: list[list[object]] = []

    def refusal(job: object, sample: list[object]) -> str:
        asked.append(sample)
        return "numpy._core._multiarray_umath cannot load in a subinterpreter"

    monkeypatch.setattr(_auto, "interpreters_refusal", refusal)
    return asked


def test_auto_says_why_work_that_cannot_go_to_subinterpreters_goes_to_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Python 3.14's answers, simulated (tests/test_interpreters.py asks a real one).
    monkeypatch.setattr(_auto, "interpreters_available", lambda: True)
    asked = refuse_subinterpreters(monkeypatch)
    with lightwork.Executor(2, backend="auto") as ex:
        assert list(ex.imap(python_work, range(300))) == [python_work(n) for n in range(300)]
        choice = ex.statistics().auto
    assert choice.backend == "processes"
    assert "not subinterpreters: numpy._core._multiarray_umath cannot load" in choice.reason
    assert asked == [[0]]  # the first probed argument


@pytest.mark.parametrize(
    "option",
    [{"start_method": "forkserver"}, {"max_tasks_per_worker": 1000}, {"native_threads": 1}],
    ids=str,
)
def test_auto_given_options_of_process_pools_does_not_use_subinterpreters(
    monkeypatch: pytest.MonkeyPatch, option: dict[str, object]
) -> None:
    # (They were accepted, then ignored on subinterpreters: no worker was ever recycled.)
    monkeypatch.setattr(_auto, "interpreters_available", lambda: True)
    monkeypatch.setattr(_auto, "interpreters_refusal", lambda *_: None)  # the work could go
    with lightwork.Executor(2, backend="auto", **option) as ex:  # type: ignore[arg-type]
        assert list(ex.imap(python_work, range(300))) == [python_work(n) for n in range(300)]
        choice = ex.statistics().auto
    assert choice.backend == "processes", choice.reason
    name, value = next(iter(option.items()))
    assert f"not subinterpreters: {name}={value!r} given, which apply to processes" in (
        choice.reason
    )


def test_auto_asks_about_subinterpreters_only_when_it_would_use_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_auto, "interpreters_available", lambda: True)
    monkeypatch.setattr(_auto, "interpreters_refusal", lambda *_: pytest.fail("asked"))
    assert lightwork.map(square, range(10), backend="auto") == [x * x for x in range(10)]
    assert lightwork.map(sleepy, range(40), backend="auto") == list(range(40))


def test_submit_after_auto_chose_subinterpreters_sends_what_cannot_go_there_to_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (That choice was made for a map's function; a NumPy function submitted next failed in
    # a subinterpreter, telling the caller of backend="auto" to use backend="processes".)
    from lightwork._core._stats import AutoChoice

    asked = refuse_subinterpreters(monkeypatch)
    with lightwork.Executor(2, backend="auto") as ex:
        ex._auto_choice = AutoChoice("interpreters", "as measured", 0.001, 1.0, True, 63, 2)
        assert ex.submit(square, 3).result(timeout=60) == 9
        assert "processes" in ex._backends and "interpreters" not in ex._backends
    assert asked == [[((3,), {})]]
