"""Native thread pools in process workers: NumPy matrix products on 2 workers, with each
worker's OpenBLAS limited to its share of the CPUs (lightwork's default) and without.

    cd /work/main && .venv/bin/python bench/bench_native_threads.py            # ~1 minute
    cd /work/main && .venv/bin/python bench/bench_native_threads.py --quick    # smoke run

Each of 16 tasks multiplies two 512x512 float64 matrices 8 times. Contenders, warm pools of 2
workers, interleaved rounds:

* ``native_threads=None`` (the default): each worker's BLAS gets CPUs // 2 threads;
* ``native_threads=<CPUs>``: each worker's BLAS may use every CPU, as without any limit
  (what ``ProcessPoolExecutor`` workers do): 2 x CPUs threads on CPUs cores;
* NumPy in the caller alone (its BLAS on every CPU), for reference.
"""

from __future__ import annotations

import sys
import time

import _measure
from _measure import Table, fmt_s, fmt_x, interleaved, log, med

import lightwork

TASKS = 16
SIZE = 512
PRODUCTS = 8


def products(seed: int) -> float:
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.random((SIZE, SIZE))
    b = rng.random((SIZE, SIZE))
    for _ in range(PRODUCTS):
        a = (a @ b) / SIZE
    return float(a.sum())


def main() -> int:
    args = _measure.parse_args(__doc__)
    rounds = args.rounds or (2 if args.quick else 7)
    import numpy  # noqa: F401  (in the parent: the fork server preloads it, as in real use)

    cpus = lightwork.available_cpus()
    header = _measure.machine_line() + "\n" + _measure.cpu_check()
    log(header)
    started = time.perf_counter()
    limited = lightwork.Executor(2)
    unlimited = lightwork.Executor(2, native_threads=cpus)
    for ex in (limited, unlimited):
        ex.start()
        list(ex.map(products, range(4)))  # warm: NumPy and OpenBLAS loaded in each worker
    variants = {
        f"2 workers, BLAS limited to {limited.statistics().native_threads} thread(s) (default)": (
            _measure.stopwatch(lambda: list(limited.map(products, range(TASKS))))
        ),
        f"2 workers, BLAS on {cpus} threads each (no limit)": _measure.stopwatch(
            lambda: list(unlimited.map(products, range(TASKS)))
        ),
        "NumPy in the caller (BLAS on every CPU)": _measure.stopwatch(
            lambda: [products(i) for i in range(TASKS)]
        ),
    }
    times = interleaved(variants, rounds, label="matmul")
    base = med(next(iter(times.values())))
    table = Table(
        f"{TASKS} tasks of {PRODUCTS} products of {SIZE}x{SIZE} float64 matrices",
        ["variant", "median / min", "x the default"],
    )
    for name, values in times.items():
        table.add(name, f"{fmt_s(med(values))} / {fmt_s(min(values))}", fmt_x(med(values) / base))
    table.notes.append(f"{rounds} rounds, interleaved, order rotating; {cpus} CPUs")
    limited.shutdown()
    unlimited.shutdown()
    _measure.print_report(
        header, _measure.versions("lightwork", "numpy"), (table,), started, args.markdown
    )
    return 0


if __name__ == "__main__":
    _measure.put_bench_dir_on_child_path()
    sys.exit(main())
