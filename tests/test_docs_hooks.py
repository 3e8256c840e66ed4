"""The documentation site's generators: what they render is what the code says.

The hooks run inside ``mkdocs build`` (``make docs``); these tests pin what they promise without
a build: the CLI reference has every subcommand of the real parser, module docstrings are read
without importing, and the docstrings' doctest examples and Sphinx roles read as Markdown.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

HOOKS = Path(__file__).resolve().parent.parent / "docs" / "hooks"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", HOOKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_has_every_subcommand_of_the_parser() -> None:
    from lightwork._cli import build_parser

    cli = load("cli")
    [subparsers] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    page = cli.on_page_markdown("# CLI\n\n<!-- cli-reference -->\n")
    assert "<!-- cli-reference -->" not in page
    for name, parser in subparsers.choices.items():
        assert f"## `lightwork {name}`" in page
        assert parser.format_usage().split()[1] in page  # "usage: lightwork NAME ..."


def test_a_page_without_the_marker_is_left_alone() -> None:
    assert load("cli").on_page_markdown("# Other\n") == "# Other\n"


def test_a_module_docstring_is_rendered_in_place_of_its_marker() -> None:
    docstrings = load("docstrings")
    page = docstrings.on_page_markdown(
        "x\n<!-- module-docstring: lightwork._backends._processes._supervisor -->\ny"
    )
    assert "```text\nThe supervisor: one thread per pool" in page
    assert page.startswith("x\n") and page.endswith("```\ny")


def test_a_marker_naming_no_module_fails_the_build() -> None:
    with pytest.raises(ValueError, match=r"no module 'lightwork\.nothing_here'"):
        load("docstrings").on_page_markdown("<!-- module-docstring: lightwork.nothing_here -->")


def test_docstrings_read_as_markdown() -> None:
    pytest.importorskip("griffe")
    markdown = load("griffe_docstrings").markdown
    text = (
        "Like :meth:`Executor.imap`, see :func:`~lightwork.map`::\n"
        "\n"
        "    lightwork.map(f, xs)\n"
        "\n"
        ">>> import lightwork\n"
        ">>> lightwork.map(abs, [-1])\n"
        "[1]\n"
        "\n"
        "After."
    )
    assert markdown(text).splitlines() == [
        "Like `Executor.imap`, see `lightwork.map`:",
        "",
        "    lightwork.map(f, xs)",
        "",
        "```pycon",
        ">>> import lightwork",
        ">>> lightwork.map(abs, [-1])",
        "[1]",
        "```",
        "",
        "After.",
    ]


def test_the_api_reference_shows_every_public_name() -> None:
    import lightwork

    page = (HOOKS.parent / "reference" / "api.md").read_text()
    missing = [name for name in lightwork.__all__ if f"::: lightwork.{name}\n" not in page]
    assert not missing, f"add to docs/reference/api.md: {missing}"
