"""Stopping: one Ctrl-C stops everything, a dead parent takes its workers along, and shutdown
leaves no process, thread, pipe or shared-memory segment behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

import lightwork

from conftest import MakeExecutor
from tasks import DRIVER_HEADER, square, wait_gone

DRIVER = (
    DRIVER_HEADER
    + """
import os, signal, sys, threading, time
import lightwork
from tasks import announce_workers

def slow(x):
    time.sleep(60)
    return x

def main(mode):
    threading.Thread(target=announce_workers, daemon=True).start()
    try:
        if mode == "map":
            lightwork.map(slow, range(8), max_workers=2)
        elif mode == "imap":
            for _ in lightwork.imap(slow, range(8), max_workers=2):
                pass
        elif mode == "executor":
            with lightwork.Executor(2) as ex:
                futures = [ex.submit(slow, i) for i in range(4)]
                [f.result() for f in futures]
        elif mode == "starmap":
            lightwork.starmap(slow, [(i,) for i in range(8)], max_workers=2)
    except KeyboardInterrupt:
        print("STOPPED", time.monotonic(), flush=True)
        raise

if __name__ == "__main__":
    main(sys.argv[1])
"""
)


def _start_driver(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], list[int]]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    process = subprocess.Popen(
        [sys.executable, str(script), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal would give it
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("PIDS"), line + process.stderr.read()  # type: ignore[union-attr]
    return process, [int(p) for p in line.split()[1:]]


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("mode", ["map", "imap", "starmap", "executor"])
def test_one_ctrl_c_stops_everything_within_a_second(tmp_path: Path, mode: str) -> None:
    process, pids = _start_driver(tmp_path, mode)
    try:
        sent = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = process.communicate(timeout=10)
        stopped = float(out.split("STOPPED")[1].split()[0])
        assert stopped - sent < 1.0, "KeyboardInterrupt reached the caller late"
        assert err.count("KeyboardInterrupt") == 1, err  # no traceback per worker
        assert process.returncode != 0
        assert wait_gone(pids, 2.0) == [], "processes left behind after Ctrl-C"
    finally:
        process.kill()
        _kill_all(pids)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_workers_exit_when_the_parent_is_killed(tmp_path: Path, signum: int) -> None:
    process, pids = _start_driver(tmp_path, "map")
    try:
        process.send_signal(signum)
        process.wait(timeout=10)
        assert wait_gone(pids, 2.5) == [], "orphaned workers kept running"
    finally:
        process.kill()
        _kill_all(pids)


def _lightwork_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lightwork")]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_shutdown_leaves_nothing_behind(make_executor: MakeExecutor) -> None:
    ex = make_executor()
    list(ex.imap(square, range(10)))  # warm-up: start-up helpers such as the forkserver
    ex.shutdown()
    me = psutil.Process()
    children, threads, fds = set(me.children(recursive=True)), _lightwork_threads(), _open_fds()
    shm = set(os.listdir("/dev/shm"))

    ex = make_executor()
    assert list(ex.imap(square, range(1000))) == [x * x for x in range(1000)]
    assert ex.submit(square, 3).result() == 9
    ex.shutdown(wait=True)

    assert set(me.children(recursive=True)) <= children
    assert _lightwork_threads() == threads
    assert _open_fds() <= fds
    assert set(os.listdir("/dev/shm")) <= shm


@pytest.mark.parametrize("start_method", ["fork", "forkserver", "spawn"])
def test_a_program_that_leaves_pools_open_exits_at_once(start_method: str) -> None:
    # Interpreter exit stops the warm pool and an executor never shut down, before
    # multiprocessing's own exit handler joins (forever) every child still running.
    code = (
        "import lightwork\n"
        "print(lightwork.map(abs, [-1, -2], max_workers=2))\n"
        f"ex = lightwork.Executor(2, start_method={start_method!r})\n"
        "print(ex.submit(abs, -3).result())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert (done.returncode, done.stdout.split()) == (0, ["[1,", "2]", "3"]), done.stderr


def test_killed_workers_are_reaped_not_left_as_zombies(make_process_executor: MakeExecutor) -> None:
    from tasks import kill_self

    with make_process_executor(retries=0) as ex:
        list(ex.imap(kill_self, range(3), chunksize=1, return_exceptions=True))
        zombies = [
            p
            for p in psutil.Process().children(recursive=True)
            if p.status() == psutil.STATUS_ZOMBIE
        ]
        assert zombies == []


def test_warm_pool_is_reused_between_calls() -> None:
    first = set(lightwork.map(_pid, range(20), chunksize=1))
    second = set(lightwork.map(_pid, range(20), chunksize=1))
    assert first == second
    assert os.getpid() not in first


def test_warm_pool_is_rebuilt_when_options_change() -> None:
    two = set(lightwork.map(_pid, range(20), max_workers=2, chunksize=1))
    one = set(lightwork.map(_pid, range(20), max_workers=1, chunksize=1))
    assert len(one) == 1 and not one & two


def _pid(_: object) -> int:
    return os.getpid()


def test_warm_pool_survives_ctrl_c_style_termination() -> None:
    from lightwork._engine._api import _warm

    lightwork.map(_pid, range(4), max_workers=2)
    for executor in _warm.values():
        executor.terminate()
    assert lightwork.map(square, range(4), max_workers=2) == [0, 1, 4, 9]


GIL_HOG = """
import sys
import psutil
import lightwork

def hog(i):
    pow(7, 30_000_000)  # one C call that holds the GIL for many seconds
    return i

if __name__ == "__main__":
    with lightwork.Executor(2, start_method=sys.argv[1]) as ex:
        ex.start()
        pids = [p.pid for p in psutil.Process().children(recursive=True)]
        results = ex.imap(hog, range(4), chunksize=1)
        print("PIDS", " ".join(map(str, pids)), flush=True)
        list(results)
"""


@pytest.mark.parametrize("start_method", ["forkserver", "spawn", "fork"])
def test_workers_in_a_long_c_call_exit_when_the_parent_is_killed(
    tmp_path: Path, start_method: str
) -> None:
    script = tmp_path / "hog.py"
    script.write_text(GIL_HOG)
    process = subprocess.Popen(
        [sys.executable, str(script), start_method],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    pids = [int(p) for p in line.split()[1:]]
    try:
        assert pids, process.stderr.read()  # type: ignore[union-attr]
        time.sleep(0.5)  # the tasks are inside pow() now
        process.kill()
        process.wait(timeout=10)
        assert wait_gone(pids, 2.0) == [], "workers ran on inside their C call"
    finally:
        _kill_all(pids)


def test_ctrl_c_in_the_loop_body_does_not_wait_for_sent_work(tmp_path: Path) -> None:
    script = tmp_path / "loop.py"
    script.write_text(
        "import time, lightwork\n"
        "def slow(i):\n    time.sleep(30)\n    return i\n"
        "if __name__ == '__main__':\n"
        "    for r in lightwork.imap(slow, range(8), max_workers=2, chunksize=1):\n"
        "        pass\n"
    )
    process = subprocess.Popen(
        [sys.executable, str(script)], stderr=subprocess.PIPE, start_new_session=True
    )
    time.sleep(2.0)
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=15)
    assert time.monotonic() - sent < 3.0


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_multiprocessing_child_that_used_a_pool_exits_when_its_target_returns(
    method: str,
) -> None:
    # Its exit joins its non-daemon children and runs no atexit handler: our pool's workers
    # kept it alive for ever (found as a loky worker that had run lightwork hanging pytest).
    import multiprocessing

    from tasks import map_in_a_child

    # A warm pool (and fork server) here first: a forked child inherited them and waited on
    # the parent's pool for ever, or failed to start workers (the server was not its child).
    assert lightwork.map(abs, [-3], max_workers=2) == [3]
    child = multiprocessing.get_context(method).Process(target=map_in_a_child)
    child.start()
    child.join(30)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the child still runs after its target returned"
    assert child.exitcode == 0
