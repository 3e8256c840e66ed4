"""What the benchmarks share: workloads, ``lightwork.map`` as a pool, the machine's ceiling and
how busy it was, and probes run in fresh interpreters.

The peer pools (multiprocessing.Pool, ProcessPoolExecutor, joblib, mpire, ...) are the
library's own, in ``lightwork.lab._peers``, which ``lightwork bench`` runs too; the pools here
yield its :class:`~lightwork.lab._peers.Runner`.

Kept importable without side effects and with the standard library only at the top, so that
worker processes (fork, forkserver, loky's spawn) can unpickle ``square`` and ``find_pi`` by
reference cheaply: the bench scripts put this folder on ``PYTHONPATH`` for their children.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from random import random
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))

# ---- workloads (module level: every library pickles them by reference) ----------------------


def square(x: int) -> int:
    return x * x


def find_pi(n: int) -> int:
    """The tutorials' pure-Python Monte Carlo pi: how many of n random points fall in the circle."""
    inside = 0
    for _ in range(n):
        x = random()
        y = random()
        if x * x + y * y <= 1.0:
            inside += 1
    return inside


def put_bench_dir_on_child_path() -> None:
    """Children of any start method (and loky's fresh interpreters) can import this module."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if BENCH_DIR not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([BENCH_DIR, *paths])


# ---- lightwork.map as a pool -----------------------------------------------------------------


def shutdown_lightwork_warm_pools() -> None:
    """Shut the pools behind ``lightwork.map`` down now (atexit would do it at the end anyway)."""
    try:
        from lightwork._engine import _api
    except ImportError:
        return
    shutdown = getattr(_api, "_shutdown_warm_pools", None)
    if shutdown is not None:
        shutdown()


def lightwork_warm_executor(workers: int) -> Any:
    """The Executor behind ``lightwork.map`` for statistics, or None if that internal moved."""
    try:
        from lightwork._engine import _api

        pools = list(_api._warm.values())
    except (ImportError, AttributeError):
        return None
    for executor in pools:
        if getattr(executor, "backend", None) == "processes" and executor.max_workers == workers:
            return executor
    return None


@contextmanager
def lightwork_map_pool(workers: int) -> Iterator[Any]:
    """``lightwork.map``: its own warm pool (default start method), shut down on exit; yields a
    ``lightwork.lab._peers.Runner``."""
    import lightwork
    from lightwork.lab._peers import Runner

    def run(fn: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None) -> list[Any]:
        return lightwork.map(fn, items, max_workers=workers, chunksize=chunksize)

    def stats() -> Any:
        executor = lightwork_warm_executor(workers)
        return None if executor is None else executor.statistics()

    try:
        yield Runner(run, stats)
    finally:
        shutdown_lightwork_warm_pools()


# ---- the machine's ceiling: independent processes, no library in between -------------------


def _ceiling_child(n: int, ready: Any, go: Any, out: Any) -> None:
    ready.put(os.getpid())
    go.wait()
    start = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes on Linux
    inside = find_pi(n)
    out.put((start, time.perf_counter(), inside))


def ceiling_run(parts: Sequence[int]) -> tuple[float, list[int]]:
    """Seconds from the first of ``len(parts)`` already-started processes beginning
    ``find_pi(part)`` to the last one finishing: what the hardware does with no library."""
    from _measure import released_together

    spans = released_together("fork", _ceiling_child, [(n,) for n in parts])
    seconds = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    return seconds, [inside for _, _, inside in spans]


# ---- how busy the machine was, apart from us ----------------------------------------------------


def machine_busy_seconds() -> float | None:
    """CPU-seconds every CPU of the machine has spent busy since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float | None:
    """CPU-seconds used by this process and every process it started, alive or reaped: its
    own and reaped children's rusage, plus each live descendant's own and reaped children's.
    (A forkserver's workers are its children, so they count once they are reaped or live.)"""
    import resource

    try:
        import psutil
    except ImportError:
        return None
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.Error:
            continue  # exited meanwhile: counted once reaped
        total += t.user + t.system + t.children_user + t.children_system
    return total


class OtherLoad:
    """How many CPUs' worth of work processes outside this benchmark did during a section."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.busy = machine_busy_seconds()
        self.own = own_cpu_seconds()

    def cores(self) -> float | None:
        busy, own = machine_busy_seconds(), own_cpu_seconds()
        if None in (busy, own, self.busy, self.own):
            return None
        assert busy is not None and own is not None and self.busy is not None
        assert self.own is not None
        others = (busy - self.busy) - (own - self.own)
        return max(0.0, others) / max(time.perf_counter() - self.start, 1e-9)


# ---- probes, each run in a fresh interpreter: python -c "import _support; _support.X(...)" -------


def startup_probe(kind: str, start_method: str, workers: int, pools: int) -> None:
    """Print JSON: for ``pools`` new pools one after the other, seconds from creating the pool
    to the first result of one trivial task, the workers started by then, and the shutdown.
    The first pool of a fresh interpreter is the cold one: a forkserver starts its server."""
    import lightwork  # imported before the clock in every probe alike

    results = []
    for _ in range(pools):
        start = time.perf_counter()
        if kind == "lightwork":
            executor: Any = lightwork.Executor(workers, start_method=start_method)
        else:
            context = multiprocessing.get_context(start_method)
            executor = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)
        executor.submit(abs, -1).result()
        first = time.perf_counter()
        if kind == "lightwork":
            started = executor.statistics().workers_started
        else:
            started = len(getattr(executor, "_processes", None) or ())
        executor.shutdown(wait=True)
        results.append(
            {"first": first - start, "shutdown": time.perf_counter() - first, "started": started}
        )
    print(json.dumps(results))


def imap_probe(n: int, workers: int) -> None:
    """Print JSON: lightwork.imap over a generator of n items, the parent's peak RSS growth."""
    import gc
    import resource
    import threading

    import lightwork

    try:
        import psutil

        process = psutil.Process()
        rss: Callable[[], int] | None = lambda: int(process.memory_info().rss)  # noqa: E731
    except ImportError:
        rss = None

    for _ in lightwork.imap(square, range(2000), max_workers=workers):  # warm pool
        pass
    gc.collect()
    peak = base = rss() if rss else 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        assert rss is not None
        while not stop.wait(0.005):
            peak = max(peak, rss())

    sampler = threading.Thread(target=sample, daemon=True)
    if rss:
        sampler.start()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    count = 0
    for _ in lightwork.imap(square, (i for i in range(n)), max_workers=workers):
        count += 1
    seconds = time.perf_counter() - start
    stop.set()
    if rss:
        sampler.join()
        peak = max(peak, rss())
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    executor = lightwork_warm_executor(workers)
    chunks = None if executor is None else executor.statistics().chunks_done

    start = time.perf_counter()
    for _ in (square(i) for i in range(n)):
        pass
    serial = time.perf_counter() - start
    print(
        json.dumps(
            {
                "items": count,
                "seconds": seconds,
                "serial_seconds": serial,
                "rss_base_mb": base / 2**20 if rss else None,
                "rss_peak_growth_mb": (peak - base) / 2**20 if rss else None,
                "maxrss_growth_mb": (maxrss_after - maxrss_before) / 1024,  # KiB on Linux
                "chunks_done_incl_warmup": chunks,
            }
        )
    )


IMPORT_PROBE = """
import json, sys, time
start = time.perf_counter()
import {module}
seconds = time.perf_counter() - start
watched = ("numpy", "tqdm", "dask", "matplotlib", "cloudpickle", "psutil", "multiprocessing")
print(json.dumps({{"seconds": seconds, "modules": len(sys.modules),
                  "imported": [m for m in watched if m in sys.modules]}}))
"""


def run_python(
    code: str, flags: Sequence[str] = (), timeout: float = 300.0, as_script: bool = False
) -> tuple[str, str]:
    """Run ``code`` in a fresh interpreter (this folder on its path); return stdout, stderr.

    With ``as_script``, the code runs from a file under ``if __name__ == "__main__":`` instead
    of ``-c``: a program's usual shape, whose workers import that file as multiprocessing does.
    """
    import subprocess
    import tempfile
    import textwrap

    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BENCH_DIR]
    env["PYTHONPATH"] = os.pathsep.join([BENCH_DIR, *paths])
    with tempfile.TemporaryDirectory() as folder:
        if as_script:
            script = os.path.join(folder, "probe_script.py")
            with open(script, "w") as f:
                f.write('if __name__ == "__main__":\n' + textwrap.indent(code, "    ") + "\n")
            command = [sys.executable, *flags, script]
        else:
            command = [sys.executable, *flags, "-c", code]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"probe failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout, done.stderr


def last_json(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])
