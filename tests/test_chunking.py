"""The chunk-sizing policy, on its own: no worker is started here."""

from __future__ import annotations

from lightwork._core._chunking import (
    MAX_CHUNK,
    MAX_CHUNK_BYTES,
    MIN_CHUNK_SECONDS,
    TAIL_CHUNKS_PER_WORKER,
    TARGET_CHUNK_SECONDS,
    ChunkSizer,
)


def test_fixed_chunksize_is_used_as_given() -> None:
    sizer = ChunkSizer(workers=4, fixed=7)
    sizer.record(tasks=1000, seconds=0.0001)
    assert [sizer.next_size(remaining=100) for _ in range(3)] == [7, 7, 7]


def test_first_chunk_per_worker_is_a_single_task() -> None:
    sizer = ChunkSizer(workers=3)
    assert [sizer.next_size() for _ in range(3)] == [1, 1, 1]


def test_unmeasured_sizes_double_after_one_task_per_worker() -> None:
    sizer = ChunkSizer(workers=2)
    assert [sizer.next_size() for _ in range(6)] == [1, 1, 2, 4, 8, 16]


def test_measured_size_aims_at_the_target_duration() -> None:
    sizer = ChunkSizer(workers=2)
    sizer.record(tasks=100, seconds=100 * 0.001)  # 1 ms a task
    assert sizer.next_size() == round(TARGET_CHUNK_SECONDS / 0.001)


def test_slow_tasks_go_one_at_a_time() -> None:
    sizer = ChunkSizer(workers=2)
    sizer.record(tasks=1, seconds=2.0)
    assert sizer.next_size(remaining=None) == 1
    assert sizer.next_size(remaining=1000) == 1


def test_tiny_tasks_are_capped_at_max_chunk() -> None:
    sizer = ChunkSizer(workers=2)
    sizer.record(tasks=100_000, seconds=0.001)  # 10 ns a task
    assert sizer.next_size() == MAX_CHUNK


def test_tasks_bringing_large_arrays_get_chunks_of_at_most_max_chunk_bytes() -> None:
    sizer = ChunkSizer(workers=2)
    sizer.record(tasks=100_000, seconds=0.001)  # tiny tasks...
    sizer.record_bytes(tasks=4, nbytes=4 * (2 << 20))  # ...each with a new 2 MiB array
    assert sizer.next_size() == MAX_CHUNK_BYTES // (2 << 20)
    before = [sizer.next_size() for _ in range(3)]
    for _ in range(40):  # then the same array in every task: no new bytes
        sizer.record_bytes(tasks=16, nbytes=0)
    assert before == [16, 16, 16] and sizer.next_size() == MAX_CHUNK


def test_chunks_without_new_arrays_for_long_still_get_a_size() -> None:
    sizer = ChunkSizer(workers=2)
    sizer.record(tasks=100, seconds=1.0)  # 10 ms a task: 2 a chunk
    sizer.record_bytes(tasks=1, nbytes=400 << 20)  # the one array, then never a new one
    for _ in range(5000):
        sizer.record_bytes(tasks=2, nbytes=0)
    assert sizer.next_size() == 2


def test_a_fixed_chunksize_is_kept_whatever_the_arrays() -> None:
    sizer = ChunkSizer(workers=2, fixed=500)
    sizer.record_bytes(tasks=1, nbytes=1 << 30)
    assert sizer.next_size() == 500


def test_tail_shrinks_chunks_to_keep_every_worker_busy() -> None:
    sizer = ChunkSizer(workers=2, total=10_000)
    sizer.record(tasks=100, seconds=0.01)  # 100 us a task: target 200 a chunk
    assert sizer.next_size(remaining=10_000) == 200
    tail = sizer.next_size(remaining=400)
    assert tail == max(400 // (2 * TAIL_CHUNKS_PER_WORKER), round(MIN_CHUNK_SECONDS / 1e-4))
    assert tail < 200


def test_tail_never_shrinks_below_the_minimum_duration() -> None:
    sizer = ChunkSizer(workers=2)
    sizer.record(tasks=10_000, seconds=0.001)  # 100 ns a task
    assert sizer.next_size(remaining=100) >= round(MIN_CHUNK_SECONDS / 1e-7) // 2


def test_measurements_are_weighted_by_task_count() -> None:
    sizer = ChunkSizer(workers=2)
    sizer.record(tasks=1, seconds=0.001)  # one task, mostly fixed cost
    sizer.record(tasks=10_000, seconds=0.01)  # 1 us a task
    assert sizer.seconds_per_task is not None
    assert sizer.seconds_per_task < 2e-6


def test_policy_adapts_when_tasks_get_slower() -> None:
    sizer = ChunkSizer(workers=2)
    sizer.record(tasks=1000, seconds=0.001)
    fast = sizer.next_size()
    for _ in range(10):
        sizer.record(tasks=10, seconds=0.1)
    assert sizer.next_size() < fast / 100


def test_a_costly_dispatch_sends_one_task_per_worker_until_a_chunk_is_measured() -> None:
    sizer = ChunkSizer(workers=2, total=1000, dispatch_seconds=0.01)
    assert [sizer.next_size(1000, in_flight=n) for n in (0, 1)] == [1, 1]
    assert sizer.next_size(998, in_flight=2) == 0  # a round trip per guess: wait instead
    sizer.record(tasks=1, seconds=0.05)  # 50 ms a task: long enough to trust
    assert sizer.next_size(998, in_flight=2) == 4  # 20 dispatches of work, 0.2 s


def test_a_costly_dispatch_shares_tasks_too_quick_to_time_between_workers() -> None:
    # A one-task chunk of a 70 ns task measures the chunk's fixed cost, ~8 us: an upper bound.
    sizer = ChunkSizer(workers=2, total=100_000, dispatch_seconds=0.02, max_chunk=1 << 16)
    sizer.record(tasks=1, seconds=8e-6)  # one probe is back, the other still out
    # A worker's share of what is unfinished (0.4 s at that bound at most), where the tail
    # rule would have cut it to 100,000 / 8: fewer round trips through the scheduler.
    assert sizer.next_size(99_998, in_flight=1, unfinished=1) == 50_000
    sizer.record(tasks=1, seconds=8e-6)  # the other probe is back; the 50,000 still run
    assert sizer.next_size(49_998, in_flight=1, unfinished=50_000) == 49_999
    cheap = ChunkSizer(workers=2, total=10_000, max_chunk=1 << 16)
    cheap.record(tasks=1, seconds=8e-6)  # a cheap dispatch keeps the tail rule throughout
    assert cheap.next_size(10_000) == 10_000 // (2 * TAIL_CHUNKS_PER_WORKER)


def test_a_costly_dispatch_still_balances_tasks_it_can_nearly_time() -> None:
    sizer = ChunkSizer(workers=2, total=10_000, dispatch_seconds=0.02, max_chunk=1 << 16)
    sizer.record(tasks=1, seconds=28e-6)  # 20 us tasks: their probe says 28 us
    assert sizer.next_size(9_999, in_flight=1, unfinished=1) == 5_000  # half, not all


def test_a_cheap_dispatch_never_waits_for_a_measurement() -> None:
    sizer = ChunkSizer(workers=2)
    assert all(sizer.next_size(in_flight=n) > 0 for n in range(10))
