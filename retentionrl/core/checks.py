"""Argument checks shared by every config and entry point (ValueError naming the value)."""

from __future__ import annotations

from numbers import Real


def require_int(name: str, value: object, minimum: int | None = None, *, bound: str | None = None) -> int:
    """``value`` as an ``int``, or ``ValueError("<name> must be <an integer ...>, got <value>")``
    for anything that is not an integral number (``True``/``False``, ``2.5``, ``"3"``) or lies
    below ``minimum``.

    :param bound: how to say the minimum in the message (default ``>= <minimum>``; e.g.
        ``">= n_arms (7)"``).
    """
    integral = isinstance(value, Real) and not isinstance(value, bool) and float(value).is_integer()
    if not integral or (minimum is not None and value < minimum):  # type: ignore[operator]
        if bound is not None or minimum not in (None, 0, 1):
            words = f"an integer {bound or f'>= {minimum}'}"
        else:
            words = {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}[minimum]
        raise ValueError(f"{name} must be {words}, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def require_positive_ints(**values: object) -> None:
    """:func:`require_int` with minimum 1 for each named value."""
    for name, value in values.items():
        require_int(name, value, 1)
