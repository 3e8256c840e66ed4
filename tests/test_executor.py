"""The Executor's behaviour, on every backend, against the serial reference."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lightwork
from lightwork._core._chunking import MAX_CHUNK

from conftest import MakeExecutor, pids_of
from tasks import (
    CustomError,
    add,
    fail_on,
    identity,
    initialized,
    remember,
    sleep_then,
    square,
    touch,
)


def test_map_returns_results_in_input_order(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        assert list(ex.imap(square, range(1000))) == [x * x for x in range(1000)]


def test_starmap_unpacks_argument_tuples(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        assert ex.starmap(add, [(1, 2), (3, 4)]) == [3, 7]


def test_empty_input_gives_empty_result(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        assert list(ex.imap(square, [])) == []
        assert ex.starmap(add, []) == []
        assert list(ex.map(square, [])) == []


def test_unordered_imap_yields_every_result_once(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        results = list(ex.imap(square, range(500), ordered=False))
    assert sorted(results) == [x * x for x in range(500)]


def test_unordered_imap_yields_in_completion_order(make_parallel_executor: MakeExecutor) -> None:
    with make_parallel_executor() as ex:
        items = [(0.6, "slow"), (0.0, "fast")]
        assert list(ex.imap(sleep_then, items, ordered=False, chunksize=1)) == ["fast", "slow"]


def test_fixed_chunksize_gives_same_results(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        assert list(ex.imap(square, range(100), chunksize=7)) == [x * x for x in range(100)]


_unpickled = 0  # in a worker: how often a Scaler was unpickled there


def _rebuild_scaler(factor: int) -> Scaler:
    global _unpickled
    _unpickled += 1
    return Scaler(factor)


class Scaler:
    """A callable with state, which reports how often its worker has unpickled one."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, x: int) -> tuple[int, int]:
        return x * self.factor, _unpickled

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return _rebuild_scaler, (self.factor,)


def test_a_callable_runs_as_of_each_call_and_travels_once_per_state(
    make_process_executor: MakeExecutor,
) -> None:
    scale = Scaler(1)
    with make_process_executor(max_workers=1) as ex:
        assert [ex.submit(scale, 10).result() for _ in range(3)] == [(10, 1)] * 3  # sent once
        scale.factor = 2
        assert ex.submit(scale, 10).result() == (20, 2)  # its new state, sent again
        assert [value for value, _ in ex.map(scale, [10, 20])] == [20, 40]
        scale.factor = 3
        assert [value for value, _ in ex.imap(scale, [10])] == [30]


def test_lambdas_and_closures_run_in_workers(make_executor: MakeExecutor) -> None:
    offset = 10
    with make_executor() as ex:
        assert list(ex.imap(lambda x: x + offset, range(3))) == [10, 11, 12]
        assert ex.submit(lambda: offset * 2).result() == 20


def test_submit_passes_args_and_kwargs(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        assert ex.submit(int, "ff", base=16).result() == 255


def test_executor_map_zips_several_iterables(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        assert list(ex.map(pow, [2, 3, 4], [2, 2], chunksize=1)) == [4, 9]


def _paths(folder: Path, n: int) -> list[str]:
    return [str(folder / f"task-{i}") for i in range(n)]


def _ran(folder: Path) -> int:
    return len(list(folder.iterdir()))


def test_executor_map_whose_results_are_never_read_still_runs(
    make_executor: MakeExecutor, tmp_path: Path
) -> None:
    # The standard library's map submits everything at the call; lightwork's reads its input
    # lazily, so leaving the with-block runs the rest of a map nobody read.
    with make_executor() as ex:
        ex.map(touch, _paths(tmp_path, 60))
    assert _ran(tmp_path) == 60


def test_executor_map_results_can_be_read_after_shutdown(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        results = ex.map(square, range(100))
    assert list(results) == [x * x for x in range(100)]


def test_an_unread_executor_map_runs_past_a_failure_and_raises_it_in_place(
    make_executor: MakeExecutor, tmp_path: Path
) -> None:
    paths = _paths(tmp_path, 30)
    with make_executor() as ex:
        results = ex.map(touch, paths, [paths[3]] * 30)
    assert _ran(tmp_path) == 30  # every task ran, as submitted futures would
    seen: list[str] = []
    with pytest.raises(CustomError, match="task-3"):
        for path in results:
            seen.append(path)
    assert seen == paths[:3]


def test_executor_map_starts_work_at_the_call_with_bounded_look_ahead(
    make_parallel_executor: MakeExecutor, tmp_path: Path
) -> None:
    pulled: list[str] = []

    def paths() -> Iterator[str]:
        for path in _paths(tmp_path, 1000):
            pulled.append(path)
            yield path

    with make_parallel_executor() as ex:
        results = ex.map(touch, paths())
        deadline = time.monotonic() + 30
        while _ran(tmp_path) < 2 and time.monotonic() < deadline:  # no read: it runs anyway
            time.sleep(0.01)
        assert 2 <= _ran(tmp_path) <= len(pulled) < 100
        assert list(itertools.islice(results, 500)) == _paths(tmp_path, 500)
        results.close()  # type: ignore[attr-defined]
    assert len(pulled) < 600  # a map once read is the reader's: shutdown did not run the rest


def test_shutdown_cancel_futures_drops_an_unread_executor_map(
    make_executor: MakeExecutor, tmp_path: Path
) -> None:
    ex = make_executor()
    results = ex.map(touch, _paths(tmp_path, 1000))
    ex.shutdown(wait=True, cancel_futures=True)
    assert _ran(tmp_path) < 1000
    assert len(list(results)) < 1000


def test_imap_is_lazy_on_an_endless_generator(make_executor: MakeExecutor) -> None:
    pulled = itertools.count()

    def numbers() -> itertools.count[int]:
        for n in itertools.count():
            next(pulled)
            yield n

    with make_executor() as ex:
        results = ex.imap(square, numbers())
        assert [next(results) for _ in range(50)] == [x * x for x in range(50)]
        results.close()  # type: ignore[attr-defined]
    # Look-ahead is bounded: at most a few full chunks per worker were pulled ahead.
    assert next(pulled) < 50 + 16 * MAX_CHUNK


def test_imap_reads_no_input_before_iteration(make_executor: MakeExecutor) -> None:
    pulled: list[int] = []

    def numbers() -> itertools.count[int]:
        for n in range(10):
            pulled.append(n)
            yield n

    with make_executor() as ex:
        results = ex.imap(square, numbers())
        assert pulled == []
        assert list(results) == [x * x for x in range(10)]


def test_task_exception_keeps_its_type_with_task_index_note(make_executor: MakeExecutor) -> None:
    with make_executor() as ex, pytest.raises(CustomError, match="task got 3") as info:
        list(ex.imap(fail_on, range(10)))
    assert "lightwork: raised by task 3" in info.value.__notes__


def test_worker_traceback_is_the_cause_in_processes(make_process_executor: MakeExecutor) -> None:
    with make_process_executor() as ex, pytest.raises(CustomError) as info:
        ex.submit(fail_on, 3).result()
    cause = info.value.__cause__
    assert isinstance(cause, lightwork.RemoteTraceback)
    assert "in fail_on" in str(cause)


def test_results_before_the_first_failure_are_yielded(make_executor: MakeExecutor) -> None:
    seen: list[int] = []
    with make_executor() as ex, pytest.raises(CustomError):
        for value in ex.imap(fail_on, range(10), chunksize=2):
            seen.append(value)
    assert seen == [0, 1, 2]


def test_lowest_failing_index_is_raised(make_executor: MakeExecutor) -> None:
    with make_executor() as ex, pytest.raises(CustomError, match="task got 2"):
        list(ex.imap(lambda x: fail_on(x, bad=2) + fail_on(x, bad=7), range(10)))


def test_return_exceptions_keeps_partial_results(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        results = list(ex.imap(fail_on, range(6), return_exceptions=True))
    assert results[:3] == [0, 1, 2] and results[4:] == [4, 5]
    assert isinstance(results[3], CustomError)


def test_executor_map_timeout_raises_timeout_error(make_parallel_executor: MakeExecutor) -> None:
    with make_parallel_executor() as ex:
        results = ex.map(sleep_then, [(5.0, 1)], timeout=0.2)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            list(results)
        assert time.monotonic() - started < 2
        ex.terminate()


def test_futures_work_with_wait_and_as_completed(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        futures = [ex.submit(square, n) for n in range(5)]
        done, not_done = concurrent.futures.wait(futures, timeout=30)
        assert len(done) == 5 and not not_done
        assert sorted(f.result() for f in concurrent.futures.as_completed(futures)) == [
            0,
            1,
            4,
            9,
            16,
        ]


def test_futures_work_with_asyncio(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:

        async def main() -> list[int]:
            return list(
                await asyncio.gather(*(asyncio.wrap_future(ex.submit(square, n)) for n in range(3)))
            )

        assert asyncio.run(main()) == [0, 1, 4]


def test_submit_after_shutdown_raises(make_executor: MakeExecutor) -> None:
    ex = make_executor()
    ex.shutdown()
    with pytest.raises(lightwork.ExecutorShutdownError, match="shut down"):
        ex.submit(square, 2)
    with pytest.raises(RuntimeError):  # what concurrent.futures users catch
        ex.imap(square, [1])


def test_shutdown_waits_for_submitted_work(make_parallel_executor: MakeExecutor) -> None:
    ex = make_parallel_executor()
    futures = [ex.submit(sleep_then, (0.2, n)) for n in range(4)]
    ex.shutdown(wait=True)
    assert [f.result(timeout=0) for f in futures] == [0, 1, 2, 3]


def test_shutdown_cancel_futures_cancels_queued_work(make_parallel_executor: MakeExecutor) -> None:
    ex = make_parallel_executor(max_workers=1)
    futures = [ex.submit(sleep_then, (0.3, n)) for n in range(5)]
    time.sleep(0.1)
    ex.shutdown(wait=True, cancel_futures=True)
    assert any(f.cancelled() for f in futures)
    for future in futures:
        assert future.done()


def test_cancelled_future_does_not_run(make_parallel_executor: MakeExecutor) -> None:
    with make_parallel_executor(max_workers=1) as ex:
        blocker = ex.submit(sleep_then, (0.5, "first"))
        queued = ex.submit(square, 3)
        assert queued.cancel()
        assert blocker.result() == "first"
        assert queued.cancelled()


def test_initializer_runs_in_every_worker(make_executor: MakeExecutor) -> None:
    with make_executor(initializer=remember, initargs=(7,)) as ex:
        assert set(ex.imap(initialized, range(20), chunksize=1)) == {7}


def test_statistics_count_tasks_chunks_and_time(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        list(ex.imap(square, range(100), chunksize=10))
        stats = ex.statistics()
    assert stats.tasks_done == 100
    assert stats.chunks_done == 10
    assert stats.busy_seconds > 0
    assert all(w.idle_seconds >= 0 and w.deserialize_seconds >= 0 for w in stats.workers)
    assert stats.max_workers == (1 if stats.backend == "serial" else 2)


def test_process_workers_have_their_own_pids(make_process_executor: MakeExecutor) -> None:
    import os

    with make_process_executor() as ex:
        pids = set(ex.imap(lambda _: os.getpid(), range(20), chunksize=1))
        assert os.getpid() not in pids
        assert pids <= pids_of(ex)


def test_max_tasks_per_worker_recycles_workers(make_process_executor: MakeExecutor) -> None:
    import os

    with make_process_executor(max_workers=1, max_tasks_per_worker=2) as ex:
        pids = list(ex.imap(lambda _: os.getpid(), range(6), chunksize=1))
        assert len(set(pids)) == 3
        assert ex.statistics().workers_crashed == 0


def test_progress_bar_counts_items(
    make_executor: MakeExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    with make_executor() as ex:
        assert list(ex.imap(identity, range(40), progress=True)) == list(range(40))
    err = capsys.readouterr().err
    assert "40/40" in err


def test_nested_map_in_a_thread_task_works(make_executor: MakeExecutor) -> None:
    def inner(n: int) -> list[int]:
        return lightwork.map(square, range(n), backend="serial")

    with make_executor() as ex:
        assert list(ex.imap(inner, [2, 3])) == [[0, 1], [0, 1, 4]]


def test_threads_backend_runs_on_several_threads() -> None:
    barrier = threading.Barrier(4, timeout=10)

    def meet(_: int) -> int:
        return barrier.wait()  # only returns once 4 tasks run at the same time

    with lightwork.Executor(4, backend="threads") as ex:
        assert sorted(ex.imap(meet, range(4), chunksize=1)) == [0, 1, 2, 3]


def test_start_brings_every_worker_up_before_any_task(make_executor: MakeExecutor) -> None:
    with make_executor(initializer=remember, initargs=(3,)) as ex:
        ex.start()
        stats = ex.statistics()
        assert stats.workers_started == ex.max_workers
        assert all(w.tasks == 0 for w in stats.workers)
        if ex.backend == "processes":
            assert all(w.startup_seconds > 0 for w in stats.workers)
        assert set(ex.imap(initialized, range(10))) == {3}


def test_start_raises_when_the_initializer_fails(make_executor: MakeExecutor) -> None:
    from tasks import broken_initializer

    with make_executor(initializer=broken_initializer) as ex:
        if ex.backend == "serial":
            return  # the serial backend runs the initializer with the first task
        with pytest.raises(lightwork.WorkerInitializationError):
            ex.start()


def stops_at_three(x: int) -> int:
    if x == 3:
        raise StopIteration("a task's own StopIteration")
    return x


def test_a_task_raising_stopiteration_fails_that_task_only(make_executor: MakeExecutor) -> None:
    # A bare map would take the StopIteration for the end of its input and drop the rest.
    with make_executor() as ex:
        results = list(ex.imap(stops_at_three, range(8), chunksize=8, return_exceptions=True))
    assert results[:3] == [0, 1, 2] and results[4:] == [4, 5, 6, 7]
    assert isinstance(results[3], StopIteration)
    assert "lightwork: raised by task 3" in getattr(results[3], "__notes__", [])


@pytest.mark.parametrize("backend", ["serial", "threads", "processes"])
def test_module_level_calls_on_each_backend_match_the_serial_reference(backend: str) -> None:
    options: dict[str, Any] = {"backend": backend}
    if backend != "serial":
        options["max_workers"] = 2
    squares = [x * x for x in range(300)]
    assert lightwork.map(square, range(300), **options) == squares
    assert list(lightwork.imap(square, iter(range(300)), **options)) == squares
    assert sorted(lightwork.imap(square, range(300), ordered=False, **options)) == squares
    pairs = [(x, 1) for x in range(300)]
    assert lightwork.starmap(add, pairs, **options) == list(range(1, 301))
