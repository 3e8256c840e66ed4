"""lightwork bench: the built-in workloads on lightwork and its peers, side by side.

Each contender gets a warm pool of the same size (created, then warmed with a few tasks,
before timing), runs the same items ``repeat`` times, and is reported by its median time and
its ratio to lightwork's process backend. Peers that are not installed are skipped with a note.
The machine is shared and noisy: only ratios measured in the same run mean anything.

Every contender runs the same function on the same items: for the pi workloads, whose lab
tasks draw from ``lightwork.rng()`` (which only a task run by lightwork has), a variant seeded
by the task's index (``Workload.for_any_pool``), so every contender computes the same numbers,
and a contender whose results differ from lightwork's is flagged. A contender that fails gets
a row saying so, and the command exits 1 naming it.

    lightwork bench tiny pi-python --max-workers 2 --repeat 3

On Python 3.14+ lightwork's interpreters backend and the standard library's
InterpreterPoolExecutor run too; where a workload needs NumPy, which cannot load in a
subinterpreter, their rows are skipped with that reason.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

from .._core._cpus import available_cpus
from . import _peers as peers
from ._peers import Runner
from ._workloads import WORKLOADS

# PPE with chunksize=1 pays a round trip per task: it is timed on at most this many items and
# scaled linearly, or a tiny-task row would take minutes.
PER_TASK_PEER_MAX_ITEMS = 10_000
DEFAULT_WORKLOADS = ("tiny", "pi-python", "sleep")


@dataclass(frozen=True)
class BenchRow:
    workload: str
    contender: str
    items: int
    median_seconds: float | None  #: None when the contender is not installed
    min_seconds: float | None
    ratio_to_lightwork: float | None  #: > 1: slower than lightwork's process backend
    note: str = ""
    failed: bool = False  #: the contender raised: ``note`` says what


def contenders(workers: int) -> dict[str, Callable[[], AbstractContextManager[Runner]]]:
    """Name -> a context manager giving a warm runner; the first is the reference. On Python
    3.14+ subinterpreters join: lightwork's and the standard library's pool of them."""
    made: dict[str, Callable[[], AbstractContextManager[Runner]]] = {
        "lightwork processes": lambda: peers.lightwork_pool(workers, "processes"),
        "lightwork threads": lambda: peers.lightwork_pool(workers, "threads"),
    }
    if sys.version_info >= (3, 14):
        made["lightwork interpreters"] = lambda: peers.lightwork_pool(workers, "interpreters")
    return (
        made
        | {
            "lightwork auto": lambda: peers.lightwork_pool(workers, "auto"),
            "multiprocessing.Pool": lambda: peers.mp_pool(workers, "forkserver"),
            "ProcessPoolExecutor, chunksize 1": lambda: peers.ppe_pool(workers, "forkserver"),
            "ProcessPoolExecutor, chunksize n/4w": lambda: _tuned(
                peers.ppe_pool(workers, "forkserver"), workers
            ),
            "ThreadPoolExecutor": lambda: peers.tpe_pool(workers),
            "joblib": lambda: peers.joblib_pool(workers),
            "mpire": lambda: peers.mpire_pool(workers, "forkserver"),
        }
        | _interpreter_peers(workers)
    )


def _interpreter_peers(workers: int) -> dict[str, Callable[[], AbstractContextManager[Runner]]]:
    if sys.version_info < (3, 14):
        return {}
    # One Interpreter.call per item: timed on a subset, as the other per-task pool is.
    return {"InterpreterPoolExecutor, chunksize 1": lambda: peers.ipe_pool(workers)}


@contextmanager
def _tuned(pool: AbstractContextManager[Runner], workers: int) -> Iterator[Runner]:
    """The pool's runner with four chunks per worker instead of the pool's default."""
    with pool as runner:

        def run(fn: Callable[[Any], Any], items: Sequence[Any], chunksize: int | None) -> list[Any]:
            return runner(fn, items, chunksize or peers.tuned_chunksize(len(items), workers))

        yield Runner(run, runner.stats)


def bench(
    workloads: Sequence[str] = DEFAULT_WORKLOADS,
    *,
    items: int | None = None,
    max_workers: int | None = None,
    repeat: int = 3,
    progress: Callable[[str], None] | None = None,
) -> list[BenchRow]:
    """Time every contender on every workload; the rows of the comparison table."""
    workers = max_workers or available_cpus()
    rows: list[BenchRow] = []
    for name in workloads:
        fn, data = WORKLOADS[name].for_any_pool(items)
        reference: _Timed | None = None
        for contender, make in contenders(workers).items():
            if progress is not None:
                progress(f"{name}: {contender}")
            timed = _measure(fn, contender, make, data, repeat)
            row = BenchRow(name, contender, len(data), None, None, None, timed.note, timed.failed)
            if timed.seconds:
                if reference is None:
                    reference = timed
                elif None not in (timed.results, reference.results) and (
                    timed.results != reference.results
                ):
                    row = replace(row, note=_join(row.note, "results differ from lightwork's"))
                median = statistics.median(timed.seconds)
                row = replace(
                    row,
                    median_seconds=median,
                    min_seconds=min(timed.seconds),
                    ratio_to_lightwork=median / statistics.median(reference.seconds),
                )
            rows.append(row)
    return rows


@dataclass(frozen=True)
class _Timed:
    seconds: list[float]  #: empty when skipped or failed
    results: list[Any] | None = None  #: of the last run
    note: str = ""
    failed: bool = False


def _measure(
    fn: Callable[[Any], Any],
    contender: str,
    make: Callable[[], AbstractContextManager[Runner]],
    data: list[Any],
    repeat: int,
) -> _Timed:
    subset, note = data, ""
    if contender.endswith("chunksize 1") and len(data) > PER_TASK_PEER_MAX_ITEMS:
        subset = data[:PER_TASK_PEER_MAX_ITEMS]
        note = f"timed on {len(subset):,} items, scaled to {len(data):,}"
    results = None
    try:
        with make() as run:
            run(fn, data[: min(len(data), 8)])  # warm: start and load every worker
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                results = run(fn, subset)
                times.append((time.perf_counter() - started) * len(data) / len(subset))
    except ImportError as error:  # (NumPy's own message runs to 20 lines: its last says why)
        return _Timed([], note=f"skipped: {str(error).strip().splitlines()[-1]}")
    except Exception as error:  # a peer's failure is a finding: report it, time the others
        return _Timed([], note=f"failed: {type(error).__name__}: {error}", failed=True)
    if len(subset) < len(data):
        results = None  # not comparable with a full run's
    return _Timed(times, results, note)


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def table(rows: Sequence[BenchRow]) -> str:
    lines = [
        f"{'workload':<10} {'contender':<36} {'items':>9} {'median s':>9} {'min s':>9} "
        f"{'x lightwork':>11}  note",
        "-" * 100,
    ]
    for row in rows:
        median = "-" if row.median_seconds is None else f"{row.median_seconds:.4f}"
        low = "-" if row.min_seconds is None else f"{row.min_seconds:.4f}"
        ratio = "-" if row.ratio_to_lightwork is None else f"{row.ratio_to_lightwork:.2f}"
        lines.append(
            f"{row.workload:<10} {row.contender:<36} {row.items:>9,} {median:>9} {low:>9} "
            f"{ratio:>11}  {row.note}"
        )
    return "\n".join(lines)


def _workload_name(text: str) -> str:
    if text in WORKLOADS:
        return text
    close = difflib.get_close_matches(text, WORKLOADS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise argparse.ArgumentTypeError(
        f"unknown workload {text!r}: {hint}bench runs the built-in ones: {', '.join(WORKLOADS)}"
    )


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    from .._argtypes import parse_count

    parser = subparsers.add_parser(
        "bench",
        help="time built-in workloads on lightwork and its peers, side by side",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    # No `choices`: argparse checks a nargs="*" default list against them as one value (and
    # fails); each name is checked by its type instead.
    parser.add_argument(
        "workloads",
        nargs="*",
        type=_workload_name,
        default=list(DEFAULT_WORKLOADS),
        metavar="WORKLOAD",
        help=f"built-in workloads (default: {' '.join(DEFAULT_WORKLOADS)}; any of "
        f"{', '.join(sorted(WORKLOADS))})",
    )
    parser.add_argument(
        "--items", type=parse_count, default=None, help="items per workload (default per workload)"
    )
    parser.add_argument("--max-workers", type=parse_count, default=None, help="default: all CPUs")
    parser.add_argument("--repeat", type=parse_count, default=3, help="timed runs (default 3)")
    parser.add_argument("--json", default=None, help="write the rows to this JSON file")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``lightwork bench``: print the table; 1 if a contender failed, naming it."""
    import sys

    def say(step: str) -> None:
        print(f"  {step} ...", file=sys.stderr, flush=True)

    rows = bench(
        args.workloads,
        items=args.items,
        max_workers=args.max_workers,
        repeat=args.repeat,
        progress=say if sys.stderr.isatty() else None,
    )
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([_finite(asdict(r)) for r in rows], f, indent=2)
    failed = [row for row in rows if row.failed]
    for row in failed:
        print(
            f"lightwork bench: {row.contender} on {row.workload} {row.note}",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _finite(record: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()
    }
