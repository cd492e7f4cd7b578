"""Argument checks shared by every config and entry point (ValueError naming the value)."""

from __future__ import annotations


def require_positive_ints(**values: object) -> None:
    """Raise ``ValueError("<name> must be a positive integer, got <value>")`` for the first
    value that is not an integer >= 1 (``True``/``False`` are not integers here)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
