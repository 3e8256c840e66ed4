"""backend="auto" against every fixed backend, side by side, on four kinds of work.

    cd /work/main && .venv/bin/python bench/bench_auto.py              # ~1-2 minutes
    cd /work/main && .venv/bin/python bench/bench_auto.py --quick      # smoke run, < 20 s
    cd /work/main && .venv/bin/python bench/bench_auto.py --markdown   # Markdown tables

Workloads (max_workers=2 everywhere):

* pure-Python CPU-bound: a loop summing 20,000 ints per task, 400 tasks;
* NumPy releasing the GIL: ``np.sort`` of a 400,000-element random array per task, 60 tasks;
* sleeping I/O: ``time.sleep(0.005)`` per task, 200 tasks;
* tiny: ``x * x``, 200,000 tasks.

Each is timed as ``lightwork.map(fn, items, backend=b, max_workers=2)`` does it, that is
``list(Executor(2, backend=b).imap(fn, items))`` on a warm pool, for b in serial, threads,
processes and auto. WARM pools for all: one ``lightwork.Executor(2, backend=b)`` per backend,
made once, every (workload, backend) pair run once as a warm-up before the rounds, and reused
by every round. (Calling ``lightwork.map`` itself with alternating backends would not keep them
warm: it keeps one warm pool per (backend, max_workers) and shuts down the pools no running call
uses, so each switch back to "processes" starts new worker processes.)

After each auto run the choice is read from ``Executor.statistics().auto`` (backend, reason).
Times are medians and minimums over interleaved rounds whose order rotates.

Target: auto within 10% of the fastest fixed backend measured side by side (auto / fastest
<= 1.10, by medians).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import _measure
from _measure import Table, fmt_s, fmt_x, interleaved, log, med, verdict

import lightwork

BACKENDS = ("serial", "threads", "processes", "auto")
WORKERS = 2
TARGET = 1.10


@dataclass
class Workload:
    name: str
    fn: Callable[[Any], Any]
    items: list[Any]


def workloads(quick: bool) -> list[Workload]:
    k = 4 if quick else 1
    return [
        Workload(
            f"pure Python, {400 // k} tasks x 20k-int loop", _measure.py_loop, [20_000] * (400 // k)
        ),
        Workload(f"NumPy sort 400k, {60 // k} tasks", _measure.numpy_sort, [400_000] * (60 // k)),
        Workload(f"sleep 5 ms, {200 // k} tasks", _measure.sleep_io, [0.005] * (200 // k)),
        Workload(f"tiny x*x, {200_000 // k:,} tasks", _measure.square, list(range(200_000 // k))),
    ]


def main() -> int:
    args = _measure.parse_args(__doc__)
    rounds = args.rounds or (2 if args.quick else 7)
    header = _measure.machine_line() + "\n" + _measure.cpu_check()
    log(header)
    started = time.perf_counter()
    executors = {b: lightwork.Executor(WORKERS, backend=b) for b in BACKENDS}
    executors["processes"].start()
    choices: dict[str, Counter[str]] = {}  # per workload: how often auto chose each backend
    reasons_seen: dict[str, dict[str, str]] = {}  # per workload and backend: the last reason
    results: dict[str, dict[str, list[float]]] = {}
    expected: dict[str, list[Any]] = {}
    try:
        for work in workloads(args.quick):
            log(f"{work.name}")
            expected[work.name] = [work.fn(x) for x in work.items[:3]]
            choices[work.name] = Counter()
            reasons_seen[work.name] = {}

            def measure(backend: str, work: Workload = work) -> float:
                executor = executors[backend]
                start = time.perf_counter()
                out = list(executor.imap(work.fn, work.items))
                seconds = time.perf_counter() - start
                if len(out) != len(work.items) or out[:3] != expected[work.name]:
                    raise AssertionError(f"{backend}: wrong results for {work.name}")
                if backend == "auto":
                    choice = executor.statistics().auto
                    if choice is not None:
                        choices[work.name][choice.backend] += 1
                        reasons_seen[work.name][choice.backend] = choice.reason
                return seconds

            variants = {b: (lambda b=b: measure(b)) for b in BACKENDS}
            for fn in variants.values():  # warm-up: every worker has run this function
                fn()
            choices[work.name].clear()
            reasons_seen[work.name].clear()
            results[work.name] = interleaved(variants, rounds, label=f"  {work.name}:")
    finally:
        for executor in executors.values():
            executor.shutdown()

    table = Table(
        f"backend='auto' against fixed backends, max_workers={WORKERS}, warm pools (median / min)",
        ["workload", *BACKENDS, "fastest", "auto / fastest", "auto chose"],
    )
    reasons = Table(
        "What auto chose, and why (the reason of its last such choice)",
        ["workload", "chose", "reason"],
    )
    targets = Table("Targets", ["workload", "auto / fastest", "verdict"])
    all_met = True
    for name, times in results.items():
        fixed = {b: med(times[b]) for b in BACKENDS if b != "auto"}
        fastest = min(fixed, key=fixed.__getitem__)
        ratio = med(times["auto"]) / fixed[fastest]
        ratio_min = min(times["auto"]) / min(min(times[b]) for b in fixed)
        chose_text = ", ".join(
            b if n == rounds else f"{b} {n}/{rounds}" for b, n in choices[name].most_common()
        )
        table.add(
            name,
            *(f"{fmt_s(med(times[b]))} / {fmt_s(min(times[b]))}" for b in BACKENDS),
            fastest,
            f"{fmt_x(ratio)} (min {fmt_x(ratio_min)})",
            chose_text,
        )
        for other, n in choices[name].most_common():
            reasons.add(name, f"{other} ({n}/{rounds})", reasons_seen[name][other])
        met = ratio <= TARGET
        all_met = all_met and met
        targets.add(name, fmt_x(ratio), verdict(met))
    table.notes.append(
        f"{rounds} rounds; every cell is median / min; 'auto / fastest' compares medians "
        "(and, in brackets, minimums) with the fastest fixed backend"
    )
    if args.quick:
        table.notes.append(
            "--quick: workloads 4x smaller, so auto's fixed cost (its probe runs ~20 ms of "
            "tasks serially first) weighs 4x more; judge the target on the default run"
        )
    _measure.print_report(
        header, _measure.versions("lightwork"), (table, reasons, targets), started, args.markdown
    )
    return 0


if __name__ == "__main__":
    _measure.put_bench_dir_on_child_path()
    sys.exit(main())
