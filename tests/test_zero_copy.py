"""Large NumPy arrays reach process workers through shared memory, copied once per call."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lightwork
from lightwork._backends._base import Backend
from lightwork._backends._processes._arrays import ARRAY_THRESHOLD_BYTES, INHERIT_THRESHOLD_BYTES

from conftest import MakeExecutor

# A call's array segments: lightwork-<pid>-arg-<hex> (lightwork._core._segment).
_ARG_SEGMENT = f"lightwork-{os.getpid()}-arg-"


def _segments() -> set[str]:
    return {name for name in os.listdir("/dev/shm") if name.startswith(_ARG_SEGMENT)}


@pytest.fixture(autouse=True)
def no_segment_left() -> Iterator[None]:
    before = _segments()
    yield
    assert _segments() <= before, "a shared-memory segment was left behind"


def inspect_slice(array: np.ndarray, i: int) -> tuple[float, bool, str]:
    part = array[i * 1000 : (i + 1) * 1000]
    owner = array
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base  # what finally holds the memory: a mapping, or the array itself
    return float(part.sum()), bool(array.flags.writeable), type(owner).__name__


def inspect_slice_first(i: int, array: np.ndarray) -> tuple[float, bool, str]:
    return inspect_slice(array, i)


BIG = np.arange(2 * ARRAY_THRESHOLD_BYTES // 8, dtype=np.float64)


def test_array_in_a_partial_is_mapped_read_only(make_process_executor: MakeExecutor) -> None:
    with make_process_executor() as ex:
        results = list(ex.imap(functools.partial(inspect_slice, BIG), range(8), chunksize=1))
    assert [r[0] for r in results] == [
        float(BIG[i * 1000 : (i + 1) * 1000].sum()) for i in range(8)
    ]
    assert all(not writeable and base in ("mmap", "memoryview") for _, writeable, base in results)


def test_array_among_arguments_is_mapped_read_only(make_process_executor: MakeExecutor) -> None:
    with make_process_executor() as ex:
        results = ex.starmap(inspect_slice_first, [(i, BIG) for i in range(6)], chunksize=2)
    assert [r[0] for r in results] == [
        float(BIG[i * 1000 : (i + 1) * 1000].sum()) for i in range(6)
    ]
    assert {r[1] for r in results} == {False}


def whole(array: np.ndarray) -> np.ndarray:
    return np.array(array)  # a private copy of what the worker sees, sent back pickled


@pytest.mark.parametrize(
    "array",
    [
        BIG.reshape(-1, 64),  # C-contiguous: written into the segment's file
        np.tile(BIG, 4).reshape(-1, 64)[::2, ::2],  # strided: copied through the mapping
        np.asfortranarray(BIG.reshape(-1, 64)),
        BIG.astype("datetime64[s]"),  # no buffer protocol for this dtype
        BIG.astype(np.complex64),
        np.zeros(len(BIG), dtype=[("x", "f8"), ("n", "i4")]),  # a worker sees its fields too
    ],
    ids=["c-contiguous", "strided", "fortran", "datetime64", "complex64", "structured"],
)
def test_every_layout_reaches_workers_unchanged(array: np.ndarray) -> None:
    assert array.nbytes >= ARRAY_THRESHOLD_BYTES
    (seen,) = lightwork.map(whole, [array], max_workers=1)
    assert seen.dtype == array.dtype and seen.shape == array.shape
    assert np.array_equal(seen, array)


def test_small_arrays_are_pickled_as_usual(make_process_executor: MakeExecutor) -> None:
    small = np.arange(100.0)
    with make_process_executor() as ex:
        ((total, writeable, _),) = list(ex.imap(functools.partial(inspect_slice, small), [0]))
    assert total == small.sum() and writeable is True


def test_same_results_as_the_serial_backend() -> None:
    expected = lightwork.map(functools.partial(inspect_slice, BIG), range(4), backend="serial")
    got = lightwork.map(functools.partial(inspect_slice, BIG), range(4), max_workers=2)
    assert [r[0] for r in got] == [r[0] for r in expected]


def test_a_copy_that_fails_leaves_no_segment(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightwork._backends._processes import _arrays

    def full(name: str, array: np.ndarray) -> bool:
        raise OSError(28, "No space left on device")  # /dev/shm full, as in a small container

    monkeypatch.setattr(_arrays, "_write_into", full)
    with lightwork.Executor(1) as ex:
        # The arguments then travel pickled, as they would without shared memory.
        assert [r[0] for r in ex.starmap(inspect_slice_first, [(0, BIG)])] == [
            float(BIG[:1000].sum())
        ]
    # no_segment_left checks /dev/shm


def test_segments_are_released_after_a_crash(make_process_executor: MakeExecutor) -> None:
    def crash_on_two(array: np.ndarray, i: int) -> float:
        if i == 2:
            os._exit(1)
        return float(array[i])

    with make_process_executor() as ex:
        results = list(
            ex.imap(
                functools.partial(crash_on_two, BIG), range(4), retries=0, return_exceptions=True
            )
        )
    assert isinstance(results[2], lightwork.WorkerCrashedError)
    assert results[3] == 3.0


def test_workers_release_the_array_when_the_call_ends() -> None:
    import time

    with lightwork.Executor(2) as ex:
        list(ex.imap(functools.partial(inspect_slice, BIG), range(4), chunksize=1))
        pids = [w.pid for w in ex.statistics().workers if w.alive]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            mapped = [
                pid
                for pid in pids
                if "/dev/shm/" + _ARG_SEGMENT in Path(f"/proc/{pid}/maps").read_text()
            ]
            if not mapped:
                break
            time.sleep(0.05)
        assert mapped == [], "a worker kept the call's array mapped"


# ---- fork pools: very large arrays inherited, not copied ----------------------------------------

HUGE = np.arange(INHERIT_THRESHOLD_BYTES // 8 + 1024, dtype=np.float64)


def lend(array: np.ndarray, i: int) -> tuple[float, bool, int, int]:
    """A slice's sum, whether the array is writeable, where its data is, and who ran it."""
    part = array[i * 1000 : (i + 1) * 1000]
    return float(part.sum()), bool(array.flags.writeable), array.ctypes.data, os.getpid()


def lend_first(i: int, array: np.ndarray) -> tuple[float, bool, int, int]:
    return lend(array, i)


def _expected_sums(count: int) -> list[float]:
    return [float(HUGE[i * 1000 : (i + 1) * 1000].sum()) for i in range(count)]


@pytest.fixture
def no_copy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fails the test if an array is copied into shared memory."""
    from lightwork._backends._processes import _arrays

    copied: list[int] = []
    copy = _arrays.CallArrays._copy

    def record(self: _arrays.CallArrays, array: np.ndarray) -> object:
        copied.append(array.nbytes)
        return copy(self, array)

    monkeypatch.setattr(_arrays.CallArrays, "_copy", record)
    yield
    assert copied == [], "an array was copied into a segment"


@pytest.fixture
def lend_small_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fork pools lend every large array, so that tests of lending need not make 64 MiB ones."""
    from lightwork._backends._processes import _arrays

    monkeypatch.setattr(_arrays, "INHERIT_THRESHOLD_BYTES", ARRAY_THRESHOLD_BYTES)


def _workers(ex: lightwork.Executor) -> set[int]:
    return {w.pid for w in ex.statistics().workers if w.alive}


def test_a_fork_pool_lends_a_very_large_array_to_new_workers(no_copy: None) -> None:
    with lightwork.Executor(2, start_method="fork") as ex:
        ex.start()
        before = _workers(ex)
        in_partial = list(ex.imap(functools.partial(lend, HUGE), range(6), chunksize=1))
        among_args = ex.starmap(lend_first, [(i, HUGE) for i in range(6)], chunksize=2)
    for results in (in_partial, among_args):
        assert [r[0] for r in results] == _expected_sums(6)
        # The parent's own pages, at the parent's address (copy-on-write), and read-only.
        assert {r[2] for r in results} == {HUGE.ctypes.data}
        assert {r[1] for r in results} == {False}
        assert not {r[3] for r in results} & before, "a worker forked before the array ran it"


def test_workers_that_inherited_an_array_retire_when_the_call_ends() -> None:
    from lightwork._backends._processes import _mapped

    from tasks import wait_gone

    with lightwork.Executor(2, start_method="fork") as ex:
        results = list(ex.map(functools.partial(lend, HUGE), range(4), chunksize=1))
        lenders = sorted({r[3] for r in results})
        assert wait_gone(lenders, 5.0) == [], "a worker kept the parent's array after the call"
        assert _mapped.inheritable == {}
        # The pool goes on, with new workers.
        assert list(ex.map(abs, [-1, -2])) == [1, 2]
        assert not _workers(ex) & set(lenders)


def test_calls_passing_the_same_array_each_see_it_as_of_their_call(no_copy: None) -> None:
    array = HUGE.copy()
    with lightwork.Executor(1, start_method="fork") as ex:
        before = ex.submit(lend, array, 0)
        assert before.result()[0] == _expected_sums(1)[0]
        array[:1000] = 0.0  # changed between two calls: the second one sees the change
        after = ex.submit(lend, array, 0)
        assert after.result()[0] == 0.0
        futures = [ex.submit(lend, array, i) for i in range(1, 6)]
        results = [f.result() for f in futures]
    assert [r[0] for r in results] == _expected_sums(6)[1:]
    assert {r[2] for r in results} == {array.ctypes.data}


def crash_once_then_lend(marker: str, array: np.ndarray, i: int) -> tuple[float, bool, int, int]:
    if i == 2 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return lend(array, i)


def test_a_crashed_workers_replacement_inherits_the_array_too(tmp_path: Path) -> None:
    with lightwork.Executor(2, start_method="fork") as ex:
        fn = functools.partial(crash_once_then_lend, str(tmp_path / "crashed"), HUGE)
        results = list(ex.map(fn, range(4), chunksize=1))
        assert ex.statistics().workers_crashed == 1
    assert [r[0] for r in results] == _expected_sums(4)
    assert {r[2] for r in results} == {HUGE.ctypes.data}


def test_with_an_initializer_a_fork_pool_copies_the_array() -> None:
    # New workers per call would run the initializer again: the array is mapped instead.
    with lightwork.Executor(1, start_method="fork", initializer=abs, initargs=(-1,)) as ex:
        ((total, writeable, base),) = ex.starmap(inspect_slice, [(HUGE, 0)])
    assert (total, writeable) == (float(HUGE[:1000].sum()), False)
    assert base in ("mmap", "memoryview")  # a segment's mapping, not the parent's ndarray


def test_other_start_methods_copy_a_very_large_array() -> None:
    with lightwork.Executor(1, start_method="forkserver") as ex:
        ((total, _, base),) = ex.starmap(inspect_slice, [(HUGE, 0)])
    assert total == float(HUGE[:1000].sum()) and base in ("mmap", "memoryview")


def test_an_array_a_worker_did_not_inherit_is_an_error_not_a_value() -> None:
    from lightwork._backends._processes._mapped import inherited

    with pytest.raises(LookupError, match="forked before large array #-1 was registered"):
        inherited(-1)


# ---- a stream of arrays: only the chunks in flight are held ---------------------------------


def first(array: np.ndarray) -> float:
    return float(array[0])


class ArrayStream:
    """``count`` new 2 MiB arrays, recording how far reading ran ahead of the results."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.made = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self.count):
            self.made += 1
            yield np.full(ARRAY_THRESHOLD_BYTES * 2 // 8, float(i))


def _drain(results: Iterator[float], stream: ArrayStream, count: Callable[[], int]) -> int:
    """Check each result; the most arrays held (by ``count``) or read ahead meanwhile."""
    most = 0
    for i, value in enumerate(results):
        assert value == float(i)
        most = max(most, count(), stream.made - i)
    return most


def test_a_stream_of_arrays_holds_only_the_chunks_in_flight() -> None:
    from lightwork._core._chunking import MAX_CHUNK_BYTES

    stream = ArrayStream(300)  # 600 MiB in all
    # 2 workers x (look-ahead 2 + 2 held for order) chunks of MAX_CHUNK_BYTES at most
    bound = 8 * MAX_CHUNK_BYTES // (ARRAY_THRESHOLD_BYTES * 2)
    with lightwork.Executor(2) as ex:
        most = _drain(ex.imap(first, stream), stream, lambda: len(_segments()))
    assert most <= bound, f"{most} arrays held at once, more than the {bound} in flight"
    # no_segment_left checks that every segment went


def test_a_stream_of_arrays_lent_to_fork_workers_holds_only_those_in_flight(
    lend_small_arrays: None, no_copy: None
) -> None:
    from lightwork._backends._processes import _mapped
    from lightwork._core._chunking import MAX_CHUNK_BYTES

    stream = ArrayStream(120)
    bound = 8 * MAX_CHUNK_BYTES // (ARRAY_THRESHOLD_BYTES * 2)
    with lightwork.Executor(2, start_method="fork") as ex:
        most = _drain(ex.imap(first, stream), stream, lambda: len(_mapped.inheritable))
        assert _mapped.inheritable == {}
    assert most <= bound, f"{most} arrays held at once, more than the {bound} in flight"


def in_a_cycle(item: list[np.ndarray]) -> float:
    return float(item[0][0])


def test_arrays_freed_by_the_garbage_collector_are_released(
    lend_small_arrays: None, no_copy: None
) -> None:
    # Each argument is in a reference cycle: its array dies in a garbage collection, which can
    # start anywhere (inside lightwork's own bookkeeping too): nothing may deadlock.
    import gc

    from lightwork._backends._processes import _mapped

    def cycles(count: int) -> Iterator[list[Any]]:
        for i in range(count):
            item: list[Any] = [np.full(ARRAY_THRESHOLD_BYTES * 2 // 8, float(i))]
            item.append(item)
            yield item

    threshold = gc.get_threshold()
    gc.set_threshold(50)
    try:
        with lightwork.Executor(2, start_method="fork") as ex:
            assert list(ex.imap(in_a_cycle, cycles(150))) == [float(i) for i in range(150)]
    finally:
        gc.set_threshold(*threshold)
    assert _mapped.inheritable == {}


class Packed:
    """Pickles as an array made for the pickle: nothing else holds it."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return Packed.unpack, (np.frombuffer(self.data, dtype=np.uint8),)

    @staticmethod
    def unpack(array: np.ndarray) -> Packed:
        return Packed(array.tobytes())


def packed_size(packed: Packed, _: object = None) -> int:
    return len(packed.data)


@pytest.mark.parametrize("start_method", ["forkserver", "fork"])
def test_an_array_made_while_pickling_lives_until_the_worker_has_it(
    start_method: str, lend_small_arrays: None
) -> None:

    packed = Packed(b"x" * (2 * ARRAY_THRESHOLD_BYTES))
    with lightwork.Executor(1, start_method=start_method) as ex:
        assert ex.starmap(packed_size, [(packed, BIG)]) == [len(packed.data)]
        assert list(ex.map(functools.partial(packed_size, packed), [0])) == [len(packed.data)]


def hold(array: np.ndarray, seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_every_fork_pool_lets_go_of_a_lent_array() -> None:
    # A worker inherits every array lent when it forks, whichever pool lent it.
    from tasks import wait_gone

    with (
        lightwork.Executor(1, start_method="fork") as first,
        lightwork.Executor(1, start_method="fork") as second,
    ):
        array = HUGE.copy()
        quick, slow = first.submit(hold, array, 0.1), second.submit(hold, array, 0.4)
        lenders = [quick.result(), slow.result()]
        del array
        assert wait_gone(lenders, 5.0) == []


def span(_: object, seconds: float) -> tuple[float, float]:
    start = time.monotonic()
    time.sleep(seconds)
    return start, time.monotonic()


def test_a_worker_retired_while_busy_still_counts_against_max_workers() -> None:
    with lightwork.Executor(1, start_method="fork") as ex:
        lending = ex.submit(span, HUGE, 0.2)
        ahead = ex.submit(span, None, 0.6)  # runs on the worker that has the array
        lending.result()  # that worker is now retired, once idle
        time.sleep(0.05)
        after = ex.submit(span, None, 0.1)
        (_, ahead_end), (after_start, _) = ahead.result(), after.result()
    assert after_start >= ahead_end, "two tasks ran at once on a pool of one"


def test_a_future_cancelled_before_it_ran_releases_its_array() -> None:
    with lightwork.Executor(1) as ex:
        # Two tasks fill the worker and its look-ahead (a busy worker holds two): the third
        # waits in the parent, where cancelling it must still be possible.
        running = [ex.submit(time.sleep, 0.3) for _ in range(Backend.lookahead)]
        waiting = ex.submit(inspect_slice, BIG, 0)
        assert waiting.cancel()
        for future in running:
            future.result()
    # no_segment_left checks that its segment went
