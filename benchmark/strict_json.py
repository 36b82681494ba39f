"""JSON as the standard defines it, on the way out and on the way in: no NaN, no Infinity.

Python's :mod:`json` writes ``NaN`` / ``Infinity`` tokens by default and reads them back (and
reads ``1e999`` as infinity). Browsers, ``jq`` and most other readers reject such files, and a
NaN score compares false with everything, so it can sort anywhere in a ranking. Every result
record the benchmark writes and every file the leaderboard reads goes through :func:`dumps` and
:func:`loads`, which refuse non-finite numbers and say where in the document they are.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any


class NonFiniteNumberError(ValueError):
    """A document holds NaN or an infinity (the message says where)."""


def _non_finite(data: Any, where: str = "") -> Iterator[tuple[str, float]]:
    """(location, value) of every non-finite float in a JSON-like tree, e.g. ``detectors.0.overall.pixel_ap``."""
    if isinstance(data, float):
        if not math.isfinite(data):
            yield where or "<root>", data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _non_finite(value, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from _non_finite(value, f"{where}.{index}" if where else str(index))


def check_finite(data: Any) -> None:
    """Raise :class:`NonFiniteNumberError` naming every non-finite number in ``data``."""
    found = list(_non_finite(data))
    if found:
        shown = ", ".join(f"{where}={value}" for where, value in found[:5])
        more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
        raise NonFiniteNumberError(f"holds non-finite number(s), which standard JSON cannot represent: {shown}{more}")


def dumps(data: Any, **kwargs: Any) -> str:
    """``json.dumps`` that refuses NaN and infinities (naming where they are) instead of writing bad tokens."""
    check_finite(data)
    return json.dumps(data, allow_nan=False, **kwargs)


def _refuse_constant(token: str) -> float:
    raise NonFiniteNumberError(f"holds the non-standard JSON token {token}; scores must be finite numbers")


def loads(text: str | bytes) -> Any:
    """``json.loads`` that refuses ``NaN`` / ``Infinity`` tokens and numbers too large for a float."""
    data = json.loads(text, parse_constant=_refuse_constant)
    check_finite(data)
    return data
