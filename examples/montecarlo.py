"""Compare Monte Carlo pi on 1 process and on 5 processes.

Replaces ``montecarlo.py`` from the multithreading and multiprocessing tutorial, which times
ten runs of ``Pool(P).map(find_pi, [N//P]*P)`` with ``timeit`` for P = 1 and then P = 5, at
N = 10**7 ("sit back, this may take awhile"). What is better here:

* N is an argument with a small default (2 000 000), and ``--repeats`` (default 3) and
  ``--processes`` (default 1 5) are options, so the comparison takes seconds, not minutes;
* the samples are split into fixed-size tasks, not into P parts, so the tasks, their random
  streams and the estimates are the same for every P: with the same seeds, 1 and 5 processes
  give identical estimates, and the script checks it, so only the time differs;
* the times are printed per run and summed up as the best warm run and the speed-up, with the
  pool start-up kept out of the comparison (it is in the first run only);
* a process count above the number of tasks is capped, since extra processes would only idle.

::

    python montecarlo.py                 # 2 000 000 samples, 1 vs 5 processes
    python montecarlo.py 10000000 --repeats 10
"""

from __future__ import annotations

import argparse

import lightwork
from lightwork.workloads import monte_carlo_pi, split_samples

KERNEL = "python"  # the tutorial's pure-Python find_pi loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("N", nargs="?", type=int, default=2_000_000, help="total samples")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 5], help="P to compare")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per P")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first run")
    args = parser.parse_args(argv)
    if args.N < 1 or args.repeats < 1 or min(args.processes) < 1:
        parser.error("N, --processes and --repeats must be positive")

    tasks = len(split_samples(args.N, KERNEL))
    print(f"{args.N} samples in {tasks} tasks, {lightwork.available_cpus()} CPUs available")
    best: dict[int, float] = {}
    estimates: dict[int, list[float]] = {}
    for processes in args.processes:
        workers = min(processes, tasks)
        times = []
        estimates[processes] = []
        for run in range(args.repeats):
            result = monte_carlo_pi(
                args.N, kernel=KERNEL, max_workers=workers, seed=args.seed + run
            )
            times.append(result.seconds)
            estimates[processes].append(result.estimate)
            print(f"{result.estimate:0.7f}  in {result.seconds:.3f} s")
        best[processes] = min(times[1:] or times)
        capped = f" (capped from {processes})" if workers < processes else ""
        print(
            f"{args.N} total iterations with {workers} processes{capped}: "
            f"best {best[processes]:.3f} s of {args.repeats} runs"
        )

    first = args.processes[0]
    for processes in args.processes[1:]:
        print(
            f"speed-up of {min(processes, tasks)} over {min(first, tasks)} processes: "
            f"{best[first] / best[processes]:.2f}x"
        )
    same = all(values == estimates[first] for values in estimates.values())
    print(f"same estimates for every process count: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
