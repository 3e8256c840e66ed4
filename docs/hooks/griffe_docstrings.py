"""Griffe extension: lightwork's reStructuredText-flavoured docstrings, read as Markdown.

The docstrings are written for ``help()`` and doctest: ``>>>`` examples, ``::`` literal blocks
and Sphinx roles (``:meth:`Executor.imap```). Markdown would read ``>>>`` as nested quotes, so
each run of doctest lines becomes a ``pycon`` code block, and a role becomes plain code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:meth|func|class|data|attr|mod|exc|obj):`~?([^`]+)`")


def markdown(text: str) -> str:
    """``text`` with doctest runs fenced as ``pycon`` and Sphinx roles turned into code."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            block = []
            while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
                block.append(lines[i][len(indent) :])
                i += 1
            if out and out[-1].strip():
                out.append("")
            out += [f"{indent}```pycon", *(indent + b for b in block), f"{indent}```"]
            continue  # the blank line that ended the run (as in doctest) follows as it was
        line = ROLE.sub(r"`\1`", line)
        if line.endswith("::"):  # reST's literal-block marker: "Example::" reads "Example:"
            line = line[:-1] if line.strip() != "::" and line[-3] != " " else line[:-2].rstrip()
        out.append(line)
        i += 1
    return "\n".join(out)


class DocstringsAsMarkdown(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
