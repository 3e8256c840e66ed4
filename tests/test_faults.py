"""Fault tolerance: a failure costs exactly the failed task; nothing hangs, ever.

The fault table, in the style of loky's: each row injects one fault into task 2 of five, and
says what the caller gets for that task; the other tasks' results must be intact and the
executor usable afterwards.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import lightwork
from lightwork._backends._processes._exits import likely_cause

from conftest import MakeExecutor
from tasks import (
    CustomError,
    FailsToUnpickle,
    exit_three,
    fail_until,
    fault_by_kind,
    hang,
    identity,
    kill_once,
    kill_self,
    raise_unpicklable_error,
    return_fails_to_unpickle,
    segfault,
    square,
    unpicklable_result,
)


def at_two(fault: Callable[[int], Any]) -> Callable[[int], Any]:
    def task(x: int) -> Any:
        return fault(x) if x == 2 else x

    return task


def allocate_too_much(x: int) -> int:
    return len(bytearray(8 * 2**30))  # 8 GiB, far above the worker's address-space limit


def limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))


# name: (items, task, executor options, call options, expected type, message pattern)
FAULTS: dict[
    str, tuple[list[Any], Callable[[Any], Any], dict[str, Any], dict[str, Any], type, str]
] = {
    "pickling the task fails": (
        [0, 1, threading.Lock(), 3, 4],
        identity,
        {},
        {},
        lightwork.SerializationError,
        r"arguments of task 2 could not be pickled",
    ),
    "unpickling the task in the worker fails": (
        [0, 1, FailsToUnpickle(), 3, 4],
        identity,
        {},
        {},
        lightwork.SerializationError,
        r"task 2: its arguments could not be unpickled in the worker.*refusing to unpickle",
    ),
    "the task raises": (
        list(range(5)),
        at_two(lambda x: (_ for _ in ()).throw(CustomError("boom"))),
        {},
        {},
        CustomError,
        r"boom",
    ),
    "the exception won't unpickle": (
        list(range(5)),
        at_two(raise_unpicklable_error),
        {},
        {},
        lightwork.SerializationError,
        r"raised tasks.NeedsTwoArgs: 1-2, and that exception could not be sent back",
    ),
    "pickling the result fails": (
        list(range(5)),
        at_two(unpicklable_result),
        {},
        {},
        lightwork.SerializationError,
        r"result of type lock could not be pickled",
    ),
    "unpickling the result in the parent fails": (
        list(range(5)),
        at_two(return_fails_to_unpickle),
        {},
        {},
        lightwork.SerializationError,
        r"task 2: its result could not be unpickled in the parent",
    ),
    "SIGKILL": (
        list(range(5)),
        at_two(kill_self),
        {},
        {"retries": 0},
        lightwork.WorkerCrashedError,
        r"worker \d+ died \(killed by SIGKILL\) while running task 2",
    ),
    "os._exit(3)": (
        list(range(5)),
        at_two(exit_three),
        {},
        {"retries": 0},
        lightwork.WorkerCrashedError,
        r"died \(exit code 3\) while running task 2",
    ),
    "segfault": (
        list(range(5)),
        at_two(segfault),
        {},
        {"retries": 0},
        lightwork.WorkerCrashedError,
        r"killed by SIGSEGV\) while running task 2.*segmentation fault",
    ),
    "endless task under task_timeout": (
        list(range(5)),
        at_two(hang),
        {},
        {"retries": 0, "task_timeout": 0.5},
        lightwork.TaskTimeoutError,
        r"task 2 ran longer than task_timeout=0.5s",
    ),
    "memory hog": (
        list(range(5)),
        at_two(allocate_too_much),
        {"initializer": limit_memory},
        {},
        MemoryError,
        r"",
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_costs_only_its_task(make_process_executor: MakeExecutor, fault: str) -> None:
    items, task, executor_options, call_options, expected, pattern = FAULTS[fault]
    with make_process_executor(**executor_options) as ex:
        results = list(ex.imap(task, items, chunksize=5, return_exceptions=True, **call_options))
        assert [r for i, r in enumerate(results) if i != 2] == [0, 1, 3, 4]
        assert isinstance(results[2], expected), results[2]
        assert re.search(pattern, str(results[2]), re.S), str(results[2])
        assert "lightwork: raised by task 2" in getattr(results[2], "__notes__", [])
        # The executor stays usable, and raises the same error without return_exceptions.
        assert ex.submit(square, 3).result(timeout=30) == 9
        with pytest.raises(expected):
            list(ex.imap(task, items, chunksize=5, **call_options))


def test_killed_worker_chunk_is_rerun_without_charging_a_retry(
    make_process_executor: MakeExecutor, tmp_path: Path
) -> None:
    # A chunk of several tasks runs with no per-task bookkeeping, so the supervisor does not
    # know which of them the worker died in: it re-runs the chunk naming each task, charging
    # none.
    marker = str(tmp_path / "killed")
    with make_process_executor() as ex:
        items = [(x, marker if x == 5 else str(tmp_path / "never")) for x in range(10)]
        for x, path in items:
            if x != 5:
                Path(path).touch()
        assert list(ex.imap(kill_once, items, chunksize=3)) == [x * 10 for x in range(10)]
        stats = ex.statistics()
    assert stats.tasks_retried == 0  # task 5 died once, in a chunk: no retry of its own used
    assert stats.workers_crashed == 1
    assert stats.workers_started == 3  # two, and one replacement
    assert stats.chunks_done == 4  # 0-2, 6-8, 9, and 3-5 once (its first run died)


def test_killed_worker_single_task_is_charged_one_retry(
    make_process_executor: MakeExecutor, tmp_path: Path
) -> None:
    marker = str(tmp_path / "killed")
    with make_process_executor() as ex:
        assert ex.submit(kill_once, (4, marker)).result(timeout=60) == 40
        stats = ex.statistics()
    assert stats.tasks_retried == 1 and stats.workers_crashed == 1


def test_deterministic_crash_in_a_chunk_is_found_and_charged(
    make_process_executor: MakeExecutor,
) -> None:
    with make_process_executor(retries=1) as ex:
        results = list(ex.imap(at_two(kill_self), range(6), chunksize=6, return_exceptions=True))
        stats = ex.statistics()
    assert results[:2] == [0, 1] and results[3:] == [3, 4, 5]
    assert isinstance(results[2], lightwork.WorkerCrashedError)
    assert "while running task 2" in str(results[2])
    assert "after 2 attempts, and 1 more in its chunk before it was identified" in str(results[2])
    # Once in the chunk (uncharged), then alone: the first try and the one retry.
    assert stats.workers_crashed == 3 and stats.tasks_retried == 1


def test_with_no_retries_a_killed_task_is_not_run_again(
    make_process_executor: MakeExecutor, tmp_path: Path
) -> None:
    # retries=0 promises no second run: the worker names each task as it starts it, so a
    # death is charged to the task that died, and only the others are re-run.
    marker = str(tmp_path / "killed")
    items = [(x, marker if x == 4 else os.devnull) for x in range(8)]
    with make_process_executor(retries=0) as ex:
        results = list(ex.imap(kill_once, items, chunksize=8, return_exceptions=True))
    assert results[:4] == [0, 10, 20, 30] and results[5:] == [50, 60, 70]
    assert isinstance(results[4], lightwork.WorkerCrashedError)
    assert "while running task 4" in str(results[4])


def test_crash_out_of_retries_names_task_pid_signal_and_attempts(
    make_process_executor: MakeExecutor,
) -> None:
    with make_process_executor(retries=2) as ex:
        future = ex.submit(kill_self, 1)
        with pytest.raises(lightwork.WorkerCrashedError) as info:
            future.result(timeout=60)
        assert re.search(
            r"worker \d+ died \(killed by SIGKILL\) while running task 0", str(info.value)
        )
        assert "after 3 attempts" in str(info.value)
        assert ex.statistics().tasks_retried == 2


def test_crash_in_a_chunk_keeps_earlier_and_later_results(
    make_process_executor: MakeExecutor,
) -> None:
    with make_process_executor() as ex:
        results = list(
            ex.imap(at_two(kill_self), range(40), chunksize=40, retries=0, return_exceptions=True)
        )
    assert results[:2] == [0, 1] and results[3:] == list(range(3, 40))
    assert isinstance(results[2], lightwork.WorkerCrashedError)


def test_sigkill_with_high_memory_is_blamed_on_the_oom_killer() -> None:
    import signal

    assert "out of memory?" in likely_cause(-signal.SIGKILL, rss=10**15)
    assert "out of memory?" not in likely_cause(-signal.SIGKILL, rss=10**6)


def test_timeout_inside_a_chunk_stops_only_that_task(make_parallel_executor: MakeExecutor) -> None:
    started = time.monotonic()
    with make_parallel_executor() as ex:
        results = list(
            ex.imap(
                at_two(hang),
                range(6),
                chunksize=6,
                task_timeout=0.3,
                retries=1,
                return_exceptions=True,
            )
        )
        assert ex.submit(square, 4).result(timeout=30) == 16
        if ex.backend == "threads":
            ex.terminate()  # the abandoned threads sleep on; don't wait for them
    assert results[:2] == [0, 1] and results[3:] == [3, 4, 5]
    assert isinstance(results[2], lightwork.TaskTimeoutError)
    assert isinstance(results[2], TimeoutError)
    assert time.monotonic() - started < 10  # two 0.3 s attempts, not an hour


def test_stuck_thread_does_not_block_interpreter_exit(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "stuck.py"
    script.write_text(
        "import time, lightwork\n"
        "def stuck(x):\n    time.sleep(3600)\n"
        "print(lightwork.map(stuck, [1], backend='threads', task_timeout=0.2, retries=0,"
        " return_exceptions=True))\n"
    )
    started = time.monotonic()
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert "TaskTimeoutError" in out.stdout, out.stderr
    assert time.monotonic() - started < 15


def test_retry_on_retries_named_exceptions(make_executor: MakeExecutor, tmp_path: Path) -> None:
    with make_executor() as ex:
        counter = str(tmp_path / "calls")
        assert ex.submit(lambda: None).result() is None
        results = list(ex.imap(fail_until, [(7, counter, 2)], retries=2, retry_on=CustomError))
        assert results == [7]
        other = str(tmp_path / "other")
        with pytest.raises(CustomError):  # not named: not retried
            list(ex.imap(fail_until, [(7, other, 1)], retries=2))


def test_retry_on_gives_up_after_retries(make_executor: MakeExecutor, tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    with make_executor() as ex, pytest.raises(CustomError, match="call 3"):
        list(ex.imap(fail_until, [(7, str(counter), 5)], retries=2, retry_on=(CustomError,)))
    assert counter.read_text() == "..."


def broken_initializer() -> None:
    raise CustomError("cannot initialize")


def exiting_initializer() -> None:
    os._exit(7)


def test_failing_initializer_breaks_the_executor_promptly(make_executor: MakeExecutor) -> None:
    started = time.monotonic()
    with make_executor(initializer=broken_initializer) as ex:
        with pytest.raises(lightwork.WorkerInitializationError) as info:
            list(ex.imap(square, range(10)))
        assert "cannot initialize" in str(info.value.__cause__)
        with pytest.raises(lightwork.WorkerInitializationError):
            ex.submit(square, 1).result(timeout=10)
        assert ex.statistics().workers_started <= 2  # no respawning loop
    assert time.monotonic() - started < 20


def test_workers_that_die_at_start_up_are_not_respawned_forever(
    make_process_executor: MakeExecutor,
) -> None:
    with make_process_executor(initializer=exiting_initializer) as ex:
        with pytest.raises(lightwork.WorkerCrashedError, match="died before running any task"):
            ex.submit(square, 1).result(timeout=60)
        assert ex.statistics().workers_started <= 5


def test_executor_map_raises_crash_errors_like_task_errors(
    make_process_executor: MakeExecutor,
) -> None:
    with make_process_executor(retries=0) as ex, pytest.raises(concurrent_broken()):
        list(ex.map(at_two(kill_self), range(4)))


def concurrent_broken() -> type[BaseException]:
    import concurrent.futures

    return concurrent.futures.BrokenExecutor


def test_a_main_module_without_a_main_guard_fails_fast_and_says_why(tmp_path: Path) -> None:
    # Under forkserver (the default) and spawn, each worker imports the main module; if that
    # starts a pool as it is imported, workers must not try to start workers of their own.
    script = tmp_path / "no_guard.py"
    script.write_text(
        "import lightwork\n"
        "def square(x):\n    return x * x\n"
        "print(lightwork.map(square, range(4), max_workers=2))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]  # the error, naming no task: none ran
    # (ProcessPoolCrashedError: a WorkerCrashedError that is also a BrokenProcessPool)
    assert last.startswith("lightwork._core._errors.ProcessPoolCrashedError") and "__main__" in last
    assert "worker is importing your main module" in done.stderr  # each worker's own reason


def test_a_function_the_workers_cannot_import_fails_each_task_clearly(
    make_process_executor: MakeExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The function goes by reference (its module is importable here), but the module is gone
    # by the time the workers look for it.
    (tmp_path / "vanishing.py").write_text("def twice(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import vanishing  # type: ignore[import-not-found]

    (tmp_path / "vanishing.py").unlink()  # imported here already: only the workers miss it
    with make_process_executor() as ex:
        results = list(ex.imap(vanishing.twice, range(3), return_exceptions=True))
        assert ex.submit(abs, -3).result(timeout=30) == 3  # the executor stays usable
    for index, result in enumerate(results):
        assert isinstance(result, lightwork.SerializationError)
        assert re.search(
            rf"task {index}: the function could not be unpickled in the worker: .*vanishing",
            str(result),
            re.S,
        ), str(result)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_faults_in_random_chunks_keep_every_result_in_place(
    make_process_executor: MakeExecutor, tmp_path: Path, seed: int
) -> None:
    rnd = random.Random(seed)
    for trial in range(4):
        n = rnd.randint(1, 200)
        kinds = ["ok"] * n
        for _ in range(rnd.randint(1, 4)):
            kinds[rnd.randrange(n)] = rnd.choice(["raise", "stop", "kill_once", "kill_always"])
        items = [(i, k, str(tmp_path / f"{trial}-{i}")) for i, k in enumerate(kinds)]
        retries = rnd.choice([0, 1, 2])
        chunksize = rnd.choice([None, 1, 7, 1000])
        with make_process_executor(retries=retries) as ex:
            out = list(ex.imap(fault_by_kind, items, chunksize=chunksize, return_exceptions=True))
        case = f"trial {trial}: retries={retries} chunksize={chunksize}"
        assert len(out) == n, case
        for i, (kind, result) in enumerate(zip(kinds, out, strict=True)):
            expected: Any = {
                "raise": CustomError,
                "stop": StopIteration,
                "kill_always": lightwork.WorkerCrashedError,
            }.get(kind)
            if kind == "kill_once" and retries == 0:
                expected = lightwork.WorkerCrashedError
            if expected is None:
                assert result == 2 * i, (case, i, kind, result)
            else:
                assert isinstance(result, expected), (case, i, kind, result)
