"""Monte Carlo pi: lightwork's kernels, its parallel speed-up against the machine's ceiling, the
``lightwork pi`` command against the tutorial's script, and reproducibility. One run, side by side.

    cd /work/main && .venv/bin/python bench/bench_pi.py              # ~2-3 minutes
    cd /work/main && .venv/bin/python bench/bench_pi.py --quick      # smoke run, < 20 s
    cd /work/main && .venv/bin/python bench/bench_pi.py --markdown   # Markdown tables

  a  single core: ``lightwork.workloads.count_inside_numpy`` samples/s, next to the textbook
     NumPy formulation (float64 x and y in blocks of 2**20, ``x*x + y*y <= 1``) and the pure-
     Python kernel ``count_inside_python``.  Target: >= 200 M samples/s.
  b  2 workers against 1: ``monte_carlo_pi(samples, kernel=k, max_workers=p)`` (processes, warm
     pool: a small call with the same ``max_workers`` right before each timed one, because the
     pool behind lightwork.map is per (backend, max_workers) and changing it restarts the pool),
     against the machine's ceiling measured in the same rounds: the same kernel called directly
     in independent processes, already started and warm, released together: 2 processes doing
     half the samples each against 1 doing all of them.  Target: lightwork's speed-up within 5%
     of the ceiling's (ratio >= 0.95), for kernel="numpy" (4e8 samples) and kernel="python"
     (fewer samples).
  c  end to end, start-up included: ``lightwork pi --samples 1e8`` (the venv's console script)
     as a subprocess, against the tutorial's monte_carlo_pi.py algorithm (a plain loop of
     ``random()`` and ``sqrt(pow(x, 2) + pow(y, 2)) < 1``) run as a subprocess on 2e6 samples and
     scaled to 1e8: interpreter start-up (``python -c pass``, measured too) + 50x the rest.
     Target: >= 100x.
  d  a seeded run (``seed=2024``) on 1 and 2 workers, threads and processes (and serial), both
     kernels: every estimate printed to the last digit.  Target: identical.

Times are medians and minimums over interleaved rounds whose order rotates.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import _measure
import numpy as np
from _measure import Table, ceiling_run, fmt_rate, fmt_s, fmt_x, interleaved, log, med, verdict

import lightwork
from lightwork.workloads import (
    TASK_SAMPLES,
    count_inside_numpy,
    count_inside_python,
    monte_carlo_pi,
)

FULL = {
    "a_samples": 1 << 26,
    "a_python_samples": 1 << 21,
    "a_rounds": 7,
    "numpy_samples": 400_000_000,
    "python_samples": 24_000_000,
    "b_rounds": 5,
    "b_python_rounds": 3,
    "cli_samples": "1e8",
    "tutorial_samples": 2_000_000,
    "c_rounds": 3,
    "d_numpy": 50_000_000,
    "d_python": 2_000_000,
}
QUICK = {
    "a_samples": 1 << 24,
    "a_python_samples": 1 << 19,
    "a_rounds": 3,
    "numpy_samples": 100_000_000,
    "python_samples": 4_000_000,
    "b_rounds": 1,
    "b_python_rounds": 1,
    "cli_samples": "1e8",
    "tutorial_samples": 500_000,
    "c_rounds": 1,
    "d_numpy": 20_000_000,
    "d_python": 600_000,
}
SEED = 2024
RATE_TARGET = 200e6
SPEEDUP_TARGET = 0.95
CLI_TARGET = 100.0

TUTORIAL = """
import sys
from math import pow, sqrt
from random import random

def monte_carlo_pi(n):
    inside = 0
    for i in range(n):
        x = random()
        y = random()
        if sqrt(pow(x, 2) + pow(y, 2)) < 1:
            inside += 1
    return 4 * inside / n

print(monte_carlo_pi(int(sys.argv[1])))
"""


def textbook_numpy(rng: np.random.Generator, samples: int, block: int = 1 << 20) -> int:
    inside = 0
    for start in range(0, samples, block):
        m = min(block, samples - start)
        x = rng.random(m)
        y = rng.random(m)
        inside += int(np.count_nonzero(x * x + y * y <= 1.0))
    return inside


# ---- (a) -------------------------------------------------------------------------------------


def section_a(cfg: dict, markdown: bool) -> tuple[Table, float]:
    log("(a) single-core kernels")
    n, n_py = cfg["a_samples"], cfg["a_python_samples"]
    rng = np.random.default_rng(1)
    py_rng = __import__("random").Random(1)

    variants = {
        "count_inside_numpy (lightwork)": _measure.stopwatch(lambda: count_inside_numpy(rng, n)),
        "textbook NumPy float64 (x*x+y*y<=1)": _measure.stopwatch(lambda: textbook_numpy(rng, n)),
        "count_inside_python (lightwork)": _measure.stopwatch(
            lambda: count_inside_python(py_rng, n_py)
        ),
    }
    counts = {
        "count_inside_numpy (lightwork)": n,
        "textbook NumPy float64 (x*x+y*y<=1)": n,
        "count_inside_python (lightwork)": n_py,
    }
    for fn in variants.values():
        fn()
    times = interleaved(variants, cfg["a_rounds"], label="(a)")
    table = Table(
        "(a) single core, samples per second",
        ["kernel", "samples", "median", "min", "rate (median)", "rate (best)", "x lightwork"],
    )
    rates = {k: counts[k] / med(v) for k, v in times.items()}
    lw = rates["count_inside_numpy (lightwork)"]
    for name, values in times.items():
        table.add(
            name,
            f"{counts[name]:,}",
            fmt_s(med(values)),
            fmt_s(min(values)),
            fmt_rate(rates[name]),
            fmt_rate(counts[name] / min(values)),
            fmt_x(rates[name] / lw),
        )
    table.notes.append(
        f"count_inside_numpy: {lw / 1e6:.0f} M samples/s (median; target >= "
        f"{RATE_TARGET / 1e6:.0f} M/s: {verdict(lw >= RATE_TARGET)}); {cfg['a_rounds']} rounds"
    )
    return table, lw


# ---- (b) -------------------------------------------------------------------------------------


def lw_run(samples: int, kernel: str, workers: int) -> float:
    """A small call first (same max_workers: the pool is warm and has every worker busy once),
    then the timed one."""
    monte_carlo_pi(TASK_SAMPLES[kernel] * 2 * workers, kernel=kernel, max_workers=workers)
    start = time.perf_counter()
    result = monte_carlo_pi(samples, kernel=kernel, max_workers=workers)
    seconds = time.perf_counter() - start
    if abs(result.estimate - np.pi) > 6 * result.stderr + 1e-9:
        raise AssertionError(f"implausible estimate {result.estimate}")
    return seconds


def section_b(cfg: dict, kernel: str, markdown: bool) -> tuple[Table, float]:
    samples = cfg[f"{kernel}_samples"]
    rounds = cfg["b_rounds"] if kernel == "numpy" else cfg["b_python_rounds"]
    log(f"(b) speed-up, kernel={kernel}, {samples:.3g} samples")
    half = samples // 2
    names = {
        "lw1": f"monte_carlo_pi(kernel={kernel!r}, max_workers=1)",
        "lw2": f"monte_carlo_pi(kernel={kernel!r}, max_workers=2)",
        "c1": "ceiling: 1 process, all samples",
        "c2": "ceiling: 2 processes, half each",
    }
    variants = {
        names["lw1"]: lambda: lw_run(samples, kernel, 1),
        names["lw2"]: lambda: lw_run(samples, kernel, 2),
        names["c1"]: lambda: ceiling_run(kernel, [samples]),
        names["c2"]: lambda: ceiling_run(kernel, [half, samples - half]),
    }
    times = interleaved(variants, rounds, label=f"(b) {kernel}")
    m = {k: med(times[v]) for k, v in names.items()}
    b = {k: min(times[v]) for k, v in names.items()}
    lw_speedup, ceiling = m["lw1"] / m["lw2"], m["c1"] / m["c2"]
    ratio = lw_speedup / ceiling
    best_ratio = (b["lw1"] / b["lw2"]) / (b["c1"] / b["c2"])
    table = Table(
        f"(b) kernel={kernel!r}, {samples:,} samples: 2 workers against 1",
        ["variant", "median", "min", "rate (median)", "speed-up (median)"],
    )
    for key in ("lw1", "lw2", "c1", "c2"):
        speedup = ""
        if key == "lw2":
            speedup = fmt_x(lw_speedup)
        elif key == "c2":
            speedup = fmt_x(ceiling)
        table.add(names[key], fmt_s(m[key]), fmt_s(b[key]), fmt_rate(samples / m[key]), speedup)
    table.notes.append(
        f"lightwork's speed-up / the ceiling's = {ratio:.3f} (medians; target >= "
        f"{SPEEDUP_TARGET}: {verdict(ratio >= SPEEDUP_TARGET)}); from the minimums: "
        f"{best_ratio:.3f}"
    )
    table.notes.append(
        f"{rounds} rounds; lightwork splits the samples into tasks of {TASK_SAMPLES[kernel]:,} "
        f"({-(-samples // TASK_SAMPLES[kernel])} tasks); its times include dispatch and results; "
        "the ceiling's include no process start-up (its processes are started and warm first)"
    )
    return table, ratio


# ---- (c) -------------------------------------------------------------------------------------


def lightwork_command() -> list[str]:
    script = Path(sys.executable).with_name("lightwork")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "lightwork"]


def run(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    return time.perf_counter() - start, done.stdout


def section_c(cfg: dict, markdown: bool) -> tuple[Table, float]:
    log("(c) lightwork pi --samples 1e8 against the tutorial's script")
    cli = [*lightwork_command(), "pi", "--samples", cfg["cli_samples"]]
    n_tut = cfg["tutorial_samples"]
    target_samples = int(float(cfg["cli_samples"]))
    scale = target_samples / n_tut
    tutorial = [sys.executable, "-c", TUTORIAL, str(n_tut)]
    startup = [sys.executable, "-c", "pass"]
    outputs: dict[str, str] = {}

    def measure(name: str, command: list[str]) -> _measure.Measure:
        def go() -> float:
            seconds, out = run(command)
            outputs[name] = out
            return seconds

        return go

    fixed = [*lightwork_command(), "pi", "--samples", "1"]
    names = {
        "cli": f"lightwork pi --samples {cfg['cli_samples']}",
        "fixed": "lightwork pi --samples 1 (its fixed costs)",
        "tut": f"tutorial script, {n_tut:,} samples",
        "py": "python -c pass (start-up)",
    }
    run(cli)  # warm the page cache: imports, the forkserver's modules
    times = interleaved(
        {
            names["cli"]: measure(names["cli"], cli),
            names["fixed"]: measure(names["fixed"], fixed),
            names["tut"]: measure(names["tut"], tutorial),
            names["py"]: measure(names["py"], startup),
        },
        cfg["c_rounds"],
        label="(c)",
    )
    m = {k: med(times[v]) for k, v in names.items()}
    b = {k: min(times[v]) for k, v in names.items()}
    scaled = m["py"] + (m["tut"] - m["py"]) * scale
    scaled_best = b["py"] + (b["tut"] - b["py"]) * scale
    ratio = scaled / m["cli"]
    table = Table(
        f"(c) end to end, {target_samples:.0e} samples, subprocesses, start-up included",
        ["variant", "median", "min", "x lightwork pi"],
    )
    table.add(names["cli"], fmt_s(m["cli"]), fmt_s(b["cli"]), "1.00x")
    table.add(names["fixed"], fmt_s(m["fixed"]), fmt_s(b["fixed"]), "")
    table.add(names["tut"], fmt_s(m["tut"]), fmt_s(b["tut"]), "")
    table.add(
        f"tutorial script scaled to {target_samples:.0e}",
        fmt_s(scaled),
        fmt_s(scaled_best),
        fmt_x(ratio, 1),
    )
    table.add(names["py"], fmt_s(m["py"]), fmt_s(b["py"]), "")
    first_line = outputs.get(names["cli"], "").strip().splitlines()
    table.notes.append(
        f"lightwork pi is {ratio:.0f}x faster than the tutorial's loop (medians; target >= "
        f"{CLI_TARGET:.0f}x: {verdict(ratio >= CLI_TARGET)}); from the minimums "
        f"{scaled_best / b['cli']:.0f}x"
    )
    table.notes.append(
        f"scaled = start-up + (tutorial - start-up) x {scale:g}; {cfg['c_rounds']} rounds; "
        f"command: {' '.join(cli)}"
    )
    if first_line:
        table.notes.append("lightwork pi printed: " + " / ".join(first_line))
    table.notes.append(
        "--samples 1 is interpreter start-up, imports (NumPy's ~100 ms included), backend "
        "auto's probe, starting the pool it picks (threads for this kernel) and shutdown: "
        "what 1e8 samples cost beyond it is "
        f"{fmt_s(m['cli'] - m['fixed'])}"
    )
    return table, ratio


# ---- (d) -------------------------------------------------------------------------------------


def section_d(cfg: dict, markdown: bool) -> tuple[Table, bool]:
    log("(d) seeded runs")
    table = Table(
        f"(d) seed={SEED}: the estimate on every backend and worker count",
        ["kernel", "backend", "max_workers", "samples", "inside", "estimate (repr)"],
    )
    identical = True
    for kernel in ("numpy", "python"):
        samples = cfg[f"d_{kernel}"]
        seen: set[tuple[int, str]] = set()
        for backend, workers in (
            ("serial", 1),
            ("threads", 1),
            ("threads", 2),
            ("processes", 1),
            ("processes", 2),
        ):
            result = monte_carlo_pi(
                samples, kernel=kernel, backend=backend, max_workers=workers, seed=SEED
            )
            seen.add((result.inside, repr(result.estimate)))
            table.add(
                kernel,
                backend,
                workers,
                f"{samples:,}",
                f"{result.inside:,}",
                repr(result.estimate),
            )
        identical = identical and len(seen) == 1
        table.notes.append(
            f"kernel={kernel!r}: {'identical' if len(seen) == 1 else 'DIFFERENT'} on all 5 runs"
        )
    table.notes.append(f"target: identical: {verdict(identical)}")
    return table, identical


def main() -> int:
    args = _measure.parse_args(__doc__)
    _measure.compile_lightwork()  # (c) times `lightwork pi` from start-up: see its docstring
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        for key in ("a_rounds", "b_rounds", "b_python_rounds", "c_rounds"):
            cfg[key] = args.rounds
    header = _measure.machine_line() + "\n" + _measure.cpu_check()
    log(header)
    started = time.perf_counter()
    table_a, rate = section_a(cfg, args.markdown)
    table_bn, ratio_numpy = section_b(cfg, "numpy", args.markdown)
    table_bp, ratio_python = section_b(cfg, "python", args.markdown)
    table_c, ratio_cli = section_c(cfg, args.markdown)
    table_d, identical = section_d(cfg, args.markdown)
    targets = Table("Targets", ["target", "measured", "verdict"])
    targets.add(
        "(a) count_inside_numpy >= 200 M samples/s, one core",
        fmt_rate(rate),
        verdict(rate >= RATE_TARGET),
    )
    targets.add(
        "(b) numpy: speed-up on 2 workers >= 0.95 x the ceiling's",
        f"{ratio_numpy:.3f}",
        verdict(ratio_numpy >= SPEEDUP_TARGET),
    )
    targets.add(
        "(b) python: speed-up on 2 workers >= 0.95 x the ceiling's",
        f"{ratio_python:.3f}",
        verdict(ratio_python >= SPEEDUP_TARGET),
    )
    targets.add(
        "(c) lightwork pi --samples 1e8 >= 100x the tutorial's script",
        fmt_x(ratio_cli, 0),
        verdict(ratio_cli >= CLI_TARGET),
    )
    targets.add("(d) seeded estimates identical everywhere", str(identical), verdict(identical))
    _measure.print_report(
        header,
        f"{_measure.versions('lightwork', 'numpy')} (lightwork {lightwork.__version__})",
        (table_a, table_bn, table_bp, table_c, table_d, targets),
        started,
        args.markdown,
    )
    return 0


if __name__ == "__main__":
    _measure.put_bench_dir_on_child_path()
    sys.exit(main())
