"""``lightwork bench``: every contender runs every built-in workload, as a user runs it.

With its defaults the command takes about 40 s on this project's 2-core machine (ProcessPool-
Executor with chunksize 1 on 10,000 tiny tasks alone takes half of it), too long for the suite:
the tests run the command with no workload named (the documented default list) on small sizes,
and check apart that the defaults parse.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

import lightwork
from lightwork._cli import build_parser, main
from lightwork.lab import WORKLOADS
from lightwork.lab import _bench as bench_module
from lightwork.lab._bench import DEFAULT_WORKLOADS, bench, contenders
from lightwork.lab._workloads import INDEXED_SEED, pi_numpy_indexed, pi_numpy_task


def test_bench_with_no_arguments_runs_the_documented_default_workloads() -> None:
    args = build_parser().parse_args(["bench"])
    assert args.workloads == list(DEFAULT_WORKLOADS) == ["tiny", "pi-python", "sleep"]
    assert args.repeat == 3 and args.items is None and args.max_workers is None


def test_bench_names_an_unknown_workload(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["bench", "tiny", "pie"])
    assert stopped.value.code == 2
    assert "unknown workload 'pie': did you mean 'pi'?" in capsys.readouterr().err


def test_bench_command_runs_every_default_workload_on_every_contender(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    command = ["bench", "--items", "8", "--repeat", "1", "--max-workers", "2", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "lightwork", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    assert {(r["workload"], r["contender"]) for r in rows} == {
        (w, c) for w in DEFAULT_WORKLOADS for c in contenders(2)
    }
    for row in rows:
        assert row["median_seconds"] is not None or row["note"].startswith("skipped"), row
        assert "differ" not in row["note"] and not row["failed"], row
    assert "x lightwork" in done.stdout


@pytest.mark.parametrize("argv", [["pi", "--items", "4"], ["pi-python", "--items", "4"]])
def test_bench_runs_the_random_workloads_on_every_peer(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Peers have no lightwork task context: they run the variant seeded by the task's index.
    assert main(["bench", *argv, "--repeat", "1", "--max-workers", "2"]) == 0
    printed = capsys.readouterr()
    assert "failed" not in printed.out + printed.err
    assert "mpire" in printed.out and "multiprocessing.Pool" in printed.out


def test_indexed_pi_draws_what_a_seeded_lightwork_task_draws() -> None:
    fn, items = WORKLOADS["pi"].for_any_pool(3)
    assert fn is pi_numpy_indexed and items == [(i, items[0][1]) for i in range(3)]
    seeded = lightwork.map(
        pi_numpy_task, [n for _, n in items], backend="serial", seed=INDEXED_SEED
    )
    assert [fn(item) for item in items] == seeded


def test_workloads_without_random_streams_run_as_they_are() -> None:
    fn, items = WORKLOADS["tiny"].for_any_pool(3)
    assert fn is WORKLOADS["tiny"].fn and items == [0, 1, 2]


def _failing() -> Iterator[Callable[[Any, list[Any]], list[Any]]]:
    yield lambda fn, items: [1 / 0 for _ in items]


def _wrong() -> Iterator[Callable[[Any, list[Any]], list[Any]]]:
    yield lambda fn, items: [None for _ in items]


def _serial() -> Iterator[Callable[[Any, list[Any]], list[Any]]]:
    yield lambda fn, items: [fn(x) for x in items]


def fake_contenders(
    workers: int,
) -> dict[str, Callable[[], AbstractContextManager[Callable[[Any, list[Any]], list[Any]]]]]:
    return {
        "reference": contextmanager(_serial),
        "broken peer": contextmanager(_failing),
        "sloppy peer": contextmanager(_wrong),
    }


def test_a_failing_contender_is_named_and_the_others_still_timed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench_module, "contenders", fake_contenders)
    rows = {row.contender: row for row in bench(["tiny"], items=4, repeat=1)}
    assert rows["broken peer"].failed and "ZeroDivisionError" in rows["broken peer"].note
    assert rows["reference"].median_seconds is not None
    assert "results differ from lightwork's" in rows["sloppy peer"].note
    assert main(["bench", "tiny", "--items", "4", "--repeat", "1"]) == 1
    assert "lightwork bench: broken peer on tiny failed: ZeroDivisionError" in (
        capsys.readouterr().err
    )
