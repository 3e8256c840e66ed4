"""MkDocs hook: the command-line reference, rendered from lightwork's own argparse parsers.

A page holding the marker ``<!-- cli-reference -->`` gets ``lightwork --help`` and every
subcommand's ``--help`` in its place at build time, so the reference cannot drift from the
parsers, and a new subcommand appears by itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- cli-reference -->"
SRC = Path(__file__).resolve().parents[2] / "src"
WIDTH = "100"  # argparse wraps to $COLUMNS: a fixed width keeps the page the same everywhere


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def render() -> str:
    """The reference as Markdown: the top-level help, then a section per subcommand."""
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))  # this checkout's parsers, installed or not
    from lightwork._cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        parser = build_parser()
        parts = ["## `lightwork`", "", "```text", parser.format_help().rstrip(), "```"]
        for name, sub in _subcommands(parser).items():
            parts += ["", f"## `lightwork {name}`", "", "```text", sub.format_help().rstrip()]
            parts += ["```"]
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(parts) + "\n"


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())
