"""lightwork against its peers, side by side in one run on this machine.

    python bench/bench_core.py                    # about 2-3 minutes on 2 cores
    python bench/bench_core.py --quick            # a smoke run, under ~20 s
    python bench/bench_core.py --markdown --json out.json --sections a,c
    python bench/bench_core.py --sections a --plot docs/bench-tiny-tasks.png

Sections (each prints a table; times are medians and minimums over interleaved rounds, so that
a drift in clock speed or a neighbour's load hits every row alike):

  a  tiny tasks (x*x) on WARM pools: lightwork.map, lightwork.Executor(fork).imap,
     multiprocessing.Pool.map, ProcessPoolExecutor.map (chunksize 1, measured on fewer tasks and
     scaled linearly; and a tuned chunksize), joblib.Parallel, mpire.WorkerPool, a serial loop
  b  start-up: a NEW pool to the first result of one trivial task, lightwork.Executor against
     ProcessPoolExecutor, per start method (spawn too), in fresh interpreters: the first pool
     of each is cold (first imports; forkserver starts its server), the next ones warm
  c  pure-Python Monte Carlo pi over the workers, every library against the machine's ceiling:
     the same work in independent processes started together, with no library in between
  d  lightwork.imap over a 10-million-item generator: time and the parent's peak RSS growth
  e  the cost of ``import lightwork`` in a fresh interpreter, and what it pulls in

Ratios: ``x lightwork`` is a row's time over lightwork's (above 1: lightwork is faster),
``x serial`` its time over the serial loop's (below 1: parallelism pays). Each table ends with
how many CPUs other processes used meanwhile (/proc/stat less this benchmark's own processes):
on a shared machine, trust a section only when that is near 0, and then the minimums most.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

sys.path.insert(
    0, os.path.dirname(os.path.abspath(__file__))
)  # _support and _measure, however this is run
import _measure
import _support
from _measure import Table, fmt_s, fmt_x
from _measure import med as median
from _support import find_pi, square

from lightwork.lab import _peers as peers
from lightwork.lab._peers import Runner

# ---- sizes ------------------------------------------------------------------------------------

FULL = {
    "tasks": 200_000,
    "ppe1_tasks": 10_000,
    "repeats": 5,
    "startup_repeats": 5,
    "cold_repeats": 3,
    "pi_samples": 10_000_000,
    "pi_repeats": 3,
    "imap_items": 10_000_000,
    "import_repeats": 5,
}
QUICK = {
    "tasks": 20_000,
    "ppe1_tasks": 2_000,
    "repeats": 2,
    "startup_repeats": 2,
    "cold_repeats": 1,
    "pi_samples": 1_000_000,
    "pi_repeats": 1,
    "imap_items": 300_000,
    "import_repeats": 3,
}
WARMUP_TASKS = 2_000
START_METHODS = ("forkserver", "fork")

# ---- running variants side by side ------------------------------------------------------------


@dataclass
class Variant:
    """One row: ``fn`` over ``items`` on pool ``pool`` with ``chunksize``; times x ``scale``."""

    label: str
    pool: str
    fn: Callable[[Any], Any]
    items: Sequence[Any]
    chunksize: int | None = None
    scale: float = 1.0
    note: str = ""
    times: list[float] = field(default_factory=list)
    chunks: list[int] = field(default_factory=list)
    skipped: str | None = None


PoolFactory = Callable[[], AbstractContextManager[Runner]]


def run_side_by_side(
    pools: dict[str, PoolFactory],
    variants: list[Variant],
    rounds: int,
    warmup: Callable[[Runner], object],
    check: Callable[[Variant, list[Any]], None],
    log: Callable[[str], None],
) -> None:
    """Open every pool, warm each once, then time every variant once per round, rotating the
    order each round; leaving shuts the pools down, last opened first."""
    with ExitStack() as stack:
        live: dict[str, Runner] = {}
        for name, factory in pools.items():
            try:
                runner = stack.enter_context(factory())
                warmup(runner)
            except ImportError as error:
                for v in variants:
                    if v.pool == name:
                        v.skipped = f"skipped: {error}"
                continue
            live[name] = runner
        todo = [v for v in variants if v.pool in live]
        for r in range(rounds):
            shift = r % len(todo)
            for v in todo[shift:] + todo[:shift]:
                runner = live[v.pool]
                before = _chunks_done(runner)
                start = time.perf_counter()
                out = runner(v.fn, v.items, v.chunksize)
                seconds = time.perf_counter() - start
                if isinstance(runner, _CeilingRunner):  # it times itself
                    seconds = runner.own_seconds
                after = _chunks_done(runner)
                if before is not None and after is not None:
                    v.chunks.append(after - before)
                if r == 0:
                    check(v, out)
                v.times.append(seconds * v.scale)
                del out
            log(f"  round {r + 1}/{rounds} done")


def _chunks_done(runner: Runner) -> int | None:
    if runner.stats is None:
        return None
    stats = runner.stats()
    return None if stats is None else stats.chunks_done


# ---- (a) tiny tasks on warm pools -------------------------------------------------------------


def section_a(cfg: dict[str, Any], workers: int, log: Callable[[str], None]) -> tuple[Table, dict]:
    n, n1 = cfg["tasks"], cfg["ppe1_tasks"]
    items, items1 = list(range(n)), list(range(n1))
    tuned = peers.tuned_chunksize(n, workers)
    pools: dict[str, PoolFactory] = {
        "lw": lambda: _support.lightwork_map_pool(workers),
        "lw-fork": lambda: peers.lightwork_pool(workers, start_method="fork"),
    }
    for m in START_METHODS:
        pools[f"pool-{m}"] = lambda m=m: peers.mp_pool(workers, m)
        pools[f"ppe-{m}"] = lambda m=m: peers.ppe_pool(workers, m)
    pools["joblib"] = lambda: peers.joblib_pool(workers)
    for m in START_METHODS:
        pools[f"mpire-{m}"] = lambda m=m: peers.mpire_pool(workers, m)
    pools["serial"] = _serial_pool

    scale1 = n / n1
    variants = [
        Variant("serial loop [f(x) for x in items]", "serial", square, items),
        Variant("lightwork.map (forkserver, default)", "lw", square, items),
        Variant("lightwork.Executor(fork).imap", "lw-fork", square, items),
        Variant(f"lightwork.map chunksize={tuned}", "lw", square, items, tuned, note="diagnostic"),
    ]
    for m in START_METHODS:
        variants.append(Variant(f"Pool.map ({m}, default chunks)", f"pool-{m}", square, items))
    for m in START_METHODS:
        variants.append(
            Variant(
                f"PPE.map ({m}, chunksize=1)",
                f"ppe-{m}",
                square,
                items1,
                1,
                scale1,
                note=f"{n1:,} tasks x {scale1:g}",
            )
        )
        variants.append(
            Variant(f"PPE.map ({m}, chunksize={tuned})", f"ppe-{m}", square, items, tuned)
        )
    variants.append(Variant("joblib.Parallel(n_jobs) (loky, auto)", "joblib", square, items))
    for m in START_METHODS:
        variants.append(Variant(f"mpire.WorkerPool.map ({m})", f"mpire-{m}", square, items))

    def warmup(runner: Runner) -> None:
        runner(square, list(range(WARMUP_TASKS)))

    def check(v: Variant, out: list[Any]) -> None:
        if len(out) != len(v.items) or out[-1] != square(v.items[-1]) or out[7] != 49:
            raise AssertionError(f"{v.label}: wrong results")

    log(f"(a) {n:,} tiny tasks, {cfg['repeats']} rounds")
    run_side_by_side(pools, variants, cfg["repeats"], warmup, check, log)

    lw, lw_min = median(variants[1].times), min(variants[1].times)
    serial = median(variants[0].times)
    table = Table(
        f"(a) {n:,} tiny tasks (x*x) on warm pools, {workers} workers",
        ["variant", "median", "min", "us/task", "x lightwork", "(on mins)", "x serial", "note"],
    )
    raw = {}
    for v in variants:
        if v.skipped:
            table.rows.append([v.label, "-", "-", "-", "-", "-", "-", v.skipped])
            continue
        t = median(v.times)
        note = v.note
        if v.chunks:
            note = (note + "; " if note else "") + f"{int(median(v.chunks))} chunks"
        table.rows.append(
            [
                v.label,
                fmt_s(t),
                fmt_s(min(v.times)),
                f"{t / n * 1e6:.2f}",
                fmt_x(t / lw),
                fmt_x(min(v.times) / lw_min),
                fmt_x(t / serial),
                note,
            ]
        )
        raw[v.label] = {"times": v.times, "chunks": v.chunks, "scale": v.scale, "note": v.note}
    table.notes += [
        f"every pool is created and warmed with a {WARMUP_TASKS:,}-task map first; all stay "
        "open while the rounds run, in rotating order",
        f"PPE chunksize=1 is measured on {n1:,} tasks and scaled x{scale1:g} to {n:,}",
        f"chunksize={tuned} is len/(4*workers), Pool.map's default; lightwork with it is a "
        "diagnostic row: its cost without measured chunking",
        "the forkserver server is shared by every forkserver pool of this process "
        "(lightwork's started it, with its worker module preloaded)",
        "'chunks' is lightwork's statistics().chunks_done for one map",
    ]
    return table, raw


class _SerialRunner(Runner):
    def __init__(self) -> None:
        super().__init__(lambda fn, items, chunksize: [fn(x) for x in items])


def _serial_pool() -> AbstractContextManager[Runner]:
    from contextlib import nullcontext

    return nullcontext(_SerialRunner())


# ---- (b) start-up -----------------------------------------------------------------------------


def section_b(cfg: dict[str, Any], workers: int, log: Callable[[str], None]) -> tuple[Table, dict]:
    # "forkserver-script": the same probe run from a file, whose workers import that file.
    methods = (*START_METHODS, "spawn", "forkserver-script")
    kinds = [(k, m) for m in methods for k in ("lightwork", "ppe")]
    interpreters, pools = cfg["cold_repeats"], cfg["startup_repeats"] + 1
    log(f"(b) start-up: {interpreters} fresh interpreters x {len(kinds)}, {pools} pools each")
    runs: dict[tuple[str, str], list[list[dict[str, float]]]] = {k: [] for k in kinds}
    for i in range(interpreters):
        shift = i % len(kinds)
        for kind, method in kinds[shift:] + kinds[:shift]:
            start_method, _, script = method.partition("-")
            code = (
                f"import _support; _support.startup_probe({kind!r}, {start_method!r}, {workers}, "
                f"{pools})"
            )
            out, _ = _support.run_python(code, as_script=bool(script))
            runs[(kind, method)].append(_support.last_json(out))

    table = Table(
        f"(b) start-up: new pool -> first result of one trivial task, {workers} workers",
        [
            "pool",
            "cold median",
            "cold min",
            "warm median",
            "warm min",
            "x lightwork (warm)",
            "workers started",
            "shutdown",
        ],
    )
    warm = {k: [p["first"] for run in runs[k] for p in run[1:]] for k in kinds}
    raw = {}
    for kind, method in kinds:
        key = (kind, method)
        cold = [run[0]["first"] for run in runs[key]]
        started = sorted({p["started"] for run in runs[key] for p in run})
        shutdown = [p["shutdown"] for run in runs[key] for p in run]
        label = (
            f"lightwork.Executor ({method})"
            if kind == "lightwork"
            else f"ProcessPoolExecutor ({method})"
        )
        ref = median(warm[("lightwork", method)])
        table.rows.append(
            [
                label,
                fmt_s(median(cold)),
                fmt_s(min(cold)),
                fmt_s(median(warm[key])),
                fmt_s(min(warm[key])),
                fmt_x(median(warm[key]) / ref),
                "/".join(map(str, started)),
                fmt_s(median(shutdown)),
            ]
        )
        raw[f"{kind}-{method}"] = runs[key]
    table.notes += [
        f"each row: {interpreters} fresh interpreters (lightwork imported before the clock, "
        f"main module `-c` unless the row says script), each timing {pools} new pools in a "
        "row: the first is cold (a forkserver pool also starts the server), the others warm",
        "(forkserver-script): the same probe run from a script file, which every worker "
        "imports as multiprocessing does (the usual shape of a program)",
        "x lightwork compares with lightwork's warm time for the same start method",
        "workers started: processes alive when the first result came (PPE's "
        "len(_processes), lightwork's statistics().workers_started)",
        "shutdown: shutdown(wait=True) after the first result, not in the start-up time",
    ]
    return table, raw


# ---- (c) Monte Carlo pi against the machine's ceiling ------------------------------------------


def section_c(cfg: dict[str, Any], workers: int, log: Callable[[str], None]) -> tuple[Table, dict]:
    n = cfg["pi_samples"]
    parts = [n // workers + (1 if i < n % workers else 0) for i in range(workers)]
    pools: dict[str, PoolFactory] = {
        "serial": _serial_pool,
        "lw": lambda: _support.lightwork_map_pool(workers),
        "pool": lambda: peers.mp_pool(workers, "forkserver"),
        "ppe": lambda: peers.ppe_pool(workers, "forkserver"),
        "joblib": lambda: peers.joblib_pool(workers),
        "mpire": lambda: peers.mpire_pool(workers, "forkserver"),
        "ceiling": _ceiling_pool,
    }
    variants = [
        Variant("serial: find_pi(n) in this process", "serial", find_pi, [n]),
        Variant("1 process doing all of it (no library)", "ceiling", find_pi, [n]),
        Variant(f"{workers} processes started together (ceiling)", "ceiling", find_pi, parts),
        Variant("lightwork.map (forkserver)", "lw", find_pi, parts),
        Variant("Pool.map (forkserver)", "pool", find_pi, parts),
        Variant("PPE.map (forkserver)", "ppe", find_pi, parts),
        Variant("joblib.Parallel (loky)", "joblib", find_pi, parts),
        Variant("mpire.WorkerPool.map (forkserver)", "mpire", find_pi, parts),
    ]

    def warmup(runner: Runner) -> None:
        runner(find_pi, [1000] * (2 * workers))

    def check(v: Variant, out: list[Any]) -> None:
        total = sum(v.items)
        if len(out) != len(v.items) or not 0.7 * total < sum(out) <= 0.85 * total:
            raise AssertionError(f"{v.label}: wrong results {out}")

    log(f"(c) Monte Carlo pi, {n:,} samples, {cfg['pi_repeats']} rounds")
    run_side_by_side(pools, variants, cfg["pi_repeats"], warmup, check, log)

    def speedups(pick: Callable[[list[float]], float]) -> list[float | None]:
        """Each row's speed-up: the serial run's time over its own (the ceiling pair: the
        1-process run's over its own), by median or by minimum."""
        serial, one = pick(variants[0].times), pick(variants[1].times)
        return [
            None if v.skipped else (one if i == 2 else serial) / pick(v.times)
            for i, v in enumerate(variants)
        ]

    by_median, by_min = speedups(median), speedups(min)
    ceiling, ceiling_min = by_median[2], by_min[2]
    assert ceiling is not None and ceiling_min is not None
    lw = median(variants[3].times)
    table = Table(
        f"(c) pure-Python Monte Carlo pi, {n:,} samples in {workers} tasks, {workers} workers",
        ["variant", "median", "min", "speed-up", "of ceiling", "(on mins)", "x lightwork"],
    )
    raw: dict[str, Any] = {"ceiling_speedup": ceiling, "ceiling_speedup_on_mins": ceiling_min}
    for i, v in enumerate(variants):
        up, up_min = by_median[i], by_min[i]
        if up is None or up_min is None:
            table.rows.append([v.label, "-", "-", "-", "-", "-", v.skipped or ""])
            continue
        t = median(v.times)
        table.rows.append(
            [
                v.label,
                fmt_s(t),
                fmt_s(min(v.times)),
                fmt_x(up if i != 1 else 1.0),
                "-" if i < 2 else f"{up / ceiling:.0%}",
                "-" if i < 2 else f"{up_min / ceiling_min:.0%}",
                "-" if i < 3 else fmt_x(t / lw),
            ]
        )
        raw[v.label] = {"times": v.times}
    table.notes += [
        f"ceiling speed-up = (1 process doing all) / ({workers} processes started together) "
        f"= {ceiling:.2f}x on medians, {ceiling_min:.2f}x on minimums: forked processes, "
        "clocked from a common go signal to the last finish, no library in between",
        "a library's speed-up is the serial run over its time; 'of ceiling' divides it by the "
        "ceiling speed-up; '(on mins)' does the same with every row's minimum, the estimate "
        "least disturbed by other load on the machine",
        "Pool, PPE and mpire use forkserver like lightwork's default; joblib uses loky",
    ]
    return table, raw


class _CeilingRunner(Runner):
    """Runs ``find_pi`` on fresh forked processes and reports their own span as the time:
    the clock starts at a common go signal, after the processes have started."""

    def __init__(self) -> None:
        super().__init__(self._run)
        self.own_seconds = 0.0

    def _run(self, fn: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None):
        self.own_seconds, counts = _support.ceiling_run(items)
        return counts


def _ceiling_pool() -> AbstractContextManager[Runner]:
    from contextlib import nullcontext

    return nullcontext(_CeilingRunner())


# ---- (d) imap memory --------------------------------------------------------------------------


def section_d(cfg: dict[str, Any], workers: int, log: Callable[[str], None]) -> tuple[Table, dict]:
    n = cfg["imap_items"]
    log(f"(d) lightwork.imap over a {n:,}-item generator, in a fresh interpreter")
    out, _ = _support.run_python(
        f"import _support; _support.imap_probe({n}, {workers})", timeout=900
    )
    r = _support.last_json(out)
    table = Table(
        f"(d) lightwork.imap(x*x) over (i for i in range({n:,})), results discarded",
        ["measure", "value"],
    )
    growth = r["rss_peak_growth_mb"]
    table.rows += [
        ["time", fmt_s(r["seconds"])],
        ["per item", f"{r['seconds'] / n * 1e6:.2f} us"],
        ["throughput", f"{n / r['seconds'] / 1e6:.2f} M items/s"],
        ["serial loop over the same generator", fmt_s(r["serial_seconds"])],
        ["x serial", fmt_x(r["seconds"] / r["serial_seconds"])],
        [
            "parent RSS before (warm pool)",
            "-" if r["rss_base_mb"] is None else f"{r['rss_base_mb']:.1f} MB",
        ],
        ["parent peak RSS growth (psutil, 5 ms)", "-" if growth is None else f"{growth:.1f} MB"],
        ["parent ru_maxrss growth (high-water mark)", f"{r['maxrss_growth_mb']:.1f} MB"],
        ["chunks (incl. warm-up)", str(r["chunks_done_incl_warmup"])],
    ]
    table.notes.append(
        "run in a fresh interpreter for a clean baseline, after a 2,000-item warm-up imap; "
        "a thread samples the parent's RSS every 5 ms while the main thread consumes"
    )
    return table, r


# ---- (e) import cost --------------------------------------------------------------------------


def section_e(cfg: dict[str, Any], workers: int, log: Callable[[str], None]) -> tuple[Table, dict]:
    reps = cfg["import_repeats"]
    log(f"(e) import cost, best of {reps} fresh interpreters per module")
    # lightwork loads its names on first use: the second row is what the first Executor (or
    # map) imports before it starts a pool.
    modules = [
        "lightwork",
        "lightwork; lightwork.Executor",
        "concurrent.futures, multiprocessing",
        "joblib",
        "mpire",
    ]
    table = Table(
        f"(e) import cost in a fresh interpreter (best of {reps})",
        ["import", "best", "median", "x lightwork", "modules", "pulled in"],
    )
    raw: dict[str, Any] = {}
    ref = None
    for module in modules:
        times, last = [], None
        try:
            for _ in range(reps):
                out, _ = _support.run_python(_support.IMPORT_PROBE.format(module=module))
                last = _support.last_json(out)
                times.append(last["seconds"])
        except RuntimeError as error:
            if "ModuleNotFoundError" not in str(error):
                raise
            table.rows.append([f"import {module}", "-", "-", "-", "-", "skipped: not installed"])
            continue
        assert last is not None
        best = min(times)
        ref = best if ref is None else ref
        pulled = [m for m in last["imported"] if m != module]
        table.rows.append(
            [
                f"import {module}",
                fmt_s(best),
                fmt_s(median(times)),
                fmt_x(best / ref),
                str(last["modules"]),
                ", ".join(pulled) or "-",
            ]
        )
        raw[module] = {"times": times, **last}
    first_use = "import lightwork._engine._executor, lightwork._backends._processes._backend"
    _, err = _support.run_python(first_use, flags=["-X", "importtime"])
    top = _importtime_top(err, 6)
    raw["lightwork_importtime_top"] = top
    heavy = [
        m for m in ("numpy", "tqdm", "dask", "matplotlib") if m in raw["lightwork"]["imported"]
    ]
    table.notes += [
        "numpy, tqdm, dask, matplotlib pulled in by `import lightwork`: "
        + (", ".join(heavy) if heavy else "none"),
        "largest outside imports made by lightwork modules on a first process pool's path "
        "(-X importtime, cumulative us, one cold-ish run): "
        + ", ".join(f"{name} {us}" for name, us in top),
    ]
    return table, raw


def _importtime_top(stderr: str, k: int) -> list[tuple[str, int]]:
    """The modules from outside lightwork that a lightwork module imports directly, by
    cumulative microseconds (``-X importtime`` lists children before their parent)."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line[len("import time:") :].split("|")
        depth = len(name) - len(name.lstrip())
        rows.append((depth, int(cumulative), name.strip()))
    direct = []
    for i, (depth, cumulative, name) in enumerate(rows):
        parent = next((n for d, _, n in rows[i + 1 :] if d < depth), "")
        if parent.startswith("lightwork") and not name.startswith("lightwork"):
            direct.append((name, cumulative))
    return sorted(direct, key=lambda row: -row[1])[:k]


# ---- main -------------------------------------------------------------------------------------


SECTIONS = {"a": section_a, "b": section_b, "c": section_c, "d": section_d, "e": section_e}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, under ~20 s")
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    parser.add_argument("--json", metavar="PATH", help="write the raw numbers here")
    parser.add_argument("--sections", default="abcde", help="which sections, e.g. 'ac'")
    parser.add_argument(
        "--plot", metavar="PATH", help="draw section (a)'s times as bars here (matplotlib)"
    )
    parser.add_argument("--workers", type=int, default=2)
    for key in FULL:
        parser.add_argument(
            "--" + key.replace("_", "-"),
            type=lambda s: int(float(s)),
            help=f"default {FULL[key]:,} ({QUICK[key]:,} with --quick)",
        )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _measure.compile_lightwork()  # sections b and e time interpreter starts: see its docstring
    cfg = dict(QUICK if args.quick else FULL)
    for key in cfg:
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    _support.put_bench_dir_on_child_path()  # before any pool or forkserver starts
    workers = args.workers
    sections = [s for s in args.sections.replace(",", "") if s in SECTIONS]

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {message}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    header = _environment(workers, cfg)
    print(header + "\n", flush=True)
    tables, raw = [], {"environment": header, "config": cfg, "workers": workers}
    whole = _support.OtherLoad()
    others: dict[str, float | None] = {}
    for s in sections:
        meter = _support.OtherLoad()
        table, data = SECTIONS[s](cfg, workers, log)
        others[s] = meter.cores()
        table.notes.append(_other_load_note(others[s]))
        tables.append(table)
        raw[s] = data
        print(table.plain() + "\n", flush=True)
    elapsed = time.perf_counter() - t0
    others["all"] = whole.cores()
    footer = f"total {elapsed:.0f} s; {_other_load_note(others['all'])}"
    print(footer)
    raw["other_load_cores"] = others
    raw["seconds"] = elapsed
    if args.markdown:
        print("\n" + "\n\n".join(t.markdown() for t in tables) + "\n\n" + footer)
    if args.plot and "a" in raw:
        plot_tiny_tasks(raw["a"], cfg["tasks"], workers, args.plot)
        print(f"plot written to {args.plot}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1, default=str)
        print(f"raw numbers written to {args.json}")
    return 0


def plot_tiny_tasks(raw: dict[str, Any], tasks: int, workers: int, path: str) -> None:
    """Section (a) as horizontal bars, median with the minimum marked, on a log scale: the
    times span three orders of magnitude, which a table's digits hide."""
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window
    import matplotlib.pyplot as plt

    rows = [
        (label, d["times"])
        for label, d in raw.items()
        if d["times"] and not d.get("note", "").startswith("diagnostic")
    ]
    rows.sort(key=lambda row: median(row[1]), reverse=True)
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.2))
    for y, (label, times) in enumerate(rows):
        colour = "tab:blue" if label.startswith("lightwork") else "tab:gray"
        ax.barh(y, median(times), color=colour)
        ax.plot(min(times), y, "k|", markersize=12)
        ax.annotate(f" {fmt_s(median(times))}", (median(times), y), va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"seconds for {tasks:,} tiny tasks (x*x), {workers} workers; | = minimum")
    ax.set_title("Per-task overhead on warm pools (shorter is better)")
    ax.set_xlim(right=ax.get_xlim()[1] * 4)  # room for the labels
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _other_load_note(cores: float | None) -> str:
    if cores is None:
        return "other load on the machine: unknown (needs psutil and /proc/stat)"
    verdict = (
        "quiet"
        if cores < 0.1
        else "noisy: compare rows, not runs"
        if cores < 0.5
        else ("busy: times are inflated, trust ratios on minimums most")
    )
    return (
        f"other processes used {cores:.2f} of the {os.cpu_count()} CPUs on average meanwhile "
        f"({verdict})"
    )


def _environment(workers: int, cfg: dict[str, Any]) -> str:
    import lightwork

    versions = []
    for dist in ("lightwork", "joblib", "mpire"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    digest, newest = _source_fingerprint(os.path.dirname(lightwork.__file__))
    versions.append(f"lightwork source sha1 {digest}, newest file {newest}")
    return (
        f"Python {platform.python_version()} on {platform.machine()} {platform.system()}; "
        f"os.cpu_count()={os.cpu_count()}, lightwork.available_cpus()="
        f"{lightwork.available_cpus()}, workers={workers}\n"
        + ", ".join(versions)
        + "\nsizes: "
        + ", ".join(f"{k}={v:,}" for k, v in cfg.items())
    )


def _source_fingerprint(package_dir: str) -> tuple[str, str]:
    """A hash of the package's .py files and the newest one's time: which code was measured,
    when other people edit it while benchmarks run."""
    import hashlib
    from pathlib import Path

    files = sorted(Path(package_dir).rglob("*.py"))
    sha = hashlib.sha1()
    for path in files:
        sha.update(str(path.relative_to(package_dir)).encode() + path.read_bytes())
    newest = max((p.stat().st_mtime for p in files), default=0.0)
    return sha.hexdigest()[:12], time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(newest))


if __name__ == "__main__":
    sys.exit(main())
