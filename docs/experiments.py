"""The tutorials' timing experiments, reproduced with the scaling lab.

Writes ``docs/experiments.md`` and its plots. Run it on a quiet machine:

    .venv/bin/python docs/experiments.py [--quick]

1. montecarlo.py: pure-Python Monte Carlo pi, 10**7 samples, on 1 and 5 processes.
2. montecarlo2.py at 500 processes: what over-subscribing the cores costs.
3. worker_pool.py: four two-second tasks on four workers, then five.
4. calc_pi.py against calc_pi2.py: three BBP sums, serially and in a pool of three.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import lightwork
from lightwork.lab import scale
from lightwork.workloads import bbp_pi_decimal, count_inside_python

HERE = Path(__file__).parent


def find_pi(samples: int) -> int:
    """The tutorials' find_pi: its own random stream per task, so any split gives one answer."""
    return count_inside_python(lightwork.random(), samples)


def square_after(seconds: float) -> float:
    """worker_pool.py's square: sleep, then compute."""
    time.sleep(seconds)
    return seconds * seconds


def montecarlo(samples: int, repeat: int) -> str:
    tasks = [samples // 5] * 5  # the tutorial's split: N // P samples for each of P = 5
    report = scale(
        find_pi, tasks, max_workers=[1, 2, 5], repeat=repeat, chunksize=1, name="montecarlo.py"
    )
    report.plot(HERE / "montecarlo.png")
    fit = report.fits["processes"]
    return (
        "## 1. montecarlo.py: 1 and 5 processes\n\n"
        f"{samples:,} samples of the tutorial's pure-Python kernel, split into 5 tasks as the "
        "tutorial splits them, on 1, 2 and 5 worker processes of this 2-core machine.\n\n"
        f"```\n{report.table()}\n```\n\n![montecarlo](montecarlo.png)\n\n"
        "Two workers share five equal tasks three and two, so they finish after three tasks' "
        "time: 5/3 = 1.67x at best, which is what the fitted serial fraction "
        f"({fit.serial_fraction:.3f}) mostly measures: granularity, not serial code. Five "
        "workers on two cores run the five tasks at once, two at a time, and reach about 2x, "
        "the core count. The tutorial saw 28.1 s -> 21.7 s (1.3x) with 5 processes.\n"
    )


def montecarlo2(samples: int, counts: list[int], repeat: int) -> str:
    rows = []
    for processes in counts:
        tasks = [samples // processes] * processes
        with lightwork.Executor(processes) as executor:
            started = time.perf_counter()
            executor.start()
            startup = time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(repeat):
                list(executor.imap(find_pi, tasks, chunksize=1))
            seconds = (time.perf_counter() - started) / repeat
        rows.append((processes, startup, seconds))
    one = rows[0][2]
    table = "\n".join(
        f"| {p} | {startup:.2f} | {s:.2f} | {one / s:.2f} |" for p, startup, s in rows
    )
    return (
        "## 2. montecarlo2.py: over-subscription\n\n"
        f"{samples:,} samples split into P tasks on P worker processes (the tutorial ran "
        "P = 500 and took 36.4 s, slower than its 21.7 s with 5).\n\n"
        "| processes | start-up s | compute s | speed-up |\n| ---: | ---: | ---: | ---: |\n"
        f"{table}\n\n"
        "Past the core count every extra process only adds start-up, memory and context "
        "switches: Amdahl's law caps the speed-up at 1/f, but the cores cap it sooner. "
        "lightwork starts workers only as tasks need them, and `max_workers=None` means the "
        "CPUs this process may use.\n"
    )


def worker_pool(seconds: float) -> str:
    lines = []
    for count in (4, 5):
        with lightwork.Executor(4, backend="threads") as executor:
            executor.start()
            started = time.perf_counter()
            list(executor.imap(square_after, [seconds] * count, chunksize=1))
            lines.append((count, time.perf_counter() - started))
    table = "\n".join(f"| {n} | {t:.2f} | {-(-n // 4)} |" for n, t in lines)
    return (
        "## 3. worker_pool.py: four tasks, then five, on four workers\n\n"
        f"Tasks that each sleep {seconds:g} s on 4 workers (the tutorial: 2.03 s, then 4.03 s).\n\n"
        "| tasks | seconds | rounds |\n| ---: | ---: | ---: |\n"
        f"{table}\n\n"
        "The fifth task waits for a free worker: a second round. Amdahl's law does not cover "
        "this: it is granularity. No split of five equal, indivisible tasks over four workers "
        "beats two rounds; smaller tasks would.\n"
    )


def calc_pi(repeat: int) -> str:
    precisions = [1000, 1500, 2000]
    report = scale(
        bbp_pi_decimal, precisions, max_workers=[1, 2, 3], repeat=repeat, chunksize=1,
        name="calc_pi.py vs calc_pi2.py",
    )  # fmt: skip
    report.plot(HERE / "calc_pi.png")
    timed = []
    for precision in precisions:
        started = time.perf_counter()
        bbp_pi_decimal(precision)
        timed.append(time.perf_counter() - started)
    critical = sum(timed) / max(timed)
    return (
        "## 4. calc_pi.py against calc_pi2.py\n\n"
        "The BBP sum at precisions 1000, 1500 and 2000, serially (calc_pi.py) and in a pool "
        "(calc_pi2.py: three processes).\n\n"
        f"```\n{report.table()}\n```\n\n![calc_pi](calc_pi.png)\n\n"
        f"The three sums take {', '.join(f'{t * 1e3:.1f}' for t in timed)} ms alone: however "
        f"many workers, the job lasts as long as its largest task, so the speed-up can't "
        f"exceed {critical:.2f} (the sum over the largest): the serial fraction here is the "
        "largest task's share, and the tutorial's 0.57 s -> 0.38 s (1.5x) was near it.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    samples = 10**6 if args.quick else 10**7
    repeat = 1 if args.quick else 3
    counts = [1, 2, 8, 32] if args.quick else [1, 2, 5, 20, 100]
    sections = [
        "# The tutorials' experiments, reproduced\n\n"
        f"Made by `.venv/bin/python docs/experiments.py` on a {os.cpu_count()}-CPU machine.\n",
        montecarlo(samples, repeat),
        montecarlo2(samples, counts, repeat),
        worker_pool(0.2 if args.quick else 2.0),
        calc_pi(repeat),
    ]
    (HERE / "experiments.md").write_text("\n".join(sections))
    print((HERE / "experiments.md").read_text())


if __name__ == "__main__":
    main()
