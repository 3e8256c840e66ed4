"""The drop-in contract: what ``ProcessPoolExecutor`` and ``ThreadPoolExecutor`` users rely on.

CPython's own ``test_concurrent_futures`` runs against lightwork with ``make cpython-suite``;
these are the behaviours it found missing, each kept here as a test of its own.
"""

from __future__ import annotations

import gc
import multiprocessing
import subprocess
import sys
import threading
import time
import weakref
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures.thread import BrokenThreadPool

import pytest

import lightwork

from conftest import MakeExecutor
from tasks import (
    ExitsWhenPickled,
    ExitsWhenUnpickled,
    identity,
    keep_primitives,
    kill_self,
    make,
    put_on_queue,
    raise_base,
    sleep_then,
    slow_broken_initializer,
    square,
)


@pytest.mark.parametrize("kind", [SystemExit, GeneratorExit])
def test_a_task_raising_a_base_exception_fails_alone(
    make_executor: MakeExecutor, kind: type[BaseException]
) -> None:
    with make_executor() as ex:
        future = ex.submit(raise_base, kind)
        with pytest.raises(kind, match="from the task"):
            future.result(timeout=30)
        assert ex.submit(square, 3).result(timeout=30) == 9  # no worker lost
        assert ex.statistics().tasks_retried == 0 and ex.statistics().workers_crashed == 0


def test_sys_exit_in_a_task_is_its_outcome(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        with pytest.raises(SystemExit) as info:
            ex.submit(sys.exit, 3).result(timeout=30)
        assert info.value.code == 3
        assert list(ex.map(square, range(4))) == [0, 1, 4, 9]


def test_a_task_raising_keyboard_interrupt_in_a_worker_is_its_outcome(
    make_parallel_executor: MakeExecutor,
) -> None:
    # Workers never get a real Ctrl-C (processes ignore SIGINT, threads never see it).
    with make_parallel_executor() as ex:
        with pytest.raises(KeyboardInterrupt):
            ex.submit(raise_base, KeyboardInterrupt).result(timeout=30)
        assert ex.submit(square, 2).result(timeout=30) == 4


def test_on_serial_keyboard_interrupt_stops_the_call() -> None:
    # The task runs in the caller's own thread: Ctrl-C there must stop everything.
    with lightwork.Executor(backend="serial") as ex, pytest.raises(KeyboardInterrupt):
        ex.submit(raise_base, KeyboardInterrupt)


def test_a_result_that_exits_when_unpickled_fails_alone(
    make_process_executor: MakeExecutor,
) -> None:
    with make_process_executor() as ex:
        with pytest.raises(lightwork.SerializationError, match="SystemExit"):
            ex.submit(make, ExitsWhenUnpickled).result(timeout=30)
        assert ex.submit(square, 5).result(timeout=30) == 25  # the supervisor lives on


def test_a_result_that_exits_when_pickled_fails_with_system_exit(
    make_process_executor: MakeExecutor,
) -> None:
    with make_process_executor() as ex:
        with pytest.raises(SystemExit):
            ex.submit(make, ExitsWhenPickled).result(timeout=30)
        assert ex.submit(square, 5).result(timeout=30) == 25
        assert ex.statistics().workers_crashed == 0


def test_a_crash_is_a_broken_process_pool(make_process_executor: MakeExecutor) -> None:
    with make_process_executor(retries=0) as ex:
        with pytest.raises(BrokenProcessPool) as info:
            ex.submit(kill_self, 1).result(timeout=30)
        assert isinstance(info.value, lightwork.WorkerCrashedError)
        assert "died (killed by SIGKILL) while running task 0" in str(info.value)


@pytest.mark.parametrize(
    ("backend", "stdlib_error"),
    [("processes", BrokenProcessPool), ("threads", BrokenThreadPool)],
)
def test_a_failing_initializer_breaks_the_pool_as_the_standard_library_does(
    backend: str, stdlib_error: type[BaseException]
) -> None:
    with lightwork.Executor(2, backend=backend, initializer=slow_broken_initializer) as ex:
        pending = [ex.submit(square, i) for i in range(4)]  # queued before it fails
        for future in pending:
            with pytest.raises(stdlib_error) as info:
                future.result(timeout=30)
            assert isinstance(info.value, lightwork.WorkerInitializationError)
            assert "initializer raised" in str(info.value)
            assert not getattr(info.value, "__notes__", [])  # no task is to blame
        with pytest.raises(stdlib_error):  # from now on, at once
            ex.submit(square, 1)
        with pytest.raises(lightwork.WorkerInitializationError):
            list(ex.map(square, range(3)))


@pytest.mark.parametrize("start_method", ["fork", "forkserver", "spawn"])
def test_initargs_may_hold_what_only_travels_by_inheritance(start_method: str) -> None:
    context = multiprocessing.get_context(start_method)
    queue, counter = context.Queue(), context.Value("i", 0)
    lock, event = context.Lock(), context.Event()
    event.set()
    with lightwork.Executor(
        2,
        start_method=start_method,
        initializer=keep_primitives,
        initargs=(queue, counter, lock, event),
    ) as ex:
        assert list(ex.map(put_on_queue, range(6))) == [1] * 6
    assert sorted(queue.get(timeout=10) for _ in range(6)) == list(range(6))
    assert counter.value == 6


def test_initargs_that_cannot_reach_a_worker_break_the_pool_clearly() -> None:
    unpicklable = (threading.Lock(),)
    with (
        lightwork.Executor(1, start_method="spawn", initializer=print, initargs=unpicklable) as ex,
        pytest.raises(lightwork.WorkerInitializationError, match="could not be started"),
    ):
        ex.submit(square, 2).result(timeout=30)


def test_map_accepts_a_zero_timeout(make_parallel_executor: MakeExecutor) -> None:
    with make_parallel_executor() as ex:
        results = ex.map(sleep_then, [(1.0, 1)], timeout=0)
        with pytest.raises(TimeoutError):
            next(results)
        results.close()


class Tracked:
    """An object whose life the tests watch."""


def test_map_does_not_keep_the_results_it_yielded(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        for chunksize in (1, 4):
            for result in ex.map(make, [Tracked] * 8, chunksize=chunksize):
                watched = weakref.ref(result)
                del result
                gc.collect()
                assert watched() is None


def test_a_long_imap_keeps_only_the_chunk_it_is_reading(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        watched = []
        for result in ex.imap(make, [Tracked] * 1000, chunksize=50):
            watched.append(weakref.ref(result))
            del result
            if len(watched) % 100 == 0:
                gc.collect()
                alive = sum(w() is not None for w in watched)
                assert alive <= 2 * 50  # this chunk and at most one more: what was read is gone
        assert len(watched) == 1000


def test_an_idle_thread_keeps_nothing_of_its_last_task() -> None:
    with lightwork.Executor(1, backend="threads") as ex:
        argument = Tracked()
        watched = weakref.ref(argument)
        result = ex.submit(identity, argument)
        assert result.result(timeout=30) is argument
        del argument, result
        deadline = time.monotonic() + 10
        while watched() is not None and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.01)
        assert watched() is None


def run_script(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_work_given_to_a_pool_finishes_at_interpreter_exit(backend: str) -> None:
    done = run_script(
        "import os, time, lightwork\n"
        f"ex = lightwork.Executor(2, backend={backend!r})\n"
        "def slow(x):\n"
        "    time.sleep(0.2)\n"
        "    os.write(1, f'done {x}\\n'.encode())  # one write: lines from workers don't mix\n"
        "for i in range(6):\n"
        "    ex.submit(slow, i)\n"
    )
    assert sorted(done.stdout.split("\n")[:-1]) == [f"done {i}" for i in range(6)]


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_submit_after_interpreter_shutdown_is_refused(backend: str) -> None:
    done = run_script(
        "import atexit, lightwork\n"
        "@atexit.register\n"
        "def run_last():\n"
        "    try:\n"
        "        ex.submit(id, None)\n"
        "    except RuntimeError as error:\n"
        "        print('refused:', error)\n"
        f"ex = lightwork.Executor(2, backend={backend!r})\n"
        "ex.submit(id, 42).result()\n"
    )
    assert done.stdout == "refused: cannot schedule new futures after interpreter shutdown\n"


def test_a_thread_abandoned_by_task_timeout_does_not_block_exit() -> None:
    started = time.monotonic()
    done = run_script(
        "import time, lightwork\n"
        "ex = lightwork.Executor(1, backend='threads', retries=0, task_timeout=0.2)\n"
        "f = ex.submit(time.sleep, 3600)\n"
        "g = ex.submit(abs, -1)\n"
        "print(type(f.exception(timeout=30)).__name__, g.result(timeout=30))\n"
    )
    assert done.stdout == "TaskTimeoutError 1\n"
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_a_pool_dropped_without_shutdown_finishes_its_work_and_stops(backend: str) -> None:
    before = set(threading.enumerate())  # (other tests' pools may still be winding down)
    ex = lightwork.Executor(2, backend=backend)
    future = ex.submit(sleep_then, (0.2, "done"))
    workers = ex.statistics().workers_started
    del ex
    gc.collect()
    assert future.result(timeout=30) == "done"  # what was submitted still runs
    assert workers <= 2

    def its_threads() -> list[str]:
        now = set(threading.enumerate()) - before
        return [t.name for t in now if t.name.startswith("lightwork-")]

    deadline = time.monotonic() + 10
    while its_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert its_threads() == []


def test_shutdown_cancelling_futures_on_threads_keeps_what_already_started() -> None:
    # As CPython's ThreadPoolShutdownTest.test_cancel_futures: work queued behind running
    # tasks is cancelled, the tasks the threads already took finish.
    ex = lightwork.Executor(5, backend="threads")
    futures = [ex.submit(time.sleep, 0.1) for _ in range(50)]
    ex.shutdown(cancel_futures=True)
    cancelled = [f for f in futures if f.cancelled()]
    finished = [f for f in futures if f.done() and not f.cancelled()]
    assert len(cancelled) > 20 and finished


def test_a_done_callback_may_shut_the_thread_pool_down() -> None:
    # The callback runs under the pool's lock (with task_timeout, a resolve holds it).
    ex = lightwork.Executor(2, backend="threads", task_timeout=30)
    future = ex.submit(square, 3)
    future.add_done_callback(lambda _: ex.shutdown(wait=False, cancel_futures=True))
    assert future.result(timeout=30) == 9
    ex.shutdown(wait=True)


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_an_unread_map_held_only_through_iter_or_zip_keeps_its_results(backend: str) -> None:
    with lightwork.Executor(2, backend=backend) as ex:
        pairs = zip(ex.map(square, range(50)), ex.map(square, range(50)), strict=True)
        plain = iter(ex.map(square, range(50)))
    assert [a for a, _ in pairs] == [x * x for x in range(50)]
    assert list(plain) == [x * x for x in range(50)]


def test_ctrl_c_on_threads_does_not_wait_for_running_chunks_at_exit() -> None:
    # The exit hook finishes what pools were given, but not a pool Ctrl-C stopped: its
    # threads may be deep in chunks of long tasks that no one will read.
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, threading, time, lightwork\n"
            "threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
            "lightwork.map(time.sleep, [0.5] * 400, backend='threads', max_workers=2,"
            " chunksize=20)\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "KeyboardInterrupt" in done.stderr
    assert time.monotonic() - started < 8  # a chunk alone takes 10 s
