"""``async def`` functions: run on an event loop, max_workers at a time, on any backend."""

from __future__ import annotations

import asyncio
import functools
import time

import pytest

import lightwork

from conftest import MakeExecutor


async def double(x: int) -> int:
    await asyncio.sleep(0.001)
    return 2 * x


async def add(x: int, y: int) -> int:
    await asyncio.sleep(0)
    return x + y


async def boom(x: int) -> int:
    await asyncio.sleep(0)
    if x == 3:
        raise ValueError("async task 3 failed")
    return x


async def draw(_: int) -> float:
    await asyncio.sleep(0.001)  # interleave with the other tasks before drawing
    return lightwork.random().random()


async def forever(x: int) -> int:
    await asyncio.sleep(3600)
    return x


def test_async_functions_work_in_map_imap_starmap_submit(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        assert list(ex.imap(double, range(200))) == [2 * x for x in range(200)]
        assert ex.starmap(add, [(1, 2), (3, 4)]) == [3, 7]
        assert ex.submit(double, 21).result(timeout=10) == 42
        assert sorted(ex.imap(double, range(50), ordered=False)) == [2 * x for x in range(50)]


class Service:
    async def fetch(self, x: int) -> int:
        return await double(x)

    def compute(self, x: int) -> int:
        return 2 * x


@pytest.mark.parametrize(
    "fn",
    [functools.partial(add, 1), Service().fetch],
    ids=["partial", "bound method"],
)
def test_wrapped_async_functions_run_as_async(fn: object) -> None:
    results = lightwork.map(fn, [1, 2], backend="serial")
    assert all(isinstance(r, int) for r in results)  # awaited, not returned as coroutines


@pytest.mark.parametrize(
    "fn",
    [functools.partial(pow, 2), Service().compute, abs, lambda x: x],
    ids=["partial", "bound method", "builtin", "lambda"],
)
def test_plain_functions_are_not_taken_for_async(fn: object) -> None:
    assert lightwork.map(fn, [1, 2], backend="serial") == [fn(1), fn(2)]  # type: ignore[operator]


class HoldsAnAsyncFunction:
    """Its own ``fn`` attribute is async, but calling it is not."""

    fn = staticmethod(double)

    def __call__(self, x: int) -> int:
        return 3 * x


def test_a_sync_callable_with_an_async_attribute_stays_sync() -> None:
    assert lightwork.map(HoldsAnAsyncFunction(), [1, 2], backend="serial") == [3, 6]


def test_async_map_from_the_top_level() -> None:
    assert lightwork.map(double, range(5)) == [0, 2, 4, 6, 8]


def test_async_tasks_overlap_their_waits() -> None:
    async def nap(x: int) -> int:
        await asyncio.sleep(0.2)
        return x

    started = time.perf_counter()
    assert lightwork.map(nap, range(100), max_workers=100) == list(range(100))
    assert time.perf_counter() - started < 2.0  # 100 x 0.2 s would be 20 s one at a time


def test_async_concurrency_is_limited_by_max_workers() -> None:
    running = 0
    peak = 0

    async def track(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        running -= 1
        return x

    with lightwork.Executor(5, backend="threads") as ex:
        assert list(ex.imap(track, range(60))) == list(range(60))
    assert peak == 5


def test_async_exception_keeps_its_type_and_index(make_executor: MakeExecutor) -> None:
    with make_executor() as ex:
        with pytest.raises(ValueError, match="async task 3 failed") as info:
            list(ex.imap(boom, range(10)))
        assert "lightwork: raised by task 3" in info.value.__notes__
        results = list(ex.imap(boom, range(5), return_exceptions=True))
        assert isinstance(results[3], ValueError) and results[4] == 4


def test_async_seeded_streams_match_the_sync_reference() -> None:
    def sync_draw(_: int) -> float:
        return lightwork.random().random()

    expected = lightwork.map(sync_draw, range(30), backend="serial", seed=12)
    assert lightwork.map(draw, range(30), seed=12) == expected


def test_async_task_timeout_cancels_the_coroutine() -> None:
    started = time.perf_counter()
    results = lightwork.map(
        forever, range(3), backend="threads", task_timeout=0.2, retries=0, return_exceptions=True
    )
    assert all(isinstance(r, lightwork.TaskTimeoutError) for r in results)
    assert time.perf_counter() - started < 5


def test_an_unread_executor_map_of_coroutines_still_runs(make_executor: MakeExecutor) -> None:
    done: list[int] = []

    async def record(x: int) -> int:
        await asyncio.sleep(0)
        done.append(x)
        return x

    with make_executor() as ex:
        ex.map(record, range(300))
        results = ex.map(double, range(100))
    assert sorted(done) == list(range(300))
    assert list(results) == [2 * x for x in range(100)]
