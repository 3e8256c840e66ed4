"""The Process and Thread lifecycle example runs and says what it should."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parent.parent / "examples" / "processes.py"


def test_processes_example() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--seconds", "0.6"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "hello Peter" in out
    assert "first nap done right away? False" in out and "first nap done now? True" in out
    took = float(out.split("all three took ")[1].split()[0])
    assert took < 0.6 * 2  # concurrent: about the longest nap, not the 1.2 s sum
    assert "Good day, Ann, from lightwork-worker-" in out
    assert "a stuck task: TaskTimeoutError" in out
