"""Argument types the command-line parsers share (``lightwork`` and its ``scale`` and
``bench`` sub-commands): a leaf module, so that neither parser imports the other."""

from __future__ import annotations

import argparse


def parse_count(text: str) -> int:
    """A positive count written as ``100000000``, ``1_000_000`` or ``1e9``."""
    cleaned = text.replace("_", "").strip()
    try:
        value = int(cleaned)
    except ValueError:
        try:
            number = float(cleaned)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a count: {text!r}") from None
        if not number.is_integer():
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        value = int(number)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value
