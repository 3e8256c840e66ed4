"""Pipeline: stages of executors joined by bounded buffers.

What it promises: output in source order (or the same items, unordered); backpressure that
holds a fast source back; every item through every stage exactly once, even when a worker
process is killed; an error, ``close()``, ``break`` or Ctrl-C stops every stage and leaves no
thread or process behind; and statistics that point at the slow stage.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lightwork
from lightwork import Pipeline
from lightwork._backends._threads import ThreadBackend
from lightwork._engine._executor import REORDER_SLACK

from tasks import DRIVER_HEADER, CustomError, wait_gone

# Stage backends every behavioural test runs on; serial is the reference.
STAGE_BACKENDS: dict[str, dict[str, Any]] = {
    "serial": {"backend": "serial"},
    "threads": {"backend": "threads", "max_workers": 2},
    "processes": {"backend": "processes", "max_workers": 2},
}

# In flight per thread-backend stage, beyond its buffer: the executor keeps workers x (lookahead
# + reorder slack) one-item chunks; the stage thread also holds one result while it waits to put.
IN_FLIGHT_PER_WORKER = ThreadBackend.lookahead + REORDER_SLACK


# ---- task functions (module level: process workers import them by reference) ---------------


def jittered_square(x: int) -> int:
    time.sleep((x * 7 % 5) * 0.002)  # later items often finish first
    return x * x


def add_one(x: int) -> int:
    return x + 1


def is_even(x: int) -> bool:
    return x % 2 == 0


def sleep_then_identity(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x


def fail_at(x: int, bad: int) -> int:
    if x == bad:
        raise CustomError(f"stage got {x}")
    return x


def kill_once_at(x: int, marker: str, at: int) -> int:
    """SIGKILL this worker the first time it gets item ``at`` (the marker file says so)."""
    if x == at and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os.kill(os.getpid(), signal.SIGKILL)
    return x * 10


def draw(_: int) -> float:
    return lightwork.random().random()


class CountingSource:
    """An endless source that counts what was pulled from it and whether it was closed."""

    def __init__(self) -> None:
        self.pulled = 0
        self.closed = False

    def __iter__(self) -> Iterator[int]:
        try:
            for x in itertools.count():
                self.pulled += 1
                yield x
        finally:
            self.closed = True


_threads_before: set[threading.Thread] = set()


@pytest.fixture(autouse=True)
def _note_threads_before() -> None:
    """Threads that other tests' warm pools left running are not this test's."""
    _threads_before.clear()
    _threads_before.update(threading.enumerate())


def lightwork_threads() -> list[str]:
    """lightwork's threads started during this test and still running."""
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("lightwork") and t not in _threads_before
    ]


# ---- results ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", list(STAGE_BACKENDS))
def test_ordered_stages_keep_the_source_order(backend: str) -> None:
    pipeline = Pipeline(range(40)).map(jittered_square, **STAGE_BACKENDS[backend]).map(add_one)
    assert list(pipeline) == [x * x + 1 for x in range(40)]


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_unordered_stages_yield_the_same_items(backend: str) -> None:
    pipeline = (
        Pipeline(range(40))
        .map(jittered_square, ordered=False, **STAGE_BACKENDS[backend])
        .map(add_one, ordered=False, max_workers=3)
    )
    assert Counter(pipeline) == Counter(x * x + 1 for x in range(40))


@pytest.mark.parametrize("backend", list(STAGE_BACKENDS))
def test_filter_passes_on_the_items_its_predicate_accepts(backend: str) -> None:
    pipeline = Pipeline(range(30)).map(add_one).filter(is_even, **STAGE_BACKENDS[backend])
    assert list(pipeline) == [x for x in range(1, 31) if x % 2 == 0]
    stage = pipeline.statistics().stages[1]
    assert (stage.kind, stage.items_in, stage.items_out) == ("filter", 30, 15)


def test_batch_groups_consecutive_items_for_the_next_stage() -> None:
    assert list(Pipeline(range(7)).batch(3).map(sum)) == [3, 12, 6]
    assert list(Pipeline(range(5)).map(add_one).batch(2)) == [[1, 2], [3, 4], [5]]


def test_a_pipeline_without_stages_yields_its_source() -> None:
    assert list(Pipeline(iter("abc"))) == ["a", "b", "c"]


def test_seeded_random_streams_agree_across_stage_backends() -> None:
    runs = [list(Pipeline(range(6)).map(draw, seed=5, **o)) for o in STAGE_BACKENDS.values()]
    assert runs[0] == runs[1] == runs[2]
    assert len(set(runs[0])) == 6


def test_adding_a_stage_returns_a_new_pipeline() -> None:
    base = Pipeline(range(3))
    squared = base.map(jittered_square)
    assert list(base) == [0, 1, 2]
    assert list(squared) == [0, 1, 4]
    assert "map('jittered_square', backend='threads')" in repr(squared)


def test_run_drains_a_sink_stage_and_returns_statistics() -> None:
    stored: list[int] = []
    lock = threading.Lock()

    def store(x: int) -> None:
        with lock:
            stored.append(x)

    stats = Pipeline(range(50)).map(add_one).map(store, ordered=False, name="db").run()
    assert sorted(stored) == list(range(1, 51))
    assert [s.name for s in stats.stages] == ["add_one", "db"]
    assert stats.stages[1].items_out == 50
    assert not stats.running


# ---- backpressure -----------------------------------------------------------------------------


def test_a_slow_last_stage_holds_the_source_back() -> None:
    source = CountingSource()
    buffer = 4
    pipeline = (
        Pipeline(source, buffer=buffer)
        .map(add_one, max_workers=2)
        .map(functools.partial(sleep_then_identity, seconds=0.02), max_workers=1, name="slow")
    )
    consumed = 5
    results = iter(pipeline)
    first = [next(results) for _ in range(consumed)]
    time.sleep(0.3)  # time enough for an unbounded producer to run far ahead
    bound = consumed + sum(buffer + IN_FLIGHT_PER_WORKER * w + 1 for w in (2, 1))
    pulled = source.pulled
    assert first == [1, 2, 3, 4, 5]
    assert consumed < pulled <= bound, f"pulled {pulled} items for {consumed} results"
    stats = pipeline.statistics()
    assert stats.running
    assert stats.stages[0].items_in == pulled
    assert stats.stages[0].blocked_seconds > 0.1  # held back by the slow stage
    pipeline.close()
    assert source.pulled == pulled  # nothing more is pulled once the pipeline is closed
    assert lightwork_threads() == []


# ---- stopping ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_leftover_children")
def test_an_error_in_a_middle_stage_names_it_and_stops_every_stage() -> None:
    source = CountingSource()
    pipeline = (
        Pipeline(source)
        .map(add_one, name="first")
        .map(functools.partial(fail_at, bad=30), name="explode")
        .map(jittered_square, backend="processes", max_workers=2, name="last")
    )
    with pytest.raises(CustomError, match="stage got 30") as raised:
        for _ in pipeline:
            pass
    assert "in pipeline stage 'explode'" in raised.value.__notes__
    assert lightwork_threads() == []
    assert source.closed
    pulled = source.pulled
    time.sleep(0.1)
    assert source.pulled == pulled < 200
    assert not pipeline.statistics().running


def test_an_error_in_the_source_is_raised_with_a_note() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise CustomError("network down")

    with pytest.raises(CustomError, match="network down") as raised:
        list(Pipeline(broken()).map(add_one))
    assert "in the pipeline's source" in raised.value.__notes__
    assert lightwork_threads() == []


@pytest.mark.usefixtures("no_leftover_children")
def test_leaving_the_loop_early_stops_the_stages_and_closes_the_source() -> None:
    source = CountingSource()
    pipeline = Pipeline(source).map(add_one).map(jittered_square, backend="processes")
    for i, _ in enumerate(pipeline):
        if i == 10:
            break
    assert lightwork_threads() == []
    assert source.closed
    assert not pipeline.statistics().running


def test_close_from_another_thread_ends_the_loop_quietly() -> None:
    pipeline = Pipeline(itertools.count()).map(functools.partial(sleep_then_identity, seconds=0.01))
    timer = threading.Timer(0.2, pipeline.close)
    timer.start()
    seen = sum(1 for _ in pipeline)  # ends without an error
    timer.join()
    assert seen > 0
    assert lightwork_threads() == []


def test_a_pipeline_runs_once_at_a_time() -> None:
    pipeline = Pipeline(range(10**9)).map(add_one)  # a range: each run iterates it afresh
    results = iter(pipeline)
    next(results)
    with pytest.raises(RuntimeError, match="already running"):
        next(iter(pipeline))
    pipeline.close()
    assert list(itertools.islice(pipeline, 3)) == [1, 2, 3]  # and again once it stopped


@pytest.mark.usefixtures("no_leftover_children")
def test_a_killed_worker_still_passes_every_item_exactly_once(tmp_path: Path) -> None:
    seen: Counter[int] = Counter()

    def record(x: int) -> int:
        seen[x] += 1  # one thread: the stage has one worker
        return x

    kill = functools.partial(kill_once_at, marker=str(tmp_path / "killed"), at=7)
    pipeline = (
        Pipeline(range(20))
        .map(kill, backend="processes", max_workers=2, ordered=False, name="crash")
        .map(record, max_workers=1)
    )
    results = list(pipeline)
    expected = [x * 10 for x in range(20)]
    assert Counter(results) == Counter(expected)
    assert seen == Counter(expected)
    crash = pipeline.statistics().stages[0].executor
    assert crash is not None
    assert (crash.workers_crashed, crash.tasks_retried) == (1, 1)


DRIVER = (
    DRIVER_HEADER
    + """
import itertools, sys, threading, time
import lightwork
from tasks import announce_workers

def slow(x):
    time.sleep(60)
    return x

def main():
    threading.Thread(target=announce_workers, daemon=True).start()
    pipeline = (
        lightwork.Pipeline(itertools.count())
        .map(abs, name="parse")
        .map(slow, backend="processes", max_workers=2, name="crunch")
        .map(str, name="store")
    )
    try:
        for _ in pipeline:
            pass
    except KeyboardInterrupt:
        print("STOPPED", time.monotonic(), flush=True)
        left = [t.name for t in threading.enumerate() if t.name.startswith("lightwork-pipe")]
        print("LEFT", left, flush=True)
        raise

if __name__ == "__main__":
    main()
"""
)


def test_ctrl_c_stops_every_stage_within_a_second(tmp_path: Path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal would give it
    )
    pids: list[int] = []
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        assert line.startswith("PIDS"), line + process.stderr.read()
        pids = [int(p) for p in line.split()[1:]]
        sent = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = process.communicate(timeout=10)
        stopped = float(out.split("STOPPED")[1].split()[0])
        assert stopped - sent < 1.0, "KeyboardInterrupt reached the caller late"
        assert "LEFT []" in out, out  # every stage thread has ended
        assert err.count("KeyboardInterrupt") == 1, err
        assert process.returncode != 0
        assert wait_gone(pids, 2.0) == [], "processes left behind after Ctrl-C"
    finally:
        process.kill()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ---- statistics and progress ------------------------------------------------------------------


def test_statistics_point_at_the_slow_stage() -> None:
    pipeline = (
        Pipeline(range(40), buffer=4)
        .map(add_one, max_workers=2, name="fast")
        .map(functools.partial(sleep_then_identity, seconds=0.01), max_workers=1, name="slow")
        .map(add_one, max_workers=2, name="after")
    )
    stats = pipeline.run()
    fast, slow, after = stats.stages
    assert stats.bottleneck == "slow"
    assert slow.busy_seconds >= 0.4  # 40 items of 10 ms on one worker
    assert slow.busy_seconds > max(fast.busy_seconds, after.busy_seconds)
    assert slow.utilization > 0.5
    assert fast.blocked_seconds > 0.2  # waiting for room in the slow stage's buffer
    assert after.starved_seconds > 0.2  # waiting for the slow stage's results
    assert [(s.items_in, s.items_out) for s in stats.stages] == [(40, 40)] * 3
    assert "<- bottleneck" in str(stats).splitlines()[2]


def test_statistics_before_a_run_are_zeros() -> None:
    stats = Pipeline(range(3)).map(add_one, max_workers=3).statistics()
    assert stats.stages[0].items_in == 0
    assert stats.stages[0].max_workers == 3
    assert stats.bottleneck is None
    assert not stats.running


def test_progress_bars_name_each_stage(capsys: pytest.CaptureFixture[str]) -> None:
    Pipeline(range(20)).map(add_one, progress=True, name="parse").map(
        add_one, progress=True, name="store"
    ).run()
    err = capsys.readouterr().err
    assert "parse" in err
    assert "store" in err


# ---- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declare", "error"),
    [
        (lambda p: p.map(add_one, backend="gpu"), lightwork.InvalidOptionError),
        (lambda p: p.map(add_one, max_workers=0), lightwork.InvalidOptionError),
        (lambda p: p.map(add_one, chunksize=0), lightwork.InvalidOptionError),
        (lambda p: p.map(add_one, retries=-1), lightwork.InvalidOptionError),
        (lambda p: p.map(add_one, backend="serial", task_timeout=1), lightwork.InvalidOptionError),
        (lambda p: p.filter(is_even, seed=-1), lightwork.InvalidOptionError),
        (lambda p: p.batch(0), lightwork.InvalidOptionError),
        (lambda p: p.map(42), TypeError),
        (lambda p: Pipeline(range(3), buffer=0), lightwork.InvalidOptionError),
        (lambda p: Pipeline(42), TypeError),  # type: ignore[arg-type, unused-ignore]
    ],
)
def test_bad_options_fail_where_the_stage_is_declared(declare: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        declare(Pipeline(range(3)))
