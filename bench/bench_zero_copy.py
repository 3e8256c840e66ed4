"""A large NumPy array sent to process workers: time and memory, side by side in one run.

    cd /work/main && .venv/bin/python bench/bench_zero_copy.py              # ~1-2 minutes
    cd /work/main && .venv/bin/python bench/bench_zero_copy.py --quick      # smoke run, < 20 s
    cd /work/main && .venv/bin/python bench/bench_zero_copy.py --markdown   # Markdown tables

A 400 MB float64 array (all ones) goes to 8 tasks; task i sums the i-th eighth. Every method
uses 2 worker processes, started and warmed before anything is measured:

* ``lightwork.map(partial(f, array), range(8), max_workers=2)`` and
  ``lightwork.starmap(f, [(array, i) for i in range(8)], max_workers=2)``: plain arrays above
  1 MiB are copied into shared memory once per call;
* the same two with a ``lightwork.SharedArray`` (the task reads ``shared.array``): no copy;
* the same two on ``lightwork.Executor(2, start_method="fork")``: an array of 64 MiB or more is
  not copied at all; the call's tasks run on workers forked for it, which have the array
  already (copy-on-write) and retire when the call ends;
* ``multiprocessing.Pool(2).map(partial(f, array), range(8))`` (forkserver): the array is
  pickled into every task. It is measured on an array 8 times smaller and its time multiplied
  by 8 (pickling and piping are linear in the bytes; at full size one call takes ~10 s);
* ``joblib.Parallel(n_jobs=2)(delayed(f)(array, i) ...)``: loky, its automatic memmapping of
  arrays above 1 MB (a fresh ``Parallel`` per call, as usually written; loky's workers stay warm);
* hand-written ``multiprocessing.shared_memory``: the array is made in a segment, the workers
  of a ``multiprocessing.Pool(2)`` attach it by name;
* a floor, not a method: a new segment and one copy of the plain array into it, written into
  the segment's file (the fastest copy measured here: twice as fast as ``np.copyto`` through a
  mapping, which takes a page fault per 4 KiB), the least any method that starts from an
  ordinary array must do.

Time: the call only; every method that receives an existing array gets it made before the
clock starts. For SharedArray and the hand-written segment, making and filling the array is
timed apart ("make+fill"; for the plain arrays that column is ``np.full``'s time). Median and
min over interleaved rounds whose order rotates.

Memory, in a separate pass (so that sampling does not slow the timed rounds): a thread sums the
PSS (``/proc/<pid>/smaps_rollup``, what psutil's ``memory_full_info().pss`` reads) of this
process and of every descendant every 20 ms, counting shared pages once; the table gives the
peak minus the total before the array existed, as a multiple of the array's size. "peak+shm"
also counts the pages of our files in /dev/shm that no process maps at that moment (joblib
writes its memmap file and workers map only what they read), which PSS cannot see. "left" is
what remains above the baseline once the call has returned and the array has been deleted
(closed, unlinked) and garbage-collected.

Targets (for lightwork's rows): total memory under 1.3x the array's size; time within 3x of
the hand-written shared_memory version.
"""

from __future__ import annotations

import functools
import gc
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from typing import Any

import _measure
import numpy as np
from _measure import (
    MemorySampler,
    Table,
    fmt_s,
    fmt_x,
    log,
    med,
    memory_now,
    slice_bounds,
    sum_shared_slice,
    sum_shm_slice,
    sum_slice,
    verdict,
)

import lightwork

PARTS = 8
WORKERS = 2
# Pool.map pickles the array per task: at full size it is measured on n / 8, its time x 8.
FULL = {"n": 50_000_000, "rounds": 7, "pool_shrink": 8}  # 400 MB of float64
QUICK = {"n": 5_000_000, "rounds": 2, "pool_shrink": 1}  # 40 MB
MEMORY_TARGET = 1.3
TIME_TARGET = 3.0


@dataclass
class Method:
    """One row: ``make(n)`` returns (input, its release function); ``call(input, n)`` runs."""

    label: str
    make: Callable[[int], tuple[Any, Callable[[], None]]]
    call: Callable[[Any, int], list[float]]
    lightwork: bool = False
    shrink: int = 1
    sums: bool = True  # False: a reference row that does not do the task (the copy floor)
    make_times: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    memory: dict[str, float] = field(default_factory=dict)


def make_plain(n: int) -> tuple[Any, Callable[[], None]]:
    return np.full(n, 1.0), lambda: None


def make_shared_array(n: int) -> tuple[Any, Callable[[], None]]:
    shared = lightwork.SharedArray(n, "float64", fill=1.0)
    return shared, shared.close


def make_segment(n: int) -> tuple[Any, Callable[[], None]]:
    segment = shared_memory.SharedMemory(create=True, size=n * 8)
    view = np.ndarray((n,), dtype=np.float64, buffer=segment.buf)
    view[...] = 1.0
    del view

    def release() -> None:
        segment.close()
        segment.unlink()

    return segment, release


def check(label: str, out: list[float], n: int) -> None:
    expected = [float(hi - lo) for lo, hi in (slice_bounds(n, PARTS, i) for i in range(PARTS))]
    if list(out) != expected:
        raise AssertionError(f"{label}: wrong sums {out[:3]}...")


def methods(pool: Any, pool_shrink: int, forked: lightwork.Executor) -> list[Method]:
    import joblib

    def lw_partial(array: Any, n: int) -> list[float]:
        return lightwork.map(functools.partial(sum_slice, array), range(PARTS), max_workers=WORKERS)

    def lw_starmap(array: Any, n: int) -> list[float]:
        return lightwork.starmap(sum_slice, [(array, i) for i in range(PARTS)], max_workers=WORKERS)

    def lw_fork_partial(array: Any, n: int) -> list[float]:
        return list(forked.map(functools.partial(sum_slice, array), range(PARTS)))

    def lw_fork_starmap(array: Any, n: int) -> list[float]:
        return forked.starmap(sum_slice, [(array, i) for i in range(PARTS)])

    def lw_shared_partial(shared: Any, n: int) -> list[float]:
        fn = functools.partial(sum_shared_slice, shared)
        return lightwork.map(fn, range(PARTS), max_workers=WORKERS)

    def lw_shared_starmap(shared: Any, n: int) -> list[float]:
        args = [(shared, i) for i in range(PARTS)]
        return lightwork.starmap(sum_shared_slice, args, max_workers=WORKERS)

    def pool_map(array: Any, n: int) -> list[float]:
        return pool.map(functools.partial(sum_slice, array), range(PARTS))

    def joblib_parallel(array: Any, n: int) -> list[float]:
        return joblib.Parallel(n_jobs=WORKERS)(
            joblib.delayed(sum_slice)(array, i) for i in range(PARTS)
        )

    def hand_written(segment: Any, n: int) -> list[float]:
        return pool.starmap(sum_shm_slice, [(segment.name, n, i) for i in range(PARTS)])

    def copy_floor(array: Any, n: int) -> list[float]:
        """What any path that starts from a plain array must do at least once: copy it into
        memory that other processes can map. No workers, no sums."""
        segment = shared_memory.SharedMemory(create=True, size=array.nbytes)
        try:
            data = memoryview(array.reshape(-1).view(np.uint8))
            fd = os.open(f"/dev/shm/{segment.name.lstrip('/')}", os.O_WRONLY)
            try:
                offset = 0
                while offset < len(data):
                    offset += os.pwrite(fd, data[offset : offset + (64 << 20)], offset)
            finally:
                os.close(fd)
        finally:
            segment.close()
            segment.unlink()
        return []

    return [
        Method("lightwork.map(partial(f, array))", make_plain, lw_partial, lightwork=True),
        Method("lightwork.starmap(f, [(array, i)])", make_plain, lw_starmap, lightwork=True),
        Method("Executor(fork).map(partial(f, array))", make_plain, lw_fork_partial, True),
        Method("Executor(fork).starmap(f, [(array, i)])", make_plain, lw_fork_starmap, True),
        Method(
            "lightwork.map(partial(f, SharedArray))", make_shared_array, lw_shared_partial, True
        ),
        Method(
            "lightwork.starmap(f, [(SharedArray, i)])", make_shared_array, lw_shared_starmap, True
        ),
        Method("multiprocessing.Pool.map (pickles)", make_plain, pool_map, shrink=pool_shrink),
        Method("joblib.Parallel (loky memmapping)", make_plain, joblib_parallel),
        Method(
            "floor: one copy of the array into shm, no tasks", make_plain, copy_floor, sums=False
        ),
        Method("hand-written shared_memory + Pool", make_segment, hand_written),
    ]


def run_once(method: Method, n: int) -> tuple[float, float]:
    """(make+fill seconds, call seconds): input made before the clock, released after."""
    n = n // method.shrink
    start = time.perf_counter()
    data, release = method.make(n)
    made = time.perf_counter() - start
    start = time.perf_counter()
    out = method.call(data, n)
    seconds = time.perf_counter() - start
    if method.sums:
        check(method.label, out, n)
    del data, out
    release()
    gc.collect()
    return made, seconds


def warm_lightwork_pool() -> None:
    """Start every worker of the pool behind lightwork.map and import NumPy in each."""
    from lightwork._engine import _api

    with _api.warm_executor("processes", WORKERS) as executor:
        executor.start()
    pids = lightwork.map(_measure.warm_numpy, range(4 * WORKERS), max_workers=WORKERS, chunksize=1)
    if len(set(pids)) != WORKERS:
        log(f"  warning: lightwork's warm-up reached {len(set(pids))} of {WORKERS} workers")


def fresh_lightwork_pool() -> None:
    """Shut the pool behind lightwork.map down and warm a new one: its workers start with no
    mapping left over from earlier rows (see "left"), so each row's pass starts clean."""
    from lightwork._engine import _api

    _api._shutdown_warm_pools()
    warm_lightwork_pool()


def memory_pass(method: Method, n: int) -> None:
    fresh_lightwork_pool()
    n = n // method.shrink
    nbytes = n * 8
    gc.collect()
    time.sleep(0.05)
    with MemorySampler(0.02) as sampler:
        data, release = method.make(n)
        sampler.take()  # the input alone
        out = method.call(data, n)
        sampler.take()  # what the call left mapped, before the input is released
        if method.sums:
            check(method.label, out, n)
        del data, out
        release()
        gc.collect()
    time.sleep(0.1)  # workers' own garbage collection, if any, had its chance
    left = memory_now().accounted - sampler.baseline.accounted
    method.memory = {
        "pss": sampler.pss_growth / nbytes,
        "accounted": sampler.accounted_growth / nbytes,
        "left": left / nbytes,
        "samples": sampler.samples,
    }


def main() -> int:
    args = _measure.parse_args(__doc__)
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        cfg["rounds"] = args.rounds
    n = cfg["n"]
    nbytes = n * 8
    header = _measure.machine_line() + "\n" + _measure.cpu_check()
    log(header)
    started = time.perf_counter()

    import joblib

    # Warm every pool, every worker started and NumPy imported in each: lightwork's (the pool
    # behind lightwork.map), a forkserver Pool (the pickling row and the hand-written row),
    # loky's reusable executor (joblib).
    warm_lightwork_pool()
    pool = multiprocessing.get_context("forkserver").Pool(WORKERS)
    pool.map(_measure.warm_numpy, range(4 * WORKERS), chunksize=1)
    joblib.Parallel(n_jobs=WORKERS, batch_size=1)(
        joblib.delayed(_measure.warm_numpy)(i) for i in range(4 * WORKERS)
    )

    forked = lightwork.Executor(WORKERS, start_method="fork")
    forked.map(_measure.warm_numpy, range(4 * WORKERS), chunksize=1)
    rows = methods(pool, cfg["pool_shrink"], forked)
    try:
        for r in range(cfg["rounds"]):
            # Outside the clocks: new, warm lightwork workers each round, so that what earlier
            # calls left mapped in them (see "left") is freed, not carried into later rows.
            fresh_lightwork_pool()
            shift = r % len(rows)
            for method in rows[shift:] + rows[:shift]:
                made, seconds = run_once(method, n)
                method.make_times.append(made)
                method.times.append(seconds * method.shrink)
            log(f"  round {r + 1}/{cfg['rounds']} done")
        log("  memory pass")
        for method in rows:
            memory_pass(method, n)
    finally:
        pool.close()
        forked.shutdown()
        pool.join()

    hand = rows[-1]
    reference = med(hand.times)
    table = Table(
        f"{nbytes / 1e6:.0f} MB float64 array, {PARTS} tasks each summing 1/{PARTS}, "
        f"{WORKERS} workers",
        [
            "method",
            "make+fill",
            "call median",
            "call min",
            "x hand-written",
            "peak PSS",
            "peak+shm",
            "left",
        ],
    )
    targets = Table("Targets (lightwork rows)", ["target", "row", "measured", "verdict"])
    for method in rows:
        made = med(method.make_times) * (method.shrink if method.shrink > 1 else 1)
        table.add(
            method.label + (f" [n/{method.shrink}, x{method.shrink}]" if method.shrink > 1 else ""),
            fmt_s(made),
            fmt_s(med(method.times)),
            fmt_s(min(method.times)),
            fmt_x(med(method.times) / reference),
            fmt_x(method.memory["pss"]),
            fmt_x(method.memory["accounted"]),
            fmt_x(method.memory["left"]),
        )
        if method.lightwork:
            peak = method.memory["accounted"]
            targets.add(
                f"memory < {MEMORY_TARGET}x array",
                method.label,
                fmt_x(peak),
                verdict(peak < MEMORY_TARGET),
            )
            ratio = med(method.times) / reference
            targets.add(
                f"time <= {TIME_TARGET:g}x hand-written",
                method.label,
                fmt_x(ratio),
                verdict(ratio <= TIME_TARGET),
            )
    table.notes += [
        f"{cfg['rounds']} interleaved rounds; memory from one separate pass per row, sampled "
        f"every 20 ms (a shorter peak can be missed); memory columns are multiples of the "
        "row's own array size",
        "make+fill of the plain-array rows is np.full(n, 1.0), outside their clocks; for the "
        "SharedArray and hand-written rows it is the shared array's creation and fill, also "
        "outside the clock",
        f"Pool.map pickles the array into each of the {PARTS} tasks"
        + (
            f": measured on an array {shrink}x smaller ({nbytes / shrink / 1e6:.0f} MB), its "
            f"times x{shrink} (its make+fill too); its memory multiples are of that smaller array"
            if (shrink := cfg["pool_shrink"]) > 1
            else ""
        ),
        "lightwork.map's plain-array rows (forkserver, the default start method) copy the array "
        "into shared memory once per call: the original plus that copy is ~2x by design; the "
        "fork rows copy nothing (workers forked for the call inherit the array, and their fork "
        "is inside the clock), nor do the SharedArray rows",
        "floor: a new shared-memory segment and one copy of the plain array into it (pwrite "
        "into its file, as lightwork does), no workers: the least that any method starting "
        "from an ordinary (private) array must do once, since running workers cannot map "
        "another process's private memory (only a process forked from it sees it); the "
        "hand-written row's array was made in shared memory before its clock",
        "peak PSS sums per-process PSS read one process after another, which races with "
        "mappings made in between (it can count a segment 1.1-1.3x); peak+shm counts every "
        "/dev/shm file of ours once at its size, mapped or not (joblib's memmap file is "
        "invisible to PSS where no worker maps it), and the rest by PSS: the targets use it",
        "left: after the call returned and the array was deleted or closed: lightwork's workers "
        "still map the call's segment (a function holding an array stays in each worker's "
        "cache of functions; a worker keeps its last chunk's arguments until its next task; a "
        "closed SharedArray stays mapped until the worker attaches another segment)",
        "each timing round starts with a new warm lightwork pool (outside the clocks), so that "
        "memory left by earlier calls does not build up across rounds",
    ]
    _measure.print_report(
        header,
        _measure.versions("lightwork", "numpy", "joblib"),
        (table, targets),
        started,
        args.markdown,
    )
    return 0


if __name__ == "__main__":
    _measure.put_bench_dir_on_child_path()
    sys.exit(main())
