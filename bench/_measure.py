"""Shared helpers for bench_async, bench_zero_copy, bench_pi, bench_auto and bench_dask.

Tables (plain and Markdown), interleaved side-by-side timing (median and min over rounds whose
order rotates, so that a drift in clock speed or a neighbour's load hits every row alike), a
memory sampler (PSS of this process and all its descendants), and the few task functions that
other libraries' workers must import by reference.

Kept importable with the standard library only at the top (NumPy is imported inside the
functions that need it), so worker processes unpickle these functions cheaply: the scripts put
this folder on ``PYTHONPATH`` and on ``sys.path`` for their children.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def put_bench_dir_on_child_path() -> None:
    """Children of any start method (forkserver, spawn, loky, dask) can import this module."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if BENCH_DIR not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([BENCH_DIR, *paths])
    if BENCH_DIR not in sys.path:
        sys.path.insert(0, BENCH_DIR)


# ---- command line -----------------------------------------------------------------------------


def parse_args(doc: str | None, argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(doc or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run, under ~20 s")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--rounds", type=int, default=None, help="override the rounds")
    return parser.parse_args(argv)


def compile_lightwork() -> None:
    """Write lightwork's bytecode before measuring, as installing a wheel does.

    This project installs lightwork editable, and its machine sets PYTHONDONTWRITEBYTECODE=1:
    without this, every interpreter, fork server and spawned worker would compile lightwork's
    modules from source (~20 ms more per start) while the peers' modules load from bytecode.
    """
    import compileall

    import lightwork

    compileall.compile_dir(str(Path(lightwork.__file__).parent), quiet=1)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine_line() -> str:
    """Python, platform, usable CPUs and the load average now."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{cpus} CPUs usable, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def versions(*names: str) -> str:
    from importlib import metadata

    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


# ---- tables -----------------------------------------------------------------------------------


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    text_columns: tuple[str, ...] = (
        "note",
        "chose",
        "auto chose",
        "reason",
        "target",
        "verdict",
        "fastest",
        "row",
        "backend",
        "pulled in",
    )

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def render(self, markdown: bool) -> str:
        return self.markdown() if markdown else self.plain()

    def plain(self) -> str:
        widths = [
            max(len(str(cell)) for cell in column)
            for column in zip(self.columns, *self.rows, strict=True)
        ]
        lines = [self.title, "=" * len(self.title)]
        lines.append(self._line(self.columns, widths))
        lines.append("  ".join("-" * w for w in widths))
        lines += [self._line(row, widths) for row in self.rows]
        lines += [f"  * {note}" for note in self.notes]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        aligns = [
            " --- " if i == 0 or name in self.text_columns else " ---: "
            for i, name in enumerate(self.columns)
        ]
        lines.append("|" + "|".join(aligns) + "|")
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines)

    def _line(self, cells: Sequence[str], widths: Sequence[int]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 or name in self.text_columns else str(c).rjust(w)
            for i, (c, w, name) in enumerate(zip(cells, widths, self.columns, strict=True))
        ).rstrip()


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_x(ratio: float | None, digits: int = 2) -> str:
    return "-" if ratio is None else f"{ratio:.{digits}f}x"


def fmt_rate(per_second: float) -> str:
    if per_second >= 1e9:
        return f"{per_second / 1e9:.2f} G/s"
    if per_second >= 1e6:
        return f"{per_second / 1e6:.1f} M/s"
    return f"{per_second / 1e3:.1f} k/s"


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def med(values: Sequence[float]) -> float:
    return statistics.median(values)


# ---- side-by-side timing ----------------------------------------------------------------------

# A variant is called once per round and returns the seconds it measured (it may time only part
# of what it does: setup such as creating an input array stays outside the clock).
Measure = Callable[[], float]


def stopwatch(fn: Callable[[], object]) -> Measure:
    """A variant that times the whole of ``fn()``."""

    def measure() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return measure


def interleaved(
    variants: dict[str, Measure],
    rounds: int,
    *,
    label: str = "",
    scale: dict[str, float] | None = None,
) -> dict[str, list[float]]:
    """Run every variant once per round, rotating the order each round; times x ``scale``."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = variants[name]()
            times[name].append(seconds * (scale or {}).get(name, 1.0))
        log(f"  {label} round {r + 1}/{rounds} done")
    return times


# ---- memory: PSS of this process and every descendant -----------------------------------------

SHM_DIR = "/dev/shm"


def _rollup(pid: int) -> tuple[int, int]:
    """(Pss, Pss_Shmem) in bytes from /proc/<pid>/smaps_rollup: its Pss is the number psutil's
    ``memory_full_info().pss`` reads from the same file; (0, 0) if the process is gone."""
    pss = shmem = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    pss = int(line.split()[1]) * 1024
                elif line.startswith(b"Pss_Shmem:"):
                    shmem = int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return pss, shmem


def _mapped_shm_files(pid: int, into: dict[tuple[int, int], int]) -> None:
    """Add {(device, inode): allocated bytes} of every /dev/shm file process ``pid`` maps,
    deleted (unlinked, still mapped) or not: stat through /proc/<pid>/map_files."""
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            lines = [line for line in f if b" /dev/shm/" in line]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return
    for line in lines:
        fields = line.split()
        try:
            st = os.stat(f"/proc/{pid}/map_files/{fields[0].decode()}")
        except OSError:
            continue
        into[(st.st_dev, st.st_ino)] = st.st_blocks * 512


def _named_shm_files(pid: int, into: dict[tuple[int, int], int]) -> None:
    """Add the /dev/shm files named after our pid, mapped or not: joblib's memmapping folder
    (``joblib_memmapping_folder_<pid>_...``), lightwork's segments (``lightwork-<pid>-...``)."""
    tag_a, tag_b = f"_{pid}_", f"-{pid}-"
    try:
        entries = [e for e in os.scandir(SHM_DIR) if tag_a in e.name or tag_b in e.name]
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                for root, _, files in os.walk(entry.path):
                    for name in files:
                        try:
                            st = os.stat(os.path.join(root, name))
                        except OSError:
                            continue
                        into[(st.st_dev, st.st_ino)] = st.st_blocks * 512
            else:
                st = entry.stat(follow_symlinks=False)
                into[(st.st_dev, st.st_ino)] = st.st_blocks * 512
        except OSError:
            pass


@dataclass
class MemorySample:
    pss: int  # sum of PSS over this process and its descendants
    # Race-free and complete for shared memory: the PSS of everything but shared memory, plus
    # each of our /dev/shm files once, at its allocated size, whoever maps it, if anyone.
    accounted: int
    processes: int


def memory_now() -> MemorySample:
    """This process and all its descendants, now.

    Summing PSS over processes read one after the other races with mappings that change in
    between (a segment read in full in the parent, then again as shares in a worker that has
    just mapped it), which can overstate a peak by up to a segment. ``accounted`` takes shared
    memory out of the per-process sums and counts each shared file once by its size instead.
    """
    import psutil

    me = psutil.Process()
    try:
        children = me.children(recursive=True)
    except psutil.Error:
        children = []
    pids = [me.pid, *(c.pid for c in children)]
    pss = private = 0
    files: dict[tuple[int, int], int] = {}
    for pid in pids:
        p, shmem = _rollup(pid)
        pss += p
        private += p - shmem
        _mapped_shm_files(pid, files)
    _named_shm_files(me.pid, files)
    return MemorySample(pss, private + sum(files.values()), len(pids))


class MemorySampler:
    """Samples :func:`memory_now` every ``interval`` seconds in a thread; keeps the peaks."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.baseline = memory_now()
        self.peak_pss = self.baseline.pss
        self.peak_accounted = self.baseline.accounted
        self.samples = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.take()

    def take(self) -> None:
        """Sample now (the thread samples on its own too)."""
        sample = memory_now()
        with self._lock:
            self._record(sample)

    def _record(self, sample: MemorySample) -> None:
        self.samples += 1
        self.peak_pss = max(self.peak_pss, sample.pss)
        self.peak_accounted = max(self.peak_accounted, sample.accounted)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.take()

    @property
    def pss_growth(self) -> int:
        return self.peak_pss - self.baseline.pss

    @property
    def accounted_growth(self) -> int:
        return self.peak_accounted - self.baseline.accounted


# ---- task functions that workers import by reference -------------------------------------------


def noop(x: Any) -> Any:
    return x


def warm_numpy(x: Any) -> int:
    """A warm-up task: imports NumPy in the worker and lasts long enough (20 ms) that every
    worker of a pool gets one of a few such tasks. Returns the worker's pid."""
    import numpy  # noqa: F401

    time.sleep(0.02)
    return os.getpid()


def slice_bounds(n: int, parts: int, i: int) -> tuple[int, int]:
    return n * i // parts, n * (i + 1) // parts


def sum_slice(array: Any, i: int, parts: int = 8) -> float:
    """Sum the ``i``-th of ``parts`` slices of a plain (or memory-mapped) NumPy array."""
    lo, hi = slice_bounds(len(array), parts, i)
    return float(array[lo:hi].sum())


def sum_shared_slice(shared: Any, i: int, parts: int = 8) -> float:
    """The same on a ``lightwork.SharedArray``: its ``.array`` is the shared memory."""
    return sum_slice(shared.array, i, parts)


def sum_shm_slice(name: str, n: int, i: int, parts: int = 8) -> float:
    """Hand-written: attach a ``multiprocessing.shared_memory`` segment by name, sum a slice."""
    from multiprocessing import shared_memory

    import numpy as np

    segment = shared_memory.SharedMemory(name=name)
    try:
        array = np.ndarray((n,), dtype=np.float64, buffer=segment.buf)
        lo, hi = slice_bounds(n, parts, i)
        total = float(array[lo:hi].sum())
        del array
    finally:
        segment.close()
    return total


# bench_auto's workloads (module level, so every backend runs the same code by reference)

_SORT_INPUT: Any = None


def py_loop(n: int) -> int:
    """Pure-Python CPU-bound: sum n ints in an interpreted loop (holds the GIL)."""
    total = 0
    for i in range(n):
        total += i
    return total


def numpy_sort(size: int) -> float:
    """NumPy that releases the GIL: sort a copy of a random array of ``size`` (made once per
    process, so the task is the sort); returns its median element."""
    global _SORT_INPUT
    import numpy as np

    if _SORT_INPUT is None or len(_SORT_INPUT) != size:
        _SORT_INPUT = np.random.default_rng(0).random(size)
    return float(np.sort(_SORT_INPUT)[size // 2])


def sleep_io(seconds: float) -> float:
    """Waiting, as for I/O."""
    time.sleep(seconds)
    return seconds


def square(x: int) -> int:
    return x * x


def numpy_pi_loop(samples: int, seed: int) -> tuple[int, float]:
    """A fixed NumPy Monte Carlo loop (lightwork's single-core kernel called directly, no pool):
    the work of the machine's-ceiling runs. Returns (inside, seconds)."""
    import numpy as np

    from lightwork.workloads import count_inside_numpy

    start = time.perf_counter()
    inside = count_inside_numpy(np.random.default_rng(seed), samples)
    return inside, time.perf_counter() - start


def python_pi_loop(samples: int, seed: int) -> tuple[int, float]:
    """The pure-Python kernel called directly: the python ceiling's work."""
    import random

    from lightwork.workloads import count_inside_python

    start = time.perf_counter()
    inside = count_inside_python(random.Random(seed), samples)
    return inside, time.perf_counter() - start


def _ceiling_child(kind: str, samples: int, seed: int, ready: Any, go: Any, out: Any) -> None:
    loop = numpy_pi_loop if kind == "numpy" else python_pi_loop
    loop(min(samples, 1 << 16), seed)  # import and warm the kernel before the start signal
    ready.put(os.getpid())
    go.wait()
    start = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes on Linux
    inside, _ = loop(samples, seed)
    out.put((start, time.perf_counter(), inside))


def released_together(
    start_method: str, target: Callable[..., None], args: Sequence[tuple[Any, ...]]
) -> list[tuple[float, float, Any]]:
    """Start one process per ``args`` entry, wait until each has called ``ready.put(pid)``,
    release them together and return their ``(start, end, value)`` spans, in arrival order.

    ``target(*entry, ready, go, out)`` must put its pid in ``ready``, wait for ``go``, then put
    ``(start, end, value)`` in ``out``: a measurement with no library between the processes.
    """
    import multiprocessing

    context = multiprocessing.get_context(start_method)
    ready, out, go = context.Queue(), context.Queue(), context.Event()
    processes = [
        context.Process(target=target, args=(*entry, ready, go, out), daemon=True) for entry in args
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get()
    go.set()
    spans = [out.get() for _ in processes]
    for process in processes:
        process.join()
    ready.close()
    out.close()
    return spans


def ceiling_run(kind: str, parts: Sequence[int]) -> float:
    """Seconds from the first of ``len(parts)`` already-started, already-warm processes starting
    its share of the kernel to the last one finishing: the hardware with no library between."""
    # spawn: no forkserver of ours (lightwork starts its own), no fork of a threaded parent
    args = [(kind, n, 1000 + i) for i, n in enumerate(parts)]
    spans = released_together("spawn", _ceiling_child, args)
    return max(end for _, end, _ in spans) - min(start for start, _, _ in spans)


def print_report(
    header: str, versions_line: str, tables: Sequence[Table], started: float, markdown: bool
) -> None:
    """What every benchmark prints at the end: the machine, the versions, its tables, and the
    machine again (a neighbour's load that came or went during the run shows here)."""
    print(header)
    print(versions_line)
    for table in tables:
        print()
        print(table.render(markdown))
    print(
        f"\n(total {time.perf_counter() - started:.0f} s; at the end: {machine_line()}; "
        f"{cpu_check()})"
    )


def cpu_check(samples: int = 1_500_000) -> str:
    """How many cores this run really gets now: the same pure-Python work in 2 independent
    processes at once against 1 alone (2.00x: two free cores; ~1x: a neighbour holds one)."""
    one = ceiling_run("python", [samples])
    two = ceiling_run("python", [samples, samples])
    return f"CPU check: 2 processes did {2 * one / two:.2f}x the work of 1 in the same time"
