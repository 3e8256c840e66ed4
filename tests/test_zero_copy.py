"""Large NumPy arrays reach process workers through shared memory, copied once per call."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import lightwork
from lightwork._backends._processes._arrays import ARRAY_THRESHOLD_BYTES

from conftest import MakeExecutor


def _segments() -> set[str]:
    return {name for name in os.listdir("/dev/shm") if name.startswith("psm_")}


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
                pid for pid in pids if "/dev/shm/psm_" in Path(f"/proc/{pid}/maps").read_text()
            ]
            if not mapped:
                break
            time.sleep(0.05)
        assert mapped == [], "a worker kept the call's array mapped"
