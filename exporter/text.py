"""Plain-text tables, as the commands, the data tests and the report email print them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str] | None = None
) -> list[str]:
    """The header and rows as lines of columns two spaces apart, no trailing spaces.

    None shows as an empty cell; `align` holds "l" or "r" per column (default: left).
    """
    cells = [[str(h) for h in header]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    sides = align or ["l"] * len(header)
    return [
        "  ".join(
            c.rjust(w) if a == "r" else c.ljust(w)
            for c, w, a in zip(row, widths, sides, strict=True)
        ).rstrip()
        for row in cells
    ]
