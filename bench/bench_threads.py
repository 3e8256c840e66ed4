"""Thread pools of the default size: waiting work needs many threads, CPU work as many as cores.

    cd /work/main && .venv/bin/python bench/bench_threads.py              # ~1 minute
    cd /work/main && .venv/bin/python bench/bench_threads.py --quick      # smoke run, < 20 s
    cd /work/main && .venv/bin/python bench/bench_threads.py --markdown   # Markdown tables

Contenders, each a fresh pool per run with ``max_workers`` left at its default:

* ``ThreadPoolExecutor()``: ``min(32, cpus + 4)`` threads, ``list(pool.map(fn, items))``;
* lightwork ``threads``: starts with one thread per CPU and grows, up to 32, while work is
  queued and the process leaves the CPUs idle;
* lightwork ``auto``: sizes its thread pool from what its probe measured;
* lightwork ``threads, one per CPU``: ``max_workers=available_cpus()``, what the default was
  before the pool learned to grow ("today" in the targets).

Workloads: ``time.sleep(0.1)`` x 50 and ``time.sleep(0.005)`` x 400 (waiting), a pure-Python
20k-int loop x 400 and ``np.sort`` of 400k x 60 (CPU). Medians over interleaved rounds.

Targets: on waiting work, threads and auto within 1.10x of ``ThreadPoolExecutor()``; on CPU
work, threads no slower than one thread per CPU (within 1.10x: the noise of this machine).
"""

from __future__ import annotations

import concurrent.futures
import sys
import time
from collections.abc import Callable
from typing import Any

import _measure
from _measure import Table, fmt_s, fmt_x, interleaved, log, med, verdict

import lightwork

TARGET = 1.10


def stdlib(fn: Callable[[Any], Any], items: list[Any]) -> None:
    with concurrent.futures.ThreadPoolExecutor() as pool:
        list(pool.map(fn, items))


def ours(
    backend: str, max_workers: int | None
) -> Callable[[Callable[[Any], Any], list[Any]], None]:
    def run(fn: Callable[[Any], Any], items: list[Any]) -> None:
        with lightwork.Executor(max_workers, backend=backend) as ex:
            list(ex.imap(fn, items))

    return run


CONTENDERS = {
    "ThreadPoolExecutor()": stdlib,
    "threads": ours("threads", None),
    "auto": ours("auto", None),
    "threads, one per CPU": ours("threads", lightwork.available_cpus()),
}


def main() -> int:
    args = _measure.parse_args(__doc__)
    rounds = args.rounds or (2 if args.quick else 5)
    k = 4 if args.quick else 1
    header = _measure.machine_line() + "\n" + _measure.cpu_check()
    log(header)
    started = time.perf_counter()
    work = {
        f"sleep 100 ms x {50 // k}": ("waiting", _measure.sleep_io, [0.1] * (50 // k)),
        f"sleep 5 ms x {400 // k}": ("waiting", _measure.sleep_io, [0.005] * (400 // k)),
        f"Python loop x {400 // k}": ("CPU", _measure.py_loop, [20_000] * (400 // k)),
        f"NumPy sort 400k x {60 // k}": ("CPU", _measure.numpy_sort, [400_000] * (60 // k)),
    }
    table = Table(
        "Default-size thread pools, fresh per run (median / min seconds)",
        ["workload", "kind", *CONTENDERS],
    )
    targets = Table("Targets", ["workload", "ratio", "goal", "verdict"])
    all_met = True
    for name, (kind, fn, items) in work.items():
        log(name)
        variants = {
            label: _measure.stopwatch(lambda run=run, fn=fn, items=items: run(fn, items))
            for label, run in CONTENDERS.items()
        }
        times = interleaved(variants, rounds, label=f"  {name}:")
        table.add(name, kind, *(f"{fmt_s(med(t))} / {fmt_s(min(t))}" for t in times.values()))
        if kind == "waiting":
            for label in ("threads", "auto"):
                ratio = med(times[label]) / med(times["ThreadPoolExecutor()"])
                all_met &= ratio <= TARGET
                targets.add(
                    name, f"{label} / TPE() {fmt_x(ratio)}", "<= 1.10x", verdict(ratio <= TARGET)
                )
        else:
            ratio = med(times["threads"]) / med(times["threads, one per CPU"])
            all_met &= ratio <= TARGET
            targets.add(
                name, f"threads / one per CPU {fmt_x(ratio)}", "<= 1.10x", verdict(ratio <= TARGET)
            )
    table.notes.append(
        f"{rounds} rounds, interleaved, order rotating; {lightwork.available_cpus()} CPUs"
    )
    _measure.print_report(
        header, _measure.versions("lightwork"), (table, targets), started, args.markdown
    )
    return 0 if all_met else 1


if __name__ == "__main__":
    _measure.put_bench_dir_on_child_path()
    sys.exit(main())
