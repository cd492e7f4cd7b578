"""Typed stage records (retentionrl.core.records): a round trip keeps every value; a file of
another schema, a renamed or missing field, or a wrong type is refused, naming where."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pytest

from retentionrl.core.interval import Interval
from retentionrl.core.records import RecordError, read_record, write_record


@dataclass(frozen=True)
class Inner:
    name: str
    best: tuple[str, float] | None
    values: dict[str, Interval]


@dataclass(frozen=True)
class Outer:
    n: int
    inner: list[Inner]
    note: str | None = None
    flags: dict[str, bool] = field(default_factory=dict)


RECORD = Outer(
    3,
    [
        Inner("ppo", ("popularity", 3.5), {"return_visits": Interval(3.4, 3.3, 3.5, 5000)}),
        Inner("dqn", None, {"profit": Interval(10.0, float("nan"), float("nan"))}),
    ],
    flags={"a": True},
)


def test_a_record_reads_back_equal(tmp_path):
    path = tmp_path / "r.json"
    write_record(path, RECORD, "test.outer", 1)
    back = read_record(path, Outer, "test.outer", 1)
    iv = back.inner[0].values["return_visits"]
    assert (iv.estimate, iv.low, iv.high, iv.n, iv.alpha) == (3.4, 3.3, 3.5, 5000, 0.05) and math.isnan(iv.lower_bound)
    assert back.inner[0].name == "ppo" and back.n == 3 and back.note is None and back.flags == {"a": True}
    assert back.inner[0].best == ("popularity", 3.5) and isinstance(back.inner[0].best, tuple)
    assert math.isnan(back.inner[1].values["profit"].low)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d["inner"][0].update(label=d["inner"][0].pop("name")), r"\$\.inner\[0\]: unknown field 'label'"),
        (lambda d: d.pop("n"), r"\$: missing field 'n' of Outer"),
        (lambda d: d.update(n="3"), r"\$\.n: expected int"),
        (
            lambda d: d["inner"][1]["values"]["profit"].update(estimate="ten"),
            r"\$\.inner\[1\]\.values\.profit\.estimate",
        ),
        (lambda d: d.update(schema_version=2), r"expected a test\.outer record of schema version 1"),
    ],
)
def test_a_record_that_does_not_fit_is_refused_naming_the_place(tmp_path, edit, match):
    path = tmp_path / "r.json"
    write_record(path, RECORD, "test.outer", 1)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=match) as info:
        read_record(path, Outer, "test.outer", 1)
    assert str(path) in str(info.value)


def test_interval_of_a_mean_and_its_text():
    iv = Interval.of([1.0, 2.0, 3.0, 4.0])
    assert iv.estimate == 2.5 and iv.n == 4 and iv.low < 2.5 < iv.high
    assert iv.high - iv.estimate == pytest.approx(1.959963984540054 * math.sqrt(5 / 3) / 2)
    assert Interval.of([7.0]).format() == "7" and Interval(float("nan"), 0, 1).format() == "—"
    assert Interval(3.14159, 3.0, 3.3).format(3) == "3.14 [3, 3.3]"


def test_the_95_percent_quantile_literal_is_scipys_to_the_last_bit_and_other_levels_use_scipy():
    from scipy.stats import norm

    from retentionrl.core.interval import Z95

    assert Z95 == float(norm.ppf(0.975))
    values = [1.0, 2.0, 3.0, 4.0]
    iv90 = Interval.of(values, alpha=0.1)
    assert iv90.high - iv90.estimate == pytest.approx(float(norm.ppf(0.95)) * math.sqrt(5 / 3) / 2, rel=1e-12)
