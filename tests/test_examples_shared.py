"""The shared-state examples run, with small arguments, and print what they promise.

``counter.py``, ``bank.py``, ``own_memory_space.py`` and ``fakedb.py`` replace the tutorials'
``multiprocessing.Value`` + ``Lock`` programs. Each runs as its own process, as a user would
run it, so the tests also check the ``__main__`` guard and that shared objects made in a script
reach workers under the default start method.
"""

from __future__ import annotations

import ast
import re

import pytest

from conftest import EXAMPLES, run_example

SHARED_EXAMPLES = ["bank.py", "counter.py", "fakedb.py", "own_memory_space.py"]


def run(name: str, *args: str) -> str:
    process = run_example(name, *args)
    assert "leaked" not in process.stderr, process.stderr  # the resource tracker's complaint
    return process.stdout


@pytest.mark.parametrize("name", SHARED_EXAMPLES)
def test_example_docstring_names_its_tutorial_file(name: str) -> None:
    # test_examples.py checks every example's main() and guard; these also name their file.
    docstring = ast.get_docstring(ast.parse((EXAMPLES / name).read_text(), filename=name))
    assert docstring and "tutorial" in docstring and f"``{name}``" in docstring


def test_counter_counts_thirty() -> None:
    out = run("counter.py", "--seconds", "0.01")
    counts = [int(n) for n in re.findall(r"^Counter: (\d+)$", out, re.MULTILINE)]
    assert sorted(counts) == list(range(1, 31)), "each task saw its own count"
    assert "final: Counter: 30" in out
    assert "with add(): Counter: 30, each count returned once: True" in out


def test_bank_balance_stays_at_one_hundred() -> None:
    out = run("bank.py", "--transactions", "2000")
    assert out.splitlines() == ["Final balance = 100"] * 10


def test_bank_without_the_lock_runs() -> None:
    out = run("bank.py", "--transactions", "2000", "--rounds", "2", "--unlocked")
    assert len(re.findall(r"^Final balance = -?\d+$", out, re.MULTILINE)) == 2
    assert re.search(r"without the lock, [012] of 2 rounds lost updates", out)


def test_own_memory_space_shows_the_copy_then_the_ways_back() -> None:
    out = run("own_memory_space.py")
    assert re.search(r"^Result in lightwork-worker-\d+: \[1, 2, 3, 4, 5\]$", out, re.MULTILINE)
    assert "Result in main: [1, 2]\n" in out
    assert "Returned to main: [1, 2, 3, 4, 5]" in out
    assert "SharedArray seen in main: [1, 2, 3, 4, 5]" in out


def test_fakedb_loses_an_update_without_a_lock_and_none_with_one() -> None:
    out = run("fakedb.py", "--seconds", "0.2")
    ending = dict(re.findall(r": (.+): ending value is (\d+)\.$", out, re.MULTILINE))
    assert ending["Threads, threading.Lock"] == "2"
    assert ending["Processes, SharedValue lock"] == "2"
    # Without a lock both updates read 0 and write 1, unless one finished before the other
    # started: a race, so only its possible outcomes are asserted.
    assert ending["Threads, no lock"] in {"1", "2"}
    assert ending["Processes, no lock"] in {"1", "2"}
    assert out.count("starting update") == 4  # the thread runs log like the tutorial's
