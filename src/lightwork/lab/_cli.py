"""``lightwork scale``: the scaling lab from a shell.

    lightwork scale pi --max-workers 1,2,4 --backends processes,threads --plot scaling.png

The main parser adds the sub-command with :func:`add_parser` and calls :func:`run` with the
parsed arguments.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from .._argtypes import parse_count
from .._core._errors import LightworkError
from .._core._options import BACKENDS
from ._modes import BASELINE_BACKEND, MODES
from ._workloads import WORKLOADS, resolve

__all__ = ["add_parser", "run"]

SCALABLE = tuple(b for b in BACKENDS if b != BASELINE_BACKEND)


def _counts(text: str) -> list[int]:
    """``1,2,4`` (or ``1 2 4``) -> [1, 2, 4]; each may be written 1e3 or 1_000."""
    return [parse_count(part) for part in text.replace(",", " ").split()]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _seconds(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, such as 0.005: {text!r}")
    return value


def _backends(text: str) -> list[str]:
    names = [part for part in text.replace(",", " ").split()]
    for name in names:
        if name not in SCALABLE:
            raise argparse.ArgumentTypeError(
                f"unknown backend {name!r}: choose from {', '.join(SCALABLE)}"
            )
    return names


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``scale`` sub-command to ``subparsers`` and return its parser."""
    width = len("module:function") + 2
    listing = "\n".join(f"  {w.name:<{width}}{w.description}" for w in WORKLOADS.values())
    parser = subparsers.add_parser(
        "scale",
        help="measure speed-up and efficiency over worker counts; fit Amdahl's law",
        description=(
            "Time a workload on the serial backend and on each backend at each worker count,\n"
            "report speed-up, efficiency and where the time went, and fit Amdahl's law\n"
            "(Gustafson's with --mode weak)."
        ),
        epilog=f"workloads:\n{listing}\n  {'module:function':<{width}}your own, over range(N)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "workload",
        metavar="WORKLOAD",
        help="a built-in workload (listed below) or module:function",
    )
    parser.add_argument(
        "--items", type=parse_count, default=None, metavar="N", help="tasks (default per workload)"
    )
    parser.add_argument(
        "--max-workers",
        type=_counts,
        default=None,
        metavar="P,P,...",
        help="worker counts, such as 1,2,4 (default: 1, 2, 4, ... and all CPUs)",
    )
    parser.add_argument(
        "--backends",
        type=_backends,
        default=["processes"],
        metavar="B,B,...",
        help=f"backends to scale, from {', '.join(SCALABLE)} (default: processes)",
    )
    parser.add_argument(
        "--repeat",
        type=parse_count,
        default=5,
        metavar="R",
        help="rounds at least, every configuration once a round (default 5)",
    )
    parser.add_argument(
        "--budget",
        type=_seconds,
        default=60.0,
        metavar="S",
        help="then more rounds until the speed-ups are stable or S seconds have passed "
        "(default 60; 0: exactly R rounds)",
    )
    parser.add_argument(
        "--precision",
        type=_fraction,
        default=0.005,
        metavar="E",
        help="stable: every speed-up's relative standard error below E (default 0.005)",
    )
    parser.add_argument(
        "--no-ceiling",
        dest="ceiling",
        action="store_false",
        help="don't measure the machine's ceiling (the same work in independent processes)",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="strong",
        help="strong: same work on more workers (Amdahl); weak: N items per worker (Gustafson)",
    )
    parser.add_argument(
        "--chunksize",
        type=parse_count,
        default=None,
        metavar="N",
        help="tasks a message (default: sized by measuring)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write a report")
    parser.add_argument("--plot", type=Path, default=None, metavar="PATH", help="write a PNG")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, table only")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``lightwork scale`` with parsed ``args``: print the table, write --json and --plot."""
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        # Before measuring, not after a minute of it.
        print(
            "lightwork scale: --plot needs matplotlib: pip install 'lightwork[plot]'",
            file=sys.stderr,
        )
        return 2
    if ":" in args.workload and os.getcwd() not in sys.path:
        # `lightwork` runs as a script, so the current folder is not importable by default;
        # a module:function of the user's own most likely lives there.
        sys.path.insert(0, os.getcwd())
    try:
        workload = resolve(args.workload)
        from ._scale import scale  # only now: the lab's measuring code is not light

        report = scale(
            workload.fn,
            workload.items(args.items),
            max_workers=args.max_workers,
            backends=args.backends,
            repeat=args.repeat,
            budget=args.budget or None,
            precision=args.precision,
            ceiling=args.ceiling,
            mode=args.mode,
            progress=sys.stderr.isatty() and not args.quiet,
            chunksize=args.chunksize,
            name=workload.name,
        )
    except LightworkError as error:
        print(f"lightwork scale: {error}", file=sys.stderr)
        return 2
    print(report.table())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(report.to_json() + "\n")
    if args.plot is not None:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        report.plot(args.plot)
    written = [str(path) for path in (args.json, args.plot) if path is not None]
    if written:
        print(f"\nwrote {' and '.join(written)}")
    return 0
