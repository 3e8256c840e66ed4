"""Every Python block in the README and in docs/ runs as shown, pasted into a script.

A block that needs what this machine cannot have (a Dask scheduler at an address, a batch
cluster) says so in an HTML comment on the line before it, ``<!-- not run: why -->``; every
other block is run, from a fresh interpreter, as ``python snippet.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- not run: (?P<why>[^>]+?) -->\n)?```python\n(?P<code>.*?)```", re.S)


def python_blocks() -> list[tuple[str, str, str | None]]:
    """(where, code, why it is not run) for every Python block of every document."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            where = f"{document.relative_to(ROOT)}:{line}"
            found.append((where, match["code"], match["why"]))
    return found


BLOCKS = python_blocks()


def test_the_documents_have_blocks_to_run() -> None:
    assert sum(why is None for _, _, why in BLOCKS) >= 3


@pytest.mark.parametrize(
    ("code", "why"), [(code, why) for _, code, why in BLOCKS], ids=[w for w, _, _ in BLOCKS]
)
def test_a_documented_block_runs_as_a_script(code: str, why: str | None, tmp_path: Path) -> None:
    if why is not None:
        pytest.skip(f"not run: {why}")
    script = tmp_path / "snippet.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
