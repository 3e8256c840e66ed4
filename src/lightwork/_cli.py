"""The ``lightwork`` command: ``pi``, ``bbp``, ``checkpoint``, ``scale`` and ``bench``."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from ._argtypes import parse_count
from ._core._errors import LightworkError
from ._core._options import BACKENDS, check_backend


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _workers(text: str) -> int:
    value = parse_count(text)
    return value


def _backend(text: str) -> str:
    try:
        return check_backend(text)  # its error has a "did you mean" that `choices` lacks
    except LightworkError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _position(text: str) -> int:
    try:
        value = int(text.replace("_", "").strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"must be >= 0 (0 is the first digit after '3.'): {text!r}"
        )
    return value


def build_parser(lab: bool = True) -> argparse.ArgumentParser:
    """The command line; ``lab=False`` leaves out ``scale`` and ``bench``, whose modules take
    ~15 ms to import: a ``pi`` or ``bbp`` run does not pay for them."""
    parser = argparse.ArgumentParser(
        prog="lightwork",
        description="Many hands make light work: parallel Python, measured.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pi = commands.add_parser("pi", help="estimate pi by Monte Carlo on all cores")
    pi.add_argument("--samples", type=parse_count, default=None, help="points (default 1e8)")
    _add_pool_options(pi, default_backend="auto")
    pi.add_argument("--kernel", choices=["numpy", "python"], default="numpy")
    pi.add_argument("--seed", type=int, default=None, help="make the run reproducible")
    pi.add_argument(
        "--target-error",
        type=_positive_float,
        default=None,
        help="add samples until the 95%% interval's half-width is below this",
    )
    pi.add_argument(
        "--repeat", type=parse_count, default=1, help="runs; the median one is reported"
    )
    pi.add_argument("--json", action="store_true", help="print one JSON object")

    bbp = commands.add_parser("bbp", help="pi by the Bailey-Borwein-Plouffe formula")
    mode = bbp.add_mutually_exclusive_group(required=True)
    mode.add_argument("--position", type=_position, help="hex digits of pi from this position on")
    mode.add_argument(
        "--precision", type=parse_count, nargs="+", help="decimal BBP sums at these precisions"
    )
    bbp.add_argument("--digits", type=parse_count, default=16, help="hex digits to extract")
    _add_pool_options(bbp)
    bbp.add_argument("--json", action="store_true", help="print one JSON object")

    checkpoint = commands.add_parser(
        "checkpoint", help="how far a checkpointed run got: done, failed, left, rate"
    )
    checkpoint.add_argument("path", help="the checkpoint's file (checkpoint=PATH)")
    checkpoint.add_argument("--json", action="store_true", help="print one JSON object")

    if lab:
        from .lab import _bench
        from .lab import _cli as lab_cli

        lab_cli.add_parser(commands)
        _bench.add_parser(commands)
    return parser


def _add_pool_options(parser: argparse.ArgumentParser, default_backend: str = "processes") -> None:
    parser.add_argument("--max-workers", type=_workers, default=None, help="default: all CPUs")
    parser.add_argument(
        "--backend",
        type=_backend,
        default=default_backend,
        metavar="{" + ",".join(BACKENDS) + "}",
        help=f"default: {default_backend}",
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in arguments if not a.startswith("-")), None)
    args = build_parser(lab=command not in ("pi", "bbp", "checkpoint")).parse_args(arguments)
    try:
        if args.command == "pi":
            return _pi(args)
        if args.command == "checkpoint":
            return _checkpoint(args)
        if args.command == "scale":
            from .lab import _cli as lab_cli

            return lab_cli.run(args)
        if args.command == "bench":
            from .lab import _bench

            return _bench.run(args)
        return _bbp(args)
    except LightworkError as error:
        print(f"lightwork: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lightwork: interrupted", file=sys.stderr)
        return 130


def _checkpoint(args: argparse.Namespace) -> int:
    from .checkpoint import summary

    report = summary(args.path)
    if args.json:
        print(json.dumps(report.as_dict()))
        return 0
    state = "running now" if report.running else "not running"
    if report.total is None:
        total = "total not known yet (the input is a generator not yet read to its end)"
        left = "unknown"
    else:
        total = f"{report.total:,} tasks in all"
        left = f"{report.left:,}"
        if report.failed:
            left += f" (the {report.failed:,} failed ones included: they re-run on resume)"
    rate = "-" if report.rate is None else f"{report.rate:,.1f} tasks/s"
    eta = "-" if report.eta_seconds is None else _duration(report.eta_seconds)
    print(f"{report.path}: {report.function}, {state}")
    print(f"  done      {report.done:,}")
    print(f"  failed    {report.failed:,}")
    print(f"  left      {left}; {total}")
    print(f"  time      {_duration(report.seconds)} over {report.runs} run(s)")
    print(f"  rate      {rate}")
    print(f"  estimate  {eta} left at that rate")
    return 0


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}h{minute:02d}m{second:02d}s" if hours else f"{minute}m{second:02d}s"


def _pi(args: argparse.Namespace) -> int:
    from .workloads import monte_carlo_pi

    samples = args.samples
    if samples is None and args.target_error is None:
        samples = 10**8
    progress = sys.stderr.isatty() and not args.json
    runs = [
        monte_carlo_pi(
            samples,
            kernel=args.kernel,
            backend=args.backend,
            max_workers=args.max_workers,
            seed=args.seed,
            target_error=args.target_error,
            progress=progress,
        )
        for _ in range(args.repeat)
    ]
    # The median run, not the first: the first pays for starting the pool and warming caches.
    result = sorted(runs, key=lambda r: r.seconds)[(len(runs) - 1) // 2]
    seconds = [r.seconds for r in runs]
    if args.json:
        record: dict[str, Any] = result.to_dict()
        record.pop("inside")
        if record["auto_reason"] is None:
            record.pop("auto_reason")
        if args.repeat > 1:
            record.update(
                repeat=args.repeat,
                seconds_min=min(seconds),
                seconds_median=statistics.median(seconds),
                seconds_each=seconds,
            )
        print(json.dumps(record))
        return 0
    print(
        f"pi ~ {result.estimate:.8f}, standard error {result.stderr:.2g} "
        f"(95% interval {result.ci_low:.6f} to {result.ci_high:.6f})"
    )
    if result.auto_reason:
        print(f"backend auto chose {result.backend}: {result.auto_reason}")
    noun = {"processes": "process", "threads": "thread", "serial": "serial worker"}[result.backend]
    where = f"{result.max_workers} {noun}{'es' if noun == 'process' else 's'}"
    if result.max_workers == 1:
        where = f"1 {noun}"
    which = "the median run: " if args.repeat > 1 else ""
    print(
        f"{which}{result.samples:,} samples in {result.seconds:.3f} s: "
        f"{result.samples_per_second / 1e6:,.1f} M samples/s on {where} "
        f"({result.kernel} kernel{', seed ' + str(result.seed) if result.seed is not None else ''})"
    )
    if args.repeat > 1:
        each = ", ".join(f"{s:.3f}" for s in seconds)
        print(
            f"{args.repeat} runs: median {statistics.median(seconds):.3f} s, "
            f"min {min(seconds):.3f} s (each in order, the first cold: {each} s)"
        )
    return 0


def _bbp(args: argparse.Namespace) -> int:
    from .workloads import bbp_pi, pi_hex

    started = time.perf_counter()
    if args.position is not None:
        digits = pi_hex(
            args.position, args.digits, backend=args.backend, max_workers=args.max_workers
        )
        seconds = time.perf_counter() - started
        if args.json:
            print(json.dumps({"position": args.position, "hex": digits, "seconds": seconds}))
        else:
            print(f"hex digits of pi from position {args.position}: {digits}")
            print(f"{args.digits} digits in {seconds:.3f} s")
        return 0
    values = bbp_pi(args.precision, backend=args.backend, max_workers=args.max_workers)
    seconds = time.perf_counter() - started
    texts = [str(v) for v in values]
    agreed = _agreeing_digits(texts)
    if args.json:
        print(json.dumps({"precisions": args.precision, "pi": texts, "seconds": seconds}))
    else:
        for precision, text in zip(args.precision, texts, strict=True):
            print(f"precision {precision}: {text[:50]}{'...' if len(text) > 50 else ''}")
        print(f"{len(texts)} sums in {seconds:.3f} s; they agree on {agreed} digits")
    return 0


def _agreeing_digits(texts: list[str]) -> int:
    """How many leading characters all results share: the digits they confirm."""
    shortest = min(len(t) for t in texts)
    for i in range(shortest):
        if len({t[i] for t in texts}) > 1:
            return i
    return shortest
