"""Every Python block in the README and on the documentation site runs as shown.

Each block is pasted into a script and run, from a fresh interpreter in a temporary folder, as
``python snippet.py``. A block that needs what this machine cannot have (a Dask scheduler at an
address, a batch cluster) says so in an HTML comment on the line before it,
``<!-- not run: why -->``, and is skipped with that reason.

A block may instead include whole programs from ``examples/``, in pymdownx.snippets' block
form (a line ``--8<--``, one path a line, ``--8<--``: ruff's Markdown formatting leaves it
alone). Those programs stay the runnable source, run with their own arguments and checks by
``tests/test_examples*.py``, so here an included file must be one of them and exist; the
site's build (``make docs``, ``--strict``) fails on a path it can't find.
"""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# A fence may be indented (inside an admonition or a tab); its closing fence has the same indent.
BLOCK = re.compile(
    r"^(?:[ \t]*<!-- not run: (?P<why>[^>]+?) -->\n)?"
    r"(?P<indent>[ \t]*)```python\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.M | re.S,
)
SNIPPETS = "--8<--"


def python_blocks() -> list[tuple[str, str, str | None]]:
    """(where, code, why it is not run) for every Python block of every document."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            where = f"{document.relative_to(ROOT)}:{line}"
            found.append((where, textwrap.dedent(match["code"]), match["why"]))
    return found


def included(code: str) -> list[str] | None:
    """The files a block includes, or None if it is code of its own."""
    lines = [line.strip() for line in code.splitlines() if line.strip()]
    if SNIPPETS not in code:
        return None
    assert lines[0] == lines[-1] == SNIPPETS and len(lines) > 2, f"not one include: {code!r}"
    return lines[1:-1]


BLOCKS = python_blocks()
OWN = [(where, code, why) for where, code, why in BLOCKS if included(code) is None]
INCLUDES = [(where, path) for where, code, _ in BLOCKS for path in included(code) or []]


def test_the_documents_have_blocks_to_run() -> None:
    assert len(DOCUMENTS) > 10  # the site's pages were found, not only the README
    assert sum(why is None for _, _, why in OWN) >= 30


def test_the_pattern_finds_indented_blocks_and_their_reasons() -> None:
    text = (
        "??? example\n\n    <!-- not run: needs a cluster -->\n    ```python\n    x = 1\n"
        "    if x:\n        pass\n    ```\n"
    )
    [match] = BLOCK.finditer(text)
    assert match["why"] == "needs a cluster"
    assert textwrap.dedent(match["code"]) == "x = 1\nif x:\n    pass\n"


@pytest.mark.parametrize(("where", "path"), INCLUDES, ids=[w for w, _ in INCLUDES])
def test_an_included_file_is_an_example_the_suite_runs(where: str, path: str) -> None:
    file = ROOT / path
    assert file.is_file(), f"{where}: {path} does not exist"
    assert file.parent == ROOT / "examples", f"{where}: only examples/ programs are included"


# Most blocks wait (pool start-up, sleeps), so they run a few at a time, started when the first
# of them is asked for; each test then waits for its own block's outcome.
AT_ONCE = 3


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, concurrent.futures.Future[subprocess.CompletedProcess[str]]]]:
    def run(code: str) -> subprocess.CompletedProcess[str]:
        folder = tmp_path_factory.mktemp("snippet")
        script = folder / "snippet.py"
        script.write_text(code)
        return subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=folder
        )

    selected = {  # only the blocks whose tests this session runs (-k, a node id)
        item.callspec.params["where"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_a_documented_block_runs_as_a_script"
    }
    # The base folder is made here, once: mktemp's first calls from several threads at once
    # raced to make it ("snippet is not a normalized and relative path").
    tmp_path_factory.getbasetemp()
    with concurrent.futures.ThreadPoolExecutor(AT_ONCE) as pool:
        yield {
            where: pool.submit(run, code)
            for where, code, why in OWN
            if why is None and where in selected
        }


@pytest.mark.parametrize(
    ("where", "why"), [(where, why) for where, _, why in OWN], ids=[w for w, _, _ in OWN]
)
def test_a_documented_block_runs_as_a_script(
    where: str,
    why: str | None,
    outcomes: dict[str, concurrent.futures.Future[subprocess.CompletedProcess[str]]],
) -> None:
    if why is not None:
        pytest.skip(f"not run: {why}")
    done = outcomes[where].result()
    assert done.returncode == 0, f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
