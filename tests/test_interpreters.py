"""backend="interpreters": workers are subinterpreters of this process, each with its own GIL.

The behaviour every backend shares runs on it too, through conftest's fixtures (on 3.14).
Here: what is its own, and what it cannot do that processes can. On Python before 3.14 the
backend does not exist, and saying so clearly is the behaviour under test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import lightwork

from tasks import (
    CustomError,
    count_primes,
    fail_on,
    identity,
    python_work_importing_numpy,
    sleep_and_return,
    square,
    uses_numpy,
    which_interpreter,
)

HAS_INTERPRETERS = sys.version_info >= (3, 14)
needs_314 = pytest.mark.skipif(
    not HAS_INTERPRETERS, reason="subinterpreters with their own GIL need Python 3.14"
)
SRC = str(Path(__file__).resolve().parent.parent / "src")


@pytest.mark.skipif(HAS_INTERPRETERS, reason="Python 3.14 has concurrent.interpreters")
@pytest.mark.parametrize(
    "start",
    [
        lambda: lightwork.Executor(2, backend="interpreters"),
        lambda: lightwork.map(square, [1], backend="interpreters"),
        lambda: lightwork.imap(square, [1], backend="interpreters"),
    ],
    ids=["Executor", "map", "imap"],
)
def test_before_python_3_14_the_backend_is_refused_naming_the_version(start: object) -> None:
    with pytest.raises(
        lightwork.InvalidOptionError, match=r"needs Python 3\.14 or newer.*processes"
    ):
        start()  # type: ignore[operator]


@needs_314
def test_workers_are_subinterpreters_of_this_process() -> None:
    with lightwork.Executor(2, backend="interpreters") as ex:
        ex.start()
        seen = set(ex.map(which_interpreter, range(40)))
    assert {pid for pid, _ in seen} == {os.getpid()}
    assert all(interpreter != 0 for _, interpreter in seen)  # 0: the main interpreter


@needs_314
def test_map_imap_starmap_and_submit_agree_with_serial() -> None:
    items = list(range(300))
    with lightwork.Executor(2, backend="interpreters") as ex:
        assert list(ex.imap(square, items, chunksize=7)) == [x * x for x in items]
        assert sorted(ex.imap(square, items, ordered=False)) == [x * x for x in items]
        assert ex.starmap(pow, [(2, 5), (3, 3)]) == [32, 27]
        assert list(ex.map(pow, [2, 3], [5, 3])) == [32, 27]
        assert ex.submit(divmod, 17, 5).result(timeout=30) == (3, 2)
    assert lightwork.map(square, items, backend="interpreters") == [x * x for x in items]


@needs_314
def test_a_task_error_is_its_own_type_with_the_workers_traceback() -> None:
    with pytest.raises(CustomError, match="task got 3") as caught:
        lightwork.map(fail_on, range(10), backend="interpreters", max_workers=2)
    error = caught.value
    assert isinstance(error.__cause__, lightwork.RemoteTraceback)
    assert 'in fail_on\n    raise CustomError(f"task got {x}")' in str(error.__cause__)
    assert "lightwork: raised by task 3" in error.__notes__


@needs_314
def test_a_seeded_run_draws_what_every_other_backend_draws() -> None:
    def draws(backend: str) -> list[float]:
        return lightwork.map(draw, range(50), backend=backend, max_workers=2, seed=11)

    assert draws("interpreters") == draws("serial") == draws("processes")


def draw(_: int) -> float:
    return lightwork.random().random()


@needs_314
def test_task_timeout_fails_the_task_and_abandons_its_worker_as_threads_do() -> None:
    from concurrent import interpreters  # type: ignore[import-not-found,unused-ignore]

    before = len(interpreters.list_all())
    with lightwork.Executor(2, backend="interpreters", retries=0) as ex:
        results = list(
            ex.imap(
                sleep_and_return,
                [0.01, 0.8, 0.01, 0.01],
                task_timeout=0.2,
                chunksize=4,
                return_exceptions=True,
            )
        )
        stats = ex.statistics()
    assert isinstance(results[1], lightwork.TaskTimeoutError)
    assert "could not be stopped" in str(results[1])
    assert [results[0], *results[2:]] == [0.01, 0.01, 0.01]  # the rest of its chunk ran
    assert stats.workers_crashed == 1  # abandoned: it runs on until its task returns,
    deadline = time.monotonic() + 10
    while len(interpreters.list_all()) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(interpreters.list_all()) == before  # then closes its interpreter


@needs_314
def test_a_task_importing_numpy_fails_naming_the_module_and_suggesting_processes() -> None:
    with pytest.raises(lightwork.SubinterpreterImportError) as caught:
        lightwork.map(uses_numpy, [4], backend="interpreters")
    error = caught.value
    assert isinstance(error, ImportError) and isinstance(error, lightwork.LightworkError)
    assert "numpy._core._multiarray_umath" in str(error) and "backend='processes'" in str(error)
    assert error.name == "numpy._core._multiarray_umath"
    assert lightwork.map(uses_numpy, [4], backend="processes") == [2.0]


@needs_314
def test_a_numpy_function_fails_every_task_naming_the_module() -> None:
    import numpy as np

    results = lightwork.map(np.sqrt, [4, 9], backend="interpreters", return_exceptions=True)
    assert all(isinstance(r, lightwork.SubinterpreterImportError) for r in results)
    assert "numpy" in str(results[0])


def _run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, str(Path(__file__).parent)])}
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )


@needs_314
def test_functions_of_the_main_script_run_and_its_guarded_code_does_not(tmp_path: Path) -> None:
    done = _run_script(
        tmp_path,
        """
        import lightwork

        print("imported")

        def cube(x):
            return x ** 3

        if __name__ == "__main__":
            print(lightwork.map(cube, range(5), backend="interpreters", max_workers=2))
        """,
    )
    assert done.returncode == 0, done.stderr
    # Workers ran the script as __mp_main__: its top level (print) again, its guarded part not.
    lines = done.stdout.splitlines()
    assert lines.count("[0, 1, 8, 27, 64]") == 1
    assert lines.count("imported") >= 2


@needs_314
def test_a_task_that_crashes_the_interpreter_takes_the_process_with_it(tmp_path: Path) -> None:
    done = _run_script(
        tmp_path,
        """
        import lightwork
        from tasks import segfault

        if __name__ == "__main__":
            lightwork.map(segfault, range(4), backend="interpreters", max_workers=2)
            print("survived")
        """,
    )
    assert done.returncode == -signal.SIGSEGV
    assert "survived" not in done.stdout


def _spin(seconds: float) -> float:
    """Pure Python busy for ``seconds``: only a stop raised into its thread ends it sooner."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


@needs_314
def test_terminate_stops_the_running_tasks_and_closes_their_subinterpreters() -> None:
    from concurrent import interpreters  # type: ignore[import-not-found,unused-ignore]

    before = len(interpreters.list_all())
    ex = lightwork.Executor(2, backend="interpreters")
    futures = [ex.submit(_spin, 60) for _ in range(3)]
    time.sleep(0.3)  # (both workers are in their task)
    ex.terminate()
    deadline = time.monotonic() + 10
    while len(interpreters.list_all()) > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(interpreters.list_all()) == before  # not 60 s from now
    assert futures[2].cancelled()
    assert ex.submit(square, 3).result() == 9  # still usable
    ex.shutdown()


_SPINNING_AT_EXIT = """
    import sys, time
    import lightwork

    def spin(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
        return seconds

    if __name__ == "__main__":
        if sys.argv[1] == "timeout":  # a task abandoned at its time limit, still running
            print(lightwork.map(spin, [0.01, 60], backend="interpreters", max_workers=2,
                                task_timeout=0.3, return_exceptions=True))
        elif sys.argv[1] == "leave":  # work left to finish at exit, as a thread pool's is
            ex = lightwork.Executor(2, backend="interpreters")
            futures = [ex.submit(spin, 60) for _ in range(4)]
            print("started", flush=True)
        else:
            print("started", flush=True)
            lightwork.map(spin, [60] * 4, backend="interpreters", max_workers=2)
"""


@needs_314
def test_a_program_exits_cleanly_with_an_abandoned_task_still_running(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(_SPINNING_AT_EXIT))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script), "timeout"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    # Python destroyed the running subinterpreter as it exited: a warning, and often SIGSEGV.
    assert done.returncode == 0, done.stderr
    assert "TaskTimeoutError" in done.stdout
    assert "remaining subinterpreters" not in done.stderr
    assert time.monotonic() - started < 30  # its task was stopped, not waited for


@needs_314
@pytest.mark.parametrize("when", ["ctrl-c", "leave"], ids=["in map", "as the exit waits"])
def test_ctrl_c_stops_running_tasks_at_once_and_the_process_exits_cleanly(
    tmp_path: Path, when: str
) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(_SPINNING_AT_EXIT))
    process = subprocess.Popen(
        [sys.executable, str(script), when],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "started\n"
    time.sleep(0.5)  # (its workers are in their tasks)
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    # Not a crash (SIGSEGV), nor a hang (Ctrl-C at exit, as its pool finished its work).
    assert process.returncode == (-signal.SIGINT if when == "ctrl-c" else 0), stderr
    assert "remaining subinterpreters" not in stderr
    assert ("KeyboardInterrupt" in stderr) == (when == "ctrl-c")


@needs_314
def test_shutdown_closes_every_subinterpreter() -> None:
    from concurrent import interpreters  # type: ignore[import-not-found,unused-ignore]

    before = len(interpreters.list_all())
    with lightwork.Executor(2, backend="interpreters") as ex:
        ex.start()
        assert len(interpreters.list_all()) == before + 2
    assert len(interpreters.list_all()) == before


@needs_314
def test_an_unpicklable_argument_fails_only_its_task() -> None:
    items = [1, lambda: None, 3]  # a lambda goes by value: a generator won't
    items[1] = (x for x in ())
    results = lightwork.map(identity, items, backend="interpreters", return_exceptions=True)
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], lightwork.SerializationError)


@needs_314
def test_auto_runs_cpu_bound_python_on_subinterpreters() -> None:
    with lightwork.Executor(2, backend="auto") as ex:
        assert list(ex.imap(count_primes, [3000] * 200)) == [count_primes(3000)] * 200
        choice = ex.statistics().auto
        workers = ex.statistics().workers
    assert choice.backend == "interpreters", choice.reason
    assert "subinterpreters" in choice.reason
    assert {w.pid for w in workers} == {os.getpid()}


@needs_314
def test_auto_sends_a_function_whose_module_needs_numpy_to_processes() -> None:
    from tasks_numpy import python_work_beside_numpy

    with lightwork.Executor(2, backend="auto") as ex:
        results = list(ex.imap(python_work_beside_numpy, range(300)))
        choice = ex.statistics().auto
    assert results == [python_work_beside_numpy(n) for n in range(300)]
    assert choice.backend == "processes"
    assert "not subinterpreters: numpy._core._multiarray_umath cannot load" in choice.reason


@needs_314
def test_auto_sends_a_function_that_imports_numpy_as_it_runs_elsewhere() -> None:
    with lightwork.Executor(2, backend="auto") as ex:
        list(ex.imap(python_work_importing_numpy, range(300)))
        choice = ex.statistics().auto
    assert choice.backend != "interpreters", choice.reason


def test_the_modules_a_function_imports_as_it_runs_are_read_from_its_code() -> None:
    from lightwork._backends._interpreters._backend import imported_by
    from lightwork._core._run import Star

    def nested(x: int) -> int:
        import json

        def inner() -> object:
            import xml.dom

            return xml.dom

        return len(json.dumps(x)) + bool(inner())

    assert imported_by(python_work_importing_numpy) == ("numpy",)
    assert set(imported_by(Star(nested))) == {"json", "xml.dom"}
    assert imported_by(abs) == ()


@needs_314
def test_a_fork_pool_is_refused_while_subinterpreters_exist() -> None:
    with lightwork.Executor(1, backend="interpreters") as ex:
        ex.start()
        forking = lightwork.Executor(1, start_method="fork")
        with forking, pytest.raises(lightwork.InvalidOptionError, match=r"subinterpreter.*fork"):
            forking.submit(square, 3)
    with lightwork.Executor(1, start_method="fork") as forking:  # none left: fork is safe
        assert forking.submit(square, 3).result(timeout=30) == 9


@needs_314
def test_a_worker_whose_guest_stops_breaks_the_pool_instead_of_hanging() -> None:
    with lightwork.Executor(1, backend="interpreters") as ex:
        ex.start()
        worker = ex._backends["interpreters"]._threads[0]  # type: ignore[attr-defined]
        # Fault injection: the guest sees its input close and ends, as if it had failed.
        os.close(worker.to_guest)
        worker.to_guest = os.open(os.devnull, os.O_WRONLY)
        future = ex.submit(square, 3)
        with pytest.raises(lightwork.BrokenWorkerError, match="stopped unexpectedly"):
            future.result(timeout=30)
        with pytest.raises(lightwork.BrokenWorkerError):
            ex.submit(square, 4)
