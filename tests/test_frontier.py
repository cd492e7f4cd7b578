"""Dominance on the retention-profit plane (retentionrl.evaluation.frontier), on hand-made intervals."""

from __future__ import annotations

import pytest

from retentionrl.core.interval import Interval
from retentionrl.evaluation.frontier import Point, dominated_by, dominates, frontier


def _p(name: str, visits: tuple[float, float, float], profit: tuple[float, float, float]) -> Point:
    return Point.of(name, {"return_visits": Interval(*visits), "profit": Interval(*profit)})


BASE = _p("base", (3.5, 3.4, 3.6), (10.0, 9.5, 10.5))


@pytest.mark.parametrize(
    ("visits", "profit", "expected"),
    [
        ((3.5, 3.4, 3.6), (12.0, 11.5, 12.5), True),  # same retention (overlap), profit beyond the interval
        ((3.8, 3.7, 3.9), (10.2, 9.7, 10.7), True),  # retention beyond, profit overlapping
        ((3.45, 3.35, 3.55), (12.0, 11.5, 12.5), True),  # slightly lower retention, still overlapping
        ((3.5, 3.4, 3.6), (10.4, 9.9, 10.9), False),  # better on neither beyond the intervals
        ((3.2, 3.1, 3.3), (14.0, 13.5, 14.5), False),  # much more profit, retention clearly below
        ((3.9, 3.8, 4.0), (9.0, 8.7, 9.3), False),  # more retention, profit clearly below
    ],
)
def test_dominance_needs_both_axes_within_and_one_beyond(visits, profit, expected):
    assert dominates(_p("a", visits, profit), BASE) is expected


def test_dominance_is_never_mutual_and_never_reflexive():
    a = _p("a", (3.8, 3.7, 3.9), (12.0, 11.5, 12.5))
    assert dominates(a, BASE) and not dominates(BASE, a)
    assert not dominates(BASE, BASE)


def test_frontier_keeps_the_undominated_and_dominated_by_names_the_challengers():
    a = _p("a", (3.8, 3.7, 3.9), (12.0, 11.5, 12.5))
    b = _p("b", (3.2, 3.1, 3.3), (14.0, 13.5, 14.5))  # trades retention for profit: not dominated by a
    assert frontier([BASE, a, b]) == ["a", "b"]
    assert dominated_by([a, b], [BASE, _p("c", (4.5, 4.4, 4.6), (20.0, 19.0, 21.0))]) == {"base": ["a"], "c": []}


def test_a_malformed_point_is_refused_by_name():
    with pytest.raises(ValueError, match="policy 'x': its values lack \\['profit'\\]"):
        Point.of("x", {"return_visits": Interval(1.0, 0.9, 1.1)})
    with pytest.raises(ValueError, match="policy 'y': profit interval"):
        _p("y", (1.0, 0.9, 1.1), (5.0, 6.0, 7.0))
