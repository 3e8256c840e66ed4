"""checkpoint=PATH: what keeping every outcome in SQLite costs, and the kill-at-90% proof.

    cd /work/main && .venv/bin/python bench/bench_checkpoint.py              # ~1-2 minutes
    cd /work/main && .venv/bin/python bench/bench_checkpoint.py --quick      # smoke run
    cd /work/main && .venv/bin/python bench/bench_checkpoint.py --markdown   # Markdown tables

Side by side, in interleaved rounds on one warm process pool (``lightwork.map``):

* 1,000,000 tiny tasks (``x * x``) without a checkpoint, with one (a new file each round), and
  replayed from a finished one (no worker runs);
* 20 ms tasks (``time.sleep``) x 200 on 2 workers, without and with a checkpoint;
* the SQLite write rate the checkpointed million reached (tasks and MB committed per second of
  commit time, from the checkpoint's own session record).

Then the proof: a program ``imap``-ing a 1,000,000-item generator (seed 7, ``lightwork.random``
per task) SIGKILLs itself after yielding 90% of the results; run again, it finishes. Reported:
the tasks the second run ran (the checkpoint's session record), against the 10% left plus what
was in flight, and whether its results equal an uninterrupted run's.

Targets: tiny tasks with a checkpoint at most 2x without; 20 ms tasks within 2%; the proof: at
most the remaining 10% + 2% ran again, results identical.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _measure
from _measure import Table, fmt_s, fmt_x, interleaved, log, med, verdict

import lightwork
import lightwork.checkpoint

TINY_TARGET = 2.0
SLOW_TARGET = 1.02
PROOF_SLACK = 0.02  # of the items: the chunks in flight and the last commit interval


def square(x: int) -> int:
    return x * x


def sleep_20ms(x: int) -> int:
    time.sleep(0.02)
    return x


PROGRAM = """
import os, signal, sys
import lightwork

def task(i):
    return i, lightwork.random().random()

def items(n):
    yield from range(n)

if __name__ == "__main__":
    db, out, n, kill_at = sys.argv[1:]
    results = lightwork.imap(task, items(int(n)), backend="processes", seed=7, checkpoint=db)
    with open(out, "w") as f:
        for k, (i, value) in enumerate(results):
            f.write(f"{i} {value!r}\\n")
            if k == int(kill_at):
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
"""


class Fresh:
    """A new checkpoint path per call, in one temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def __call__(self) -> Path:
        self.count += 1
        return self.folder / f"run{self.count}.db"


def main() -> int:
    args = _measure.parse_args(__doc__)
    rounds = args.rounds or (2 if args.quick else 5)
    tiny_n = 100_000 if args.quick else 1_000_000
    slow_n = 50 if args.quick else 200
    proof_n = 100_000 if args.quick else 1_000_000
    header = _measure.machine_line() + "\n" + _measure.cpu_check()
    log(header)
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="bench-checkpoint-"))
    fresh = Fresh(folder)
    lightwork.map(square, range(10_000))  # warm the pool
    cache = folder / "cache.db"
    lightwork.map(square, range(tiny_n), checkpoint=cache)
    written: list[Path] = []

    def with_checkpoint() -> None:
        path = fresh()
        written.append(path)
        lightwork.map(square, range(tiny_n), checkpoint=path)

    log(f"{tiny_n:,} tiny tasks")
    tiny = interleaved(
        {
            "without": _measure.stopwatch(lambda: lightwork.map(square, range(tiny_n))),
            "checkpoint": _measure.stopwatch(with_checkpoint),
            "replayed": _measure.stopwatch(
                lambda: lightwork.map(square, range(tiny_n), checkpoint=cache)
            ),
        },
        rounds,
        label="tiny:",
    )
    log(f"20 ms tasks x {slow_n}")
    slow = interleaved(
        {
            "without": _measure.stopwatch(
                lambda: lightwork.map(sleep_20ms, range(slow_n), max_workers=2)
            ),
            "checkpoint": _measure.stopwatch(
                lambda: lightwork.map(sleep_20ms, range(slow_n), max_workers=2, checkpoint=fresh())
            ),
        },
        max(2, rounds - 2),
        label="20 ms:",
    )
    table = Table(
        "lightwork.map with and without checkpoint= (median / min seconds)",
        ["workload", "without", "checkpoint", "replayed", "checkpoint / without"],
    )
    tiny_ratio = med(tiny["checkpoint"]) / med(tiny["without"])
    slow_ratio = med(slow["checkpoint"]) / med(slow["without"])
    cell = lambda t: f"{fmt_s(med(t))} / {fmt_s(min(t))}"  # noqa: E731
    table.add(
        f"x * x, {tiny_n:,} tasks",
        cell(tiny["without"]),
        cell(tiny["checkpoint"]),
        cell(tiny["replayed"]),
        fmt_x(tiny_ratio),
    )
    table.add(
        f"sleep 20 ms, {slow_n} tasks, 2 workers",
        cell(slow["without"]),
        cell(slow["checkpoint"]),
        "-",
        fmt_x(slow_ratio, 3),
    )
    table.notes.append(f"{rounds} rounds, interleaved, order rotating; a new file per round")

    writes = Table("SQLite writes of the checkpointed million", ["run", "tasks/s", "MB/s", "file"])
    for path in written:
        summary = lightwork.checkpoint.summary(path)
        size = sum(os.path.getsize(p) for p in folder.glob(path.name + "*"))
        if summary.write_seconds:
            writes.add(
                path.name,
                f"{summary.done / summary.write_seconds / 1e6:.1f} M",
                f"{size / summary.write_seconds / 1e6:.0f}",
                f"{size / 1e6:.1f} MB",
            )
    writes.notes.append("per second of commit time (the writer thread's), not of the run")

    log(f"the proof: SIGKILL at 90% of {proof_n:,}")
    proof = Table("Killed at 90%, run again", ["measure", "value", "target", "verdict"])
    program = folder / "program.py"
    program.write_text(PROGRAM)
    env = {**os.environ}
    kill_at = proof_n * 9 // 10

    def run(db: Path, out: Path, kill: int) -> int:
        command = [sys.executable, str(program), str(db), str(out), str(proof_n), str(kill)]
        return subprocess.run(command, env=env).returncode

    reference = folder / "reference.out"
    run(folder / "reference.db", reference, -1)
    db = folder / "killed.db"
    code = run(db, folder / "first.out", kill_at)
    before = lightwork.checkpoint.summary(db)
    run(db, folder / "second.out", -1)
    after = lightwork.checkpoint.summary(db)
    ran_again = after.done - before.done
    left = proof_n - (kill_at + 1)
    same = _digest(folder / "second.out") == _digest(reference)
    ok_ran = ran_again <= left + PROOF_SLACK * proof_n
    proof.add("first run's exit", f"{code} (SIGKILL is -9)", "-9", verdict(code == -9))
    proof.add("results yielded before the kill", f"{kill_at + 1:,}", "-", "-")
    proof.add("outcomes stored at the kill", f"{before.done:,}", "-", "-")
    proof.add(
        "tasks the second run ran",
        f"{ran_again:,}",
        f"<= {left:,} + {PROOF_SLACK * proof_n:,.0f}",
        verdict(ok_ran),
    )
    proof.add("results = an uninterrupted run's", str(same), "True", verdict(same))
    proof.add(
        "every result once", str(after.done == proof_n), "True", verdict(after.done == proof_n)
    )
    all_met = tiny_ratio <= TINY_TARGET and slow_ratio <= SLOW_TARGET and ok_ran and same
    targets = Table("Targets", ["workload", "ratio", "goal", "verdict"])
    targets.add("tiny tasks", fmt_x(tiny_ratio), "<= 2x", verdict(tiny_ratio <= TINY_TARGET))
    targets.add("20 ms tasks", fmt_x(slow_ratio, 3), "<= 1.02x", verdict(slow_ratio <= SLOW_TARGET))
    _measure.print_report(
        header,
        _measure.versions("lightwork"),
        (table, writes, proof, targets),
        started,
        args.markdown,
    )
    return 0 if all_met else 1


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    _measure.put_bench_dir_on_child_path()
    sys.exit(main())
