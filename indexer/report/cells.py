"""Numbers as the text of a table cell, with one mark for a value that is missing."""

from __future__ import annotations

MISSING = "–"
TIE = 5e-4  # recall differences below this print as equal at three decimals


def f2(x: float | None) -> str:
    return MISSING if x is None else f"{x:.2f}"


def f3(x: float | None) -> str:
    return MISSING if x is None else f"{x:.3f}"


def pts(x: float | None) -> str:
    return MISSING if x is None else f"{x * 100:.1f}"


def count(x: float | None) -> str:
    return MISSING if x is None else f"{x:,.0f}"


def secs(x: float | None) -> str:
    if x is None:
        return MISSING
    return f"{x:.2f}" if x < 100 else f"{x:,.0f}"


def megabytes(x: float | None) -> str:
    return MISSING if x is None else f"{x / 1e6:,.1f}"


def compact(x: float | None) -> str:
    """Short number for dense cells: 12,300 -> 12.3k."""
    if x is None:
        return MISSING
    if abs(x) >= 10_000:
        return f"{x / 1000:,.0f}k"
    if abs(x) >= 1000:
        return f"{x / 1000:.1f}k"
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.2f}"
