"""The retention-profit frontier: which policies dominate which, with their intervals.

A shop trades return visits against profit. Every policy of a run is a point
:math:`(v, p)` = (return visits, profit) per shopper, each with a 95% interval
:math:`[v^-, v^+]`, :math:`[p^-, p^+]` over fresh shoppers. Policy :math:`A`
*dominates* :math:`B` when it is at least as good on both axes within the intervals and
better on one beyond them:

.. math::

    A \\succ B \\iff v_A^+ \\ge v_B^- \\;\\wedge\\; p_A^+ \\ge p_B^- \\;\\wedge\\;
    (v_A^- > v_B^+ \\;\\vee\\; p_A^- > p_B^+)

"Within the intervals" is overlap (the two intervals meet, so the data do not say
:math:`A` is worse); "beyond them" is separation (the intervals do not meet, so
:math:`A` is better at the interval's level). Separation of two 95% intervals is a
stricter test than a 95% interval of the difference, so a dominance reported here is
conservative. The *frontier* is the set of points no other point dominates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from retentionrl.core.interval import Interval

AXES: tuple[str, str] = ("return_visits", "profit")
"""The two axes, as keys of a policy's values (metric -> :class:`~retentionrl.core.interval.Interval`)."""


@dataclass(frozen=True)
class Point:
    """One policy on the two axes, each as ``(mean, low, high)``."""

    name: str
    visits: tuple[float, float, float]
    profit: tuple[float, float, float]

    @classmethod
    def of(cls, name: str, values: Mapping[str, Interval]) -> Point:
        """From a policy's values on the two axes."""
        missing = [a for a in AXES if a not in values]
        if missing:
            raise ValueError(f"policy {name!r}: its values lack {missing}")
        v, p = ((values[a].estimate, values[a].low, values[a].high) for a in AXES)
        for axis, (mean, low, high) in zip(AXES, (v, p)):
            if not low <= mean <= high:
                raise ValueError(f"policy {name!r}: {axis} interval [{low}, {high}] does not hold its mean {mean}")
        return cls(name, v, p)


def dominates(a: Point, b: Point) -> bool:
    """:math:`A \\succ B` (module docstring)."""
    as_good = a.visits[2] >= b.visits[1] and a.profit[2] >= b.profit[1]
    better = a.visits[1] > b.visits[2] or a.profit[1] > b.profit[2]
    return as_good and better


def frontier(points: Iterable[Point]) -> list[str]:
    """Names of the points no other point dominates, in the order given."""
    pts = list(points)
    return [b.name for b in pts if not any(dominates(a, b) for a in pts if a is not b)]


def dominated_by(challengers: Iterable[Point], others: Iterable[Point]) -> dict[str, list[str]]:
    """For each of ``others``, the names of the ``challengers`` that dominate it (maybe none)."""
    chall = list(challengers)
    return {b.name: [a.name for a in chall if a.name != b.name and dominates(a, b)] for b in others}
