"""Measured chunking: how many tasks go to a worker in one message.

A chunk should take long enough to hide the cost of sending it (a few tens of microseconds of
pickling, a system call and a wake-up) and short enough that every worker stays busy to the end
of the job. :class:`ChunkSizer` steers toward :data:`TARGET_CHUNK_SECONDS` from the compute times
the workers report, and shrinks chunks as the known remainder of the input runs out, so the tail
is spread over all workers (guided self-scheduling). It is a pure object: it starts no worker and
reads no clock, so it is tested on its own.
"""

from __future__ import annotations

import math

# Long enough that a ~50 us dispatch cost is under 0.5% of a chunk; short enough that the last
# chunks end within a few tens of milliseconds of each other.
TARGET_CHUNK_SECONDS = 0.02
# Chunks per worker left in the remainder: below this the tail would leave workers idle.
TAIL_CHUNKS_PER_WORKER = 4
# The tail shrinks chunks no further than this: below it, dispatch costs more than imbalance.
MIN_CHUNK_SECONDS = 0.002
# Chunks last at least this many times the backend's cost of sending one (5%), and the tail's
# at least MIN_DISPATCH_SHARE times (25%).
DISPATCH_SHARE = 20
MIN_DISPATCH_SHARE = 4
# Where a chunk costs this much to send, the first chunks wait for a measurement instead of
# doubling blindly: each guess would cost a round trip through a scheduler.
CAUTIOUS_DISPATCH_SECONDS = 1e-3
# A chunk this long measures its tasks, not the fixed cost of running a chunk.
TRUSTED_MEASURE_SECONDS = 1e-3
# A chunk shorter than this measured mostly that fixed cost (a one-task chunk of a 70 ns task
# takes 1.5-10 us): its time per task is only an upper bound.
FIXED_COST_SECONDS = 50e-6
# Weight of the newest measurement: adapts within a few chunks, ignores a single outlier.
# Measurements are weighted by their task counts too, so a one-task chunk, whose time is mostly
# fixed cost, doesn't make tiny tasks look slow.
SMOOTHING = 0.3
# Before any measurement, chunk sizes double from 1: a slow task is found after one task, a tiny
# one within ~20 chunks.
GROWTH = 2
# Items in one chunk, at most: bounds the memory of items that are large but quick to process,
# at ~3 ms of the tiniest tasks (170 ns each), where dispatch costs 2-3%.
MAX_CHUNK = 1 << 14
# Bytes of large arrays that one chunk may bring, at most: a stream of arrays (images read from
# disk, say) keeps no more than a few chunks of them in flight, however quick the tasks.
MAX_CHUNK_BYTES = 32 << 20


class ChunkSizer:
    """Chooses the size of each next chunk.

    >>> sizer = ChunkSizer(workers=2, total=1000)
    >>> sizer.next_size(remaining=1000)  # nothing measured yet: start small
    1
    >>> sizer.record(tasks=10, seconds=0.001)  # 100 us a task
    >>> sizer.next_size(remaining=1000)  # 0.02 s / 100 us = 200, capped for the tail
    125
    >>> sizer.next_size(remaining=16)  # the tail shrinks, but not below 2 ms of work
    20
    """

    def __init__(
        self,
        workers: int,
        total: int | None = None,
        fixed: int | None = None,
        dispatch_seconds: float = 0.0,
        max_chunk: int = MAX_CHUNK,
    ) -> None:
        self.max_chunk = max_chunk
        self.workers = workers
        self.total = total
        self.fixed = fixed
        # A backend whose chunks cost more to send (a Dask task: milliseconds) needs longer ones.
        self.target_seconds = max(TARGET_CHUNK_SECONDS, DISPATCH_SHARE * dispatch_seconds)
        self.min_seconds = max(MIN_CHUNK_SECONDS, MIN_DISPATCH_SHARE * dispatch_seconds)
        self.cautious = dispatch_seconds >= CAUTIOUS_DISPATCH_SECONDS
        self.seconds_per_task: float | None = None
        self._longest = 0.0  # the longest chunk measured, seconds
        self._tasks = 0.0  # decayed sums of recent measurements
        self._seconds = 0.0
        self._unmeasured_size = 1
        self._unmeasured_chunks = 0
        self._byte_tasks = 0.0  # decayed sums of the large arrays' bytes that tasks brought
        self._bytes = 0.0

    def next_size(
        self, remaining: int | None = None, in_flight: int = 0, unfinished: int = 0
    ) -> int:
        """The size of the next chunk, given how many tasks remain to be sent (None if
        unknown), and how many chunks and tasks were sent and are not finished yet.

        0 means: send nothing more until a chunk has finished and been measured.
        """
        if self.cautious and self._longest < TRUSTED_MEASURE_SECONDS and in_flight >= self.workers:
            return 0  # a costly dispatch: first learn from one chunk per worker
        if self.fixed is not None:
            return self.fixed
        if self.seconds_per_task is None:
            # One single-task chunk per worker first, so slow tasks are spread at once.
            self._unmeasured_chunks += 1
            if self._unmeasured_chunks > self.workers:
                self._unmeasured_size = min(self._unmeasured_size * GROWTH, self.max_chunk)
            size = self._unmeasured_size
            floor = 1
        else:
            per_task = max(self.seconds_per_task, 1e-9)
            size = int(self.target_seconds / per_task)
            floor = int(self.min_seconds / per_task)
            if self.cautious and self._longest < FIXED_COST_SECONDS:
                # Tasks too quick to time yet: the tail rule, which needs their true time,
                # would cut chunks many times too small, each a round trip through a
                # scheduler. Give this chunk a worker's share of the tasks not yet finished
                # instead, at most the target at that bound; the next measurement (of a
                # chunk that long) is a true one.
                share = size
                if remaining is not None:
                    share = math.ceil((remaining + unfinished) / self.workers)
                floor = max(floor, min(size, share))
        if remaining is not None:
            tail = math.ceil(remaining / (self.workers * TAIL_CHUNKS_PER_WORKER))
            size = min(size, max(tail, floor))
        if self._bytes >= 1.0:  # (it decays toward 0 once tasks bring no new arrays)
            size = min(size, int(MAX_CHUNK_BYTES * self._byte_tasks / self._bytes))
        return max(1, min(size, self.max_chunk))

    def record_bytes(self, tasks: int, nbytes: int) -> None:
        """Learn that ``tasks`` tasks brought ``nbytes`` of large arrays not seen before
        (copied to shared memory or lent to workers): measured chunks bring at most
        :data:`MAX_CHUNK_BYTES` of them (a chunksize that the caller fixed is kept). The same
        array in every task counts once.

        >>> sizer = ChunkSizer(workers=2)
        >>> sizer.record(tasks=100, seconds=0.0001)  # 1 us a task: 16384 would be 20 ms
        >>> sizer.record_bytes(tasks=1, nbytes=8 << 20)  # but each brings an 8 MiB array
        >>> sizer.next_size()
        4
        """
        if tasks > 0:
            keep = 1.0 - SMOOTHING
            self._byte_tasks = keep * self._byte_tasks + tasks
            self._bytes = keep * self._bytes + max(nbytes, 0)

    def record(self, tasks: int, seconds: float) -> None:
        """Learn from a finished chunk: ``tasks`` tasks took ``seconds`` of compute."""
        if tasks <= 0:
            return
        self._longest = max(self._longest, seconds)
        keep = 1.0 - SMOOTHING
        self._tasks = keep * self._tasks + tasks
        self._seconds = keep * self._seconds + max(seconds, 0.0)
        self.seconds_per_task = self._seconds / self._tasks
