"""Argument types shared by the CLIs: impossible counts, seeds and texts fail as argument errors.

``argparse`` calls these while parsing, so a bad value stops the command before any data is
loaded or any model fitted, with ``error: argument --n: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

#: Seeds are used by numpy, torch and Python's ``random``; 32 bits is what all of them accept alike.
MAX_SEED = 2**32 - 1


def bounded_int(low: int, high: int, what: str = "a whole number") -> Callable[[str], int]:
    """An ``int`` argument in ``[low, high]``; the message names the range and why (``what``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: {what} must be between {low:,} and {high:,}")
        return value

    parse.__name__ = "integer"  # argparse shows this name in "invalid <name> value" messages
    return parse


seed = bounded_int(0, MAX_SEED, "a seed")
positive_int = bounded_int(1, 2**31 - 1, "a count")


def non_empty_text(text: str) -> str:
    """Text that says something: an empty or blank value is refused instead of silently ignored."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give the text, or leave the option out")
    return text
