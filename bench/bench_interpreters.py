"""Subinterpreters (``backend="interpreters"``, Python 3.14+) beside processes and threads, side
by side in one run. On an older Python it says it needs 3.14 and exits 0.

    python bench/bench_interpreters.py              # ~1-2 minutes
    python bench/bench_interpreters.py --quick      # smoke run, < 30 s
    python bench/bench_interpreters.py --markdown   # Markdown tables

  a  start-up to the first result: ``Executor(2, backend=...)``, then ``submit(pow, 2, 10)``
     until its result is back (shutdown not timed), for interpreters, processes started by a
     fork server, and threads. (1) in this process, each pool made anew in every round after
     a first, untimed one (the fork server is running by then: a new pool in a running
     program); (2) the first pool of a fresh interpreter, timed by that subprocess from
     ``import lightwork`` on (the fork server's own start included). Target: interpreters at
     most half of processes' start-up, in both.
  b  200,000 tiny tasks (``abs``) through ``lightwork.map`` on a warm pool of 2 workers (chunks
     measured), against serial.
  c  Monte Carlo pi with the pure-Python kernel: ``monte_carlo_pi(kernel="python",
     backend=..., max_workers=2)`` on a warm pool, against the machine's two-process ceiling
     measured in the same rounds (the same kernel called directly in 2 already-started
     processes released together, half the samples each; see bench/bench_pi.py). Target:
     interpreters' time within 5% of the ceiling's (ceiling / interpreters >= 0.95).

Times are medians and minimums over interleaved rounds whose order rotates.
"""

from __future__ import annotations

import subprocess
import sys
import time

import _measure
from _measure import Table, ceiling_run, fmt_s, fmt_x, interleaved, log, med, verdict

FULL = {"a_rounds": 7, "a_fresh_rounds": 5, "b_rounds": 5, "c_samples": 24_000_000, "c_rounds": 3}
QUICK = {"a_rounds": 3, "a_fresh_rounds": 2, "b_rounds": 2, "c_samples": 4_000_000, "c_rounds": 1}
TINY_TASKS = 200_000
STARTUP_TARGET = 0.5  # interpreters' start-up / processes'
CEILING_TARGET = 0.95  # the ceiling's time / interpreters'
POOLS = {
    "interpreters": {"backend": "interpreters"},
    "processes (forkserver)": {"backend": "processes", "start_method": "forkserver"},
    "threads": {"backend": "threads"},
}
FRESH = """
import time
started = time.perf_counter()
import lightwork
with lightwork.Executor(2, **{options!r}) as ex:
    ex.submit(pow, 2, 10).result()
    print(time.perf_counter() - started)
"""


def first_result(options: dict[str, str]) -> float:
    import lightwork

    started = time.perf_counter()
    ex = lightwork.Executor(2, **options)  # type: ignore[arg-type]
    try:
        ex.submit(pow, 2, 10).result()
        return time.perf_counter() - started
    finally:
        ex.shutdown(wait=True)


def fresh_first_result(options: dict[str, str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", FRESH.format(options=options)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(done.stdout.strip().splitlines()[-1])


def section_a(cfg: dict[str, int]) -> tuple[Table, float, float]:
    log("(a) start-up to the first result")
    for options in POOLS.values():
        first_result(options)  # untimed: starts the fork server, loads every module
    here = interleaved(
        {name: lambda o=options: first_result(o) for name, options in POOLS.items()},
        cfg["a_rounds"],
        label="(a) this process",
    )
    fresh = interleaved(
        {name: lambda o=options: fresh_first_result(o) for name, options in POOLS.items()},
        cfg["a_fresh_rounds"],
        label="(a) fresh interpreters",
    )
    table = Table(
        "(a) start-up: Executor(2) to the first submit's result",
        ["pool", "new pool here (median)", "min", "first pool of a program (median)", "min"],
    )
    for name in POOLS:
        table.add(
            name, fmt_s(med(here[name])), fmt_s(min(here[name])), fmt_s(med(fresh[name])),
            fmt_s(min(fresh[name])),
        )  # fmt: skip
    processes = "processes (forkserver)"
    ratio_here = med(here["interpreters"]) / med(here[processes])
    ratio_fresh = med(fresh["interpreters"]) / med(fresh[processes])
    table.notes.append(
        f"interpreters / processes: {ratio_here:.2f} for a new pool here, {ratio_fresh:.2f} for "
        f"a program's first pool (medians; target <= {STARTUP_TARGET}: "
        f"{verdict(max(ratio_here, ratio_fresh) <= STARTUP_TARGET)})"
    )
    table.notes.append(
        f"{cfg['a_rounds']} and {cfg['a_fresh_rounds']} rounds; a program's first pool is timed "
        "by a subprocess from `import lightwork` on, interpreter start-up excluded"
    )
    return table, ratio_here, ratio_fresh


def section_b(cfg: dict[str, int]) -> Table:
    log(f"(b) {TINY_TASKS:,} tiny tasks")
    import lightwork

    items = range(TINY_TASKS)
    backends = ["serial", "interpreters", "processes", "threads"]
    for backend in backends:  # warm pools, as lightwork.map keeps them
        lightwork.map(abs, range(1000), backend=backend, max_workers=2)

    def run(backend: str) -> float:
        started = time.perf_counter()
        results = lightwork.map(abs, items, backend=backend, max_workers=2)
        seconds = time.perf_counter() - started
        assert len(results) == TINY_TASKS
        return seconds

    times = interleaved({b: lambda b=b: run(b) for b in backends}, cfg["b_rounds"], label="(b)")
    table = Table(
        f"(b) lightwork.map(abs, range({TINY_TASKS:,})), warm pool of 2",
        ["backend", "median", "min", "per task", "x serial"],
    )
    serial = med(times["serial"])
    for backend in backends:
        m = med(times[backend])
        table.add(
            backend, fmt_s(m), fmt_s(min(times[backend])), f"{m / TINY_TASKS * 1e9:.0f} ns",
            fmt_x(m / serial),
        )  # fmt: skip
    table.notes.append(f"{cfg['b_rounds']} rounds; chunks sized by measuring (chunksize=None)")
    return table


def section_c(cfg: dict[str, int]) -> tuple[Table, float]:
    samples = cfg["c_samples"]
    log(f"(c) Monte Carlo pi, pure Python, {samples:,} samples on 2 workers")
    from lightwork.workloads import TASK_SAMPLES, monte_carlo_pi

    def run(backend: str) -> float:
        monte_carlo_pi(TASK_SAMPLES["python"] * 4, kernel="python", backend=backend, max_workers=2)
        started = time.perf_counter()
        monte_carlo_pi(samples, kernel="python", backend=backend, max_workers=2)
        return time.perf_counter() - started

    half = samples // 2
    names = ["interpreters", "processes", "threads"]
    ceiling = "ceiling: 2 processes, half each"
    variants: dict[str, _measure.Measure] = {n: lambda n=n: run(n) for n in names}
    variants[ceiling] = lambda: ceiling_run("python", [half, samples - half])
    times = interleaved(variants, cfg["c_rounds"], label="(c)")
    c = med(times[ceiling])
    table = Table(
        f"(c) monte_carlo_pi(kernel='python', max_workers=2), {samples:,} samples",
        ["variant", "median", "min", "samples/s", "ceiling / this"],
    )
    for name in [*names, ceiling]:
        m = med(times[name])
        table.add(
            name, fmt_s(m), fmt_s(min(times[name])), f"{samples / m / 1e6:.1f} M", f"{c / m:.3f}"
        )
    ratio = c / med(times["interpreters"])
    best = min(times[ceiling]) / min(times["interpreters"])
    table.notes.append(
        f"interpreters: {ratio:.3f} of the ceiling's speed (medians; target >= "
        f"{CEILING_TARGET}: {verdict(ratio >= CEILING_TARGET)}); from the minimums {best:.3f}"
    )
    table.notes.append(
        f"{cfg['c_rounds']} rounds; tasks of {TASK_SAMPLES['python']:,} samples; the ceiling's "
        "processes are started and warm before its clock starts"
    )
    return table, ratio


def main() -> int:
    args = _measure.parse_args(__doc__)
    if sys.version_info < (3, 14):
        print(
            "bench_interpreters.py needs Python 3.14 or newer (backend='interpreters'); this is "
            f"{sys.version.split()[0]}: nothing measured. On this machine: "
            "tools/py314.sh runs the tests on 3.14; see docs/howto/interpreters.md"
        )
        return 0
    _measure.compile_lightwork()
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        for key in ("a_rounds", "a_fresh_rounds", "b_rounds", "c_rounds"):
            cfg[key] = args.rounds
    header = _measure.machine_line() + "\n" + _measure.cpu_check()
    log(header)
    started = time.perf_counter()
    table_a, startup_here, startup_fresh = section_a(cfg)
    table_b = section_b(cfg)
    table_c, ratio = section_c(cfg)
    targets = Table("Targets", ["target", "measured", "verdict"])
    targets.add(
        "(a) interpreters' start-up <= 0.5 x a forkserver pool's (new pool / first pool)",
        f"{startup_here:.2f} / {startup_fresh:.2f}",
        verdict(max(startup_here, startup_fresh) <= STARTUP_TARGET),
    )
    targets.add(
        "(c) pure-Python MC pi on 2 interpreters within 5% of the 2-process ceiling",
        f"{ratio:.3f}",
        verdict(ratio >= CEILING_TARGET),
    )
    _measure.print_report(
        header,
        f"Python {sys.version.split()[0]}; {_measure.versions('lightwork')}",
        (table_a, table_b, table_c, targets),
        started,
        args.markdown,
    )
    return 0


if __name__ == "__main__":
    _measure.put_bench_dir_on_child_path()
    sys.exit(main())
