"""lightwork's dask backend on a local Dask cluster, side by side with lightwork's process pool
and with Dask's own API.

    cd /work/main && .venv/bin/python bench/bench_dask.py              # ~1-2 minutes
    cd /work/main && .venv/bin/python bench/bench_dask.py --quick      # smoke run, < 20 s
    cd /work/main && .venv/bin/python bench/bench_dask.py --markdown   # Markdown tables

  a  100,000 tiny tasks (``x * x``) on a 2-worker ``LocalCluster`` with Dask's defaults (a
     cluster of your own; processes, 1 thread each):
     ``list(lightwork.Executor(2, backend="dask", client=client).imap(f, items))`` against
     lightwork's process backend (``Executor(2).imap``), both WARM (a warm-up run first), and,
     for reference, Dask's own ``client.gather(client.map(f, items, pure=False))`` on the same
     cluster (measured on fewer tasks and scaled linearly if it is slow: the table says so).
     Target: the dask backend within 3x of the process backend.
  b  Monte Carlo pi, lightwork's NumPy kernel tasks (``lightwork.workloads._pi._numpy_task``
     over ``split_samples(n, "numpy")``, each drawing from ``lightwork.rng()``) through
     ``Executor(p, backend="dask")`` on the 1-worker and 2-worker LocalCluster it starts:
     efficiency = T(1) / (2 T(2)). For context, the machine's ceiling in the same rounds: the
     kernel in 2 independent processes against 1.  Target: efficiency >= 0.85.

Times are medians and minimums over interleaved rounds whose order rotates.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings

import _measure
from _measure import Table, ceiling_run, fmt_s, fmt_x, interleaved, log, med, square, verdict

import lightwork
from lightwork.workloads import split_samples
from lightwork.workloads._pi import _numpy_task

# Dask's own client.map costs ~1-3 ms a task here: it runs on raw_tasks, scaled to tasks.
FULL = {"tasks": 100_000, "raw_tasks": 2_000, "a_rounds": 5, "samples": 400_000_000, "b_rounds": 5}
QUICK = {"tasks": 100_000, "raw_tasks": 500, "a_rounds": 2, "samples": 67_108_864, "b_rounds": 1}
SEED = 7
TINY_TARGET = 3.0
EFFICIENCY_TARGET = 0.85


def local_cluster(workers: int):  # type: ignore[no-untyped-def]
    """A LocalCluster with Dask's defaults, as a user would start one for (a)."""
    from distributed import Client, LocalCluster

    environment = dict(os.environ)  # LocalCluster writes its workers' variables into ours
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    os.environ.clear()
    os.environ.update(environment)
    return cluster, Client(cluster)


def section_a(cfg: dict, client) -> tuple[Table, float]:  # type: ignore[no-untyped-def]
    n, n_raw = cfg["tasks"], cfg["raw_tasks"]
    log(f"(a) {n:,} tiny tasks")
    items = list(range(n))
    raw_items = list(range(n_raw))
    expected_last = square(n - 1)
    dask_ex = lightwork.Executor(2, backend="dask", client=client)
    proc_ex = lightwork.Executor(2)

    def lw_dask() -> None:
        out = list(dask_ex.imap(square, items))
        assert len(out) == n and out[-1] == expected_last

    def lw_proc() -> None:
        out = list(proc_ex.imap(square, items))
        assert len(out) == n and out[-1] == expected_last

    def scheduler_tasks(dask_scheduler) -> int:  # type: ignore[no-untyped-def]
        return len(dask_scheduler.tasks)

    def settle() -> None:
        """Outside the clocks: wait until the scheduler has forgotten every task, so that its
        clean-up (in this process) does not run into the next row's time."""
        deadline = time.monotonic() + 30
        while client.run_on_scheduler(scheduler_tasks) and time.monotonic() < deadline:
            time.sleep(0.05)

    def raw() -> float:
        start = time.perf_counter()
        futures = client.map(square, raw_items, pure=False)
        out = client.gather(futures)
        seconds = time.perf_counter() - start
        assert len(out) == n_raw and out[-1] == square(n_raw - 1)
        del futures
        settle()
        return seconds

    names = {
        "dask": "lightwork Executor(2, backend='dask').imap",
        "proc": "lightwork Executor(2) (processes).imap",
        "raw": f"client.gather(client.map(f, items)) [{n_raw:,} tasks, x{n / n_raw:g}]",
    }
    variants = {
        names["dask"]: _measure.stopwatch(lw_dask),
        names["proc"]: _measure.stopwatch(lw_proc),
        names["raw"]: raw,
    }
    for fn in variants.values():  # warm-up
        fn()
    try:
        times = interleaved(variants, cfg["a_rounds"], label="(a)", scale={names["raw"]: n / n_raw})
        stats = dask_ex.statistics()
    finally:
        dask_ex.shutdown()  # the client is ours: lightwork leaves it open
        proc_ex.shutdown()
    reference = med(times[names["proc"]])
    table = Table(
        f"(a) {n:,} tiny tasks (x*x), 2 workers, warm",
        ["variant", "median", "min", "per task", "x processes"],
    )
    for name, values in times.items():
        table.add(
            name,
            fmt_s(med(values)),
            fmt_s(min(values)),
            fmt_s(med(values) / n),
            fmt_x(med(values) / reference),
        )
    ratio = med(times[names["dask"]]) / reference
    table.notes.append(
        f"dask backend / process backend = {ratio:.2f}x (medians; target <= {TINY_TARGET:g}x: "
        f"{verdict(ratio <= TINY_TARGET)})"
    )
    table.notes.append(
        f"{cfg['a_rounds']} rounds; the dask backend sent {stats.chunks_done:,} Dask tasks "
        f"(chunks) for {stats.tasks_done:,} tasks over warm-up and rounds; Dask's own "
        f"client.map, one Dask task per item (pure=False, so no result is reused), was measured "
        f"on {n_raw:,} tasks and its times multiplied by {n / n_raw:g}; after it, the rounds "
        "wait (unclocked) until the scheduler has released every task"
    )
    return table, ratio


def section_b(cfg: dict) -> tuple[Table, float]:
    samples = cfg["samples"]
    log(f"(b) Monte Carlo pi, {samples:.3g} samples, 1 vs 2 Dask workers")
    sizes = split_samples(samples, "numpy")
    executors = {p: lightwork.Executor(p, backend="dask", seed=SEED) for p in (1, 2)}
    counts: dict[int, set[int]] = {1: set(), 2: set()}
    # The calling process's CPU (client, scheduler and nannies all run here) in 2-worker runs,
    # and the Dask tasks (chunks) those runs sent: what the workers' two cores lose to it.
    parent = {"cpu": 0.0, "chunks": 0}

    def run(p: int) -> float:
        chunks_before = executors[p].statistics().chunks_done
        cpu_before = time.process_time()
        start = time.perf_counter()
        counts[p].add(sum(executors[p].imap(_numpy_task, sizes)))
        seconds = time.perf_counter() - start
        if p == 2:
            parent["cpu"] += time.process_time() - cpu_before
            parent["chunks"] += executors[p].statistics().chunks_done - chunks_before
        return seconds

    half = samples // 2
    names = {
        "d1": "lightwork dask backend, 1-worker LocalCluster",
        "d2": "lightwork dask backend, 2-worker LocalCluster",
        "c1": "ceiling: 1 process, all samples",
        "c2": "ceiling: 2 processes, half each",
    }
    variants = {
        names["d1"]: lambda: run(1),
        names["d2"]: lambda: run(2),
        names["c1"]: lambda: ceiling_run("numpy", [samples]),
        names["c2"]: lambda: ceiling_run("numpy", [half, samples - half]),
    }
    try:
        for p, executor in executors.items():  # warm-up: NumPy imported in every worker
            sum(executor.imap(_numpy_task, split_samples(4 * p * (1 << 23), "numpy")))
        rest_cpu = time.process_time()
        time.sleep(2.0)  # both clusters up, nothing to do: what they cost at rest
        rest_cpu = (time.process_time() - rest_cpu) / 2.0
        times = interleaved(variants, cfg["b_rounds"], label="(b)")
    finally:
        for executor in executors.values():
            executor.shutdown()
    m = {k: med(times[v]) for k, v in names.items()}
    b = {k: min(times[v]) for k, v in names.items()}
    efficiency = m["d1"] / (2 * m["d2"])
    ceiling = m["c1"] / (2 * m["c2"])
    table = Table(
        f"(b) Monte Carlo pi, {samples:,} samples in {len(sizes)} tasks: 1 vs 2 Dask workers",
        ["variant", "median", "min", "samples/s", "efficiency"],
    )
    for key in ("d1", "d2", "c1", "c2"):
        eff = ""
        if key == "d2":
            eff = f"{efficiency:.3f}"
        elif key == "c2":
            eff = f"{ceiling:.3f}"
        table.add(
            names[key], fmt_s(m[key]), fmt_s(b[key]), _measure.fmt_rate(samples / m[key]), eff
        )
    same = len(counts[1] | counts[2]) == 1
    table.notes.append(
        f"efficiency T(1) / (2 T(2)) = {efficiency:.3f} (medians; target >= {EFFICIENCY_TARGET}: "
        f"{verdict(efficiency >= EFFICIENCY_TARGET)}); from the minimums "
        f"{b['d1'] / (2 * b['d2']):.3f}; the ceiling's {ceiling:.3f}, so lightwork-on-Dask "
        f"reaches {efficiency / ceiling:.3f} of what the machine allows"
    )
    table.notes.append(
        f"the calling process (Dask's client, scheduler and nannies run in it) used "
        f"{1e3 * parent['cpu'] / max(1, parent['chunks']):.1f} ms of CPU per Dask task, its load "
        f"at rest included, in the 2-worker runs "
        f"({parent['chunks'] // max(1, cfg['b_rounds'])} Dask tasks a run), and "
        f"{1e3 * rest_cpu:.0f} ms per second with both clusters at rest: CPU taken from the "
        "two cores the workers compute on"
    )
    table.notes.append(
        "the LocalClusters are lightwork's own (no client= given), with the few settings "
        "that differ from Dask's defaults listed, with their reasons, in the docstring of "
        "lightwork._backends._dask._start_local_cluster"
    )
    table.notes.append(
        f"{cfg['b_rounds']} rounds; seed={SEED}: inside counts on 1 and 2 workers "
        f"{'identical' if same else 'DIFFERENT'} ({sorted(counts[1] | counts[2])})"
    )
    return table, efficiency


def main() -> int:
    args = _measure.parse_args(__doc__)
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        cfg["a_rounds"] = cfg["b_rounds"] = args.rounds
    header = _measure.machine_line() + "\n" + _measure.cpu_check()
    log(header)
    started = time.perf_counter()
    warnings.filterwarnings("ignore", module="distributed")
    cluster, client = local_cluster(2)
    try:
        table_a, ratio = section_a(cfg, client)
    finally:
        client.close()
        cluster.close()
    table_b, efficiency = section_b(cfg)
    targets = Table("Targets", ["target", "measured", "verdict"])
    targets.add(
        "(a) dask backend within 3x of the process backend, 100k tiny tasks",
        fmt_x(ratio),
        verdict(ratio <= TINY_TARGET),
    )
    targets.add(
        "(b) Monte Carlo efficiency on 2 Dask workers >= 0.85",
        f"{efficiency:.3f}",
        verdict(efficiency >= EFFICIENCY_TARGET),
    )
    _measure.print_report(
        header,
        _measure.versions("lightwork", "dask", "distributed", "numpy"),
        (table_a, table_b, targets),
        started,
        args.markdown,
    )
    return 0


if __name__ == "__main__":
    _measure.put_bench_dir_on_child_path()
    sys.exit(main())
