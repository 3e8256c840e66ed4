"""MkDocs hook: a module's docstring, shown as its source has it, in place of a marker.

``<!-- module-docstring: lightwork._backends._processes._supervisor -->`` on a page becomes
that module's docstring in a text block at build time, so the design page shows the very
diagrams the code opens with (and which the code review keeps true), never a copy. The module
is read with ``ast``, not imported. A marker naming a module that does not exist, or one with
no docstring, fails the build.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[2] / "src"
MARKER = re.compile(r"<!-- module-docstring: (?P<module>[\w.]+) -->")


def docstring(module: str) -> str:
    """The docstring of ``module`` (a dotted name under src/), read without importing it."""
    base = SRC.joinpath(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    if not path.is_file():
        raise ValueError(f"module-docstring: no module {module!r} under {SRC}")
    text = ast.get_docstring(ast.parse(path.read_text()))
    if not text:
        raise ValueError(f"module-docstring: {module!r} has no docstring")
    return text


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    def render(match: re.Match[str]) -> str:
        module = match["module"]
        return f"From the docstring of `{module}`:\n\n```text\n{docstring(module)}\n```"

    return MARKER.sub(render, markdown)
