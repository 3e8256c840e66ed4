"""What an interactive session defines reaches the workers: a REPL, a notebook, ``python -c``
and a script read from standard input have no file that a worker could import, so their
functions, classes and instances travel by value, both ways, on every start method."""

from __future__ import annotations

import subprocess
import sys

import pytest

SESSION = """
import lightwork

class Point:
    def __init__(self, x):
        self.x = x

def shift(p):
    return Point(p.x + 1)

with lightwork.Executor(2, start_method={start_method!r}) as ex:
    moved = list(ex.map(shift, [Point(1), Point(2)]))
    print([p.x for p in moved], all(isinstance(p, Point) for p in moved))
    print(ex.submit(lambda: lambda: 3).result()())
"""


@pytest.mark.parametrize("start_method", ["fork", "forkserver", "spawn"])
@pytest.mark.parametrize("how", ["-c", "stdin"])
def test_a_session_s_classes_travel_by_value_both_ways(start_method: str, how: str) -> None:
    code = SESSION.format(start_method=start_method)
    done = subprocess.run(
        [sys.executable, "-c", code] if how == "-c" else [sys.executable, "-"],
        input=None if how == "-c" else code,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[2, 3] True\n3\n"
    assert "Traceback" not in done.stderr
