"""The end-to-end pipeline on tiny budgets: report sections, config errors, stage caching,
no user id in the report, and a purchase-only log without a world."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from retentionrl.pipeline import cache
from retentionrl.pipeline.cache import StageRun, run_stage
from retentionrl.pipeline.config import load_config, parse_config
from retentionrl.pipeline.results import EvaluateResults, FidelityResults
from retentionrl.pipeline.run import run_pipeline
from retentionrl.simulators.world.heuristics import HEURISTICS

TINY = {
    "seed": 0,
    "revenue_scale": "logs",  # the profit scale from the train split (tested below)
    "device": "cpu",
    "horizon_days": 60,
    "world": {"users": 300, "days": 90},
    "simulator": {"epochs": 1, "patience": 1},
    "agents": {
        "total_steps": 600,
        "num_envs": 16,
        "dqn_learning_starts": 200,
        "checkpoint_every": 1000,
        "frontier": [0.0, 1.0],
        "one_step_users": 1000,
    },
    "evaluation": {"users": 100, "bootstrap": 10},
}
SECTIONS = (
    "What these logs can identify",
    "True value in the world",
    "Retention-profit frontier",
    "Value in the learned simulator",
    "Off-policy estimates on held-out logs",
    "Retention curves of all policies",
    "Coupon spend vs retention",
    "Simulator fidelity",
    "What each policy does, by shopper segment",
)


def _quiet(_: str) -> None:
    pass


def _stages(result: dict) -> dict[str, bool]:
    return {s.name: s.reused for s in result["stages"]}


@pytest.fixture(scope="module")
def world_run(tmp_path_factory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("pipeline")
    config = {**TINY, "out": str(out / "run")}
    return config, run_pipeline(parse_config(config), echo=_quiet)


def test_report_has_every_section_and_its_plots(world_run):
    _, result = world_run
    html = Path(result["report"]).read_text()
    for section in SECTIONS:
        assert section in html, section
    for png in ("retention.png", "spend_retention.png", "fidelity.png", "frontier.png"):
        path = Path(result["report"]).parent / png
        assert path.stat().st_size > 1000 and f'src="{png}"' in html
    for policy in ("ppo", "dqn", "random", "popularity", "myopic-greedy", "logging-clone"):
        assert f"<h3>{policy}</h3>" in html
    if importlib.util.find_spec("causalml") is None:  # the optional extra: the report says it is missing
        assert "baseline &#39;uplift&#39; skipped: the uplift baseline needs the optional package causalml" in html
    else:
        assert "<h3>uplift</h3>" in html
    assert "n=" in html and "[" in html  # intervals and sample sizes
    results = EvaluateResults.load(Path(result["report"]).parent.parent / "evaluate" / "results.json")
    chosen = results.recommendation
    assert chosen.policy in results.policies  # chosen in the simulator: see the frontier test for the rule
    first = html.index('id="recommendation"')
    assert first < html.index("<h2") and chosen.headline().split(":")[0] in html[first:]
    assert "profit / shopper" in html and "DR: profit / visit" in html and "net revenue" not in html
    assert "record no cost of goods" not in html  # the world's logs carry unit_cost


def test_frontier_agents_and_world_heuristics_are_evaluated_and_compared(world_run):
    config, result = world_run
    results = EvaluateResults.load(Path(config["out"]) / "evaluate" / "results.json")
    kinds = {name: row.kind for name, row in results.policies.items()}
    # frontier weights [0, 1] on a retention run: one extra agent (profit); w = 1 is the run's own reward;
    # the one-step agents at the same rewards, from one fit
    one_step = {"one-step (retention)": "retention", "one-step (profit)": "profit"}
    assert results.rewards == {"ppo": "retention", "dqn": "retention", "ppo (profit)": "profit", **one_step}
    assert {n for n, k in kinds.items() if k == "agent"} == {"ppo", "dqn", "ppo (profit)", *one_step}
    assert {n for n, k in kinds.items() if k == "heuristic"} == set(HEURISTICS)  # every one of the world's
    assert results.recommendation.policy not in {n for n, k in kinds.items() if k == "heuristic"}
    # a 3-member bootstrap ensemble by default: every candidate has its value in each member, and the
    # recommendation is the candidate whose least favourable member is best
    members = {n: row.members for n, row in results.policies.items() if kinds[n] != "heuristic"}
    assert all(len(m) == 3 for m in members.values())
    worst = {n: min(v["return_visits"].estimate for v in m) for n, m in members.items()}
    assert results.recommendation.score == max(worst.values())
    assert "the least of 3 simulators" in results.recommendation.headline()
    assert (Path(config["out"]) / "simulator" / "ensemble.json").is_file()
    html = Path(result["report"]).read_text()
    worst_member = " / ".join(f"{v['return_visits'].estimate:.2f}" for v in members["popularity"])
    assert "return visits in each simulator" in html and worst_member in html
    for place in ("simulator", "world"):
        part = results.frontier[place]
        assert set(part.dominated_by) == {n for n, k in kinds.items() if k != "agent"}
        for name, agents in part.dominated_by.items():  # a dominated policy is off the frontier
            if agents:
                assert name not in part.frontier, (place, name, agents)
    html = Path(result["report"]).read_text()
    assert "<code>ppo (profit)</code> trained on the\nprofit reward" in html
    assert "never-coupon (world heuristic)" in html and "Dominance in the true world" in html
    # the recommended policy's certificate against the logging policy leads the report
    cert = results.certificate
    assert cert is not None and results.no_certificate is None
    assert cert.policy == results.recommendation.policy and cert.verdict in ("improves", "not certified")
    assert cert.n > 0 and cert.lower_bound <= cert.estimate
    # its mix and clip were chosen on the train split, so every held-out lifetime certifies
    assert cert.validation["separate"] == 1.0 and cert.validation["lifetimes"] > cert.n
    assert html.index('id="certificate"') < html.index("<h2") and cert.headline() in html
    # per metric, the best of the run's agents and baselines: chosen on the train split, certified once
    candidates = {n for n, k in kinds.items() if k != "heuristic"}
    assert set(results.candidate_certificates) == {"return_visits", "profit"}
    for metric, best in results.candidate_certificates.items():
        assert best.metric == metric and best.policy in candidates and best.validation["candidates"] == len(candidates)
        assert best.validation["separate"] == 1.0 and best.n == cert.n and best.headline() in html
    assert html.index('id="candidate-certificates"') < html.index("<h2")


def test_the_rewards_take_their_profit_scale_from_the_train_logs(world_run):
    """revenue_scale: logs is the train split's profit per visit over its return
    share, recomputed here from the split's own file; every agent trains on it, the report says it."""
    from retentionrl.envs.reward import logged_revenue_scale
    from retentionrl.interactions.io import read_events
    from retentionrl.interactions.trajectories import visits_with_trajectories, window_closed

    config, result = world_run
    out = Path(config["out"])
    stats = json.loads((out / "split" / "summary.json").read_text())["reward_scale"]
    log = read_events(out / "split" / "train.parquet", "events")
    end = pd.Timestamp(json.loads((out / "split" / "summary.json").read_text())["log_end"])
    v = visits_with_trajectories(log, horizon_days=config["horizon_days"])
    known = v["in_window"].to_numpy() & window_closed(v, end, config["horizon_days"])
    profit = (v["spend"] - v["coupon_cost"] - v["cogs"]).to_numpy()[known]
    assert 0 < stats["visits"] == known.sum() < len(v)
    expected = logged_revenue_scale(profit, v["returned"].to_numpy()[known])
    assert stats["revenue_scale"] == pytest.approx(expected) and stats["revenue_scale"] != 50.0
    for name in ("ppo", "dqn", "ppo_profit"):
        trained = json.loads((out / f"agent_{name}" / "stage.json").read_text())["config"]
        assert trained["revenue_scale"] == pytest.approx(expected), name
    html = Path(result["report"]).read_text()
    assert f"S = {expected:.3g}" in html and "the profit per visit of the train logs" in html


def test_an_amount_for_revenue_scale_is_kept_and_a_bad_one_refused(tmp_path):
    from retentionrl.pipeline.run import resolve_revenue_scale

    assert parse_config({}).revenue_scale == 50.0 and parse_config({}).reward.revenue_scale == 50.0
    with pytest.raises(RuntimeError, match="resolve it before the reward"):
        _ = parse_config({"revenue_scale": "logs"}).reward
    fixed = parse_config({"revenue_scale": 40})
    assert fixed.reward.revenue_scale == 40.0
    assert resolve_revenue_scale(fixed, StageRun("split", tmp_path, "key", False, 0.0)) is fixed  # no split read
    for bad in (0, -3, "median"):
        with pytest.raises(ValueError, match="key 'revenue_scale'"):
            parse_config({"revenue_scale": bad}, "run.yaml")
    # a split whose logs give no scale: one error naming the split and what to do
    (tmp_path / "summary.json").write_text(
        json.dumps({"reward_scale": {"visits": 0, "revenue_scale": None, "error": "no logged visits (set it)"}})
    )
    with pytest.raises(ValueError, match=r"revenue_scale: logs: the train split .*train\.parquet.*no logged visits"):
        resolve_revenue_scale(parse_config({"revenue_scale": "logs"}), StageRun("split", tmp_path, "key", False, 0.0))


def test_off_policy_estimates_with_too_small_an_ess_are_not_shown_as_numbers(world_run):
    from retentionrl.evaluation.diagnostics import min_ess

    config, result = world_run
    html = Path(result["report"]).read_text()
    table = html.split("Off-policy estimates on held-out logs")[1].split("</table>")[0]
    cells = {
        re.findall(r"<td>(.*?)</td>", row)[0]: re.findall(r"<td>(.*?)</td>", row)[1:5]
        for row in table.split("<tr>")[2:]
    }
    policies = EvaluateResults.load(Path(config["out"]) / "evaluate" / "results.json").policies
    ope = {name: row.ope for name, row in policies.items() if row.ope is not None}
    low_ess = [name for name, o in ope.items() if o.ess < min_ess(o.n_trajectories)]
    assert low_ess, "the tiny run's greedy agents have a small trajectory ESS"
    for name in ope:
        trajectory = cells[name][1:3]  # DR and WIS return visits per lifetime
        # the model-based column rests on the simulators: a number with an interval for every
        # agent and baseline, low ESS or not; heuristics are not estimated with it
        magic = cells[name][3]
        if policies[name].kind == "heuristic":
            assert magic == "—" and not ope[name].model
        else:
            assert re.fullmatch(r"-?[0-9.]+ \[-?[0-9.]+, -?[0-9.]+\]", magic), (name, magic)
            assert set(ope[name].model) == {"sim-dm", "sim-dr", "sim-magic"}
        if name in low_ess:
            assert all(c.startswith("not estimable from these logs: effective sample size") for c in trajectory)
        else:
            assert all(not c.startswith("not estimable") or "interval" in c for c in trajectory), (name, trajectory)


def test_the_simulator_learns_margins_and_world_version_from_the_split_logs(world_run):
    config, _ = world_run
    card = json.loads((Path(config["out"]) / "simulator" / "member_0" / "config.json").read_text())["card"]
    assert card["records_cogs"] and card["data_summary"]["world_version"] == "2"
    assert len(card["gross_margins"]) == len(card["arms"]) and all(0.0 < m < 1.0 for m in card["gross_margins"])


def test_no_user_id_in_report_or_tensorboard(world_run):
    config, result = world_run
    users = pd.read_parquet(Path(config["out"]) / "logs" / "world_logs.parquet", columns=["user_id"])["user_id"]
    ids = set(users.astype(str))
    folder = Path(result["report"]).parent
    text = " ".join(p.read_text() for p in folder.glob("*.html")) + " ".join(
        p.read_text() for p in (Path(config["out"]) / "evaluate").glob("*.json")
    )
    assert not ids & set(re.findall(r"u\d{6}", text))
    for events in Path(config["out"]).rglob("events.out.tfevents*"):
        assert not re.search(rb"u\d{6}", events.read_bytes()), events


def test_second_run_reuses_every_stage_and_a_budget_change_recomputes_downstream_only(world_run):
    config, _ = world_run
    again = run_pipeline(parse_config(config), echo=_quiet)
    assert all(_stages(again).values()), _stages(again)
    changed = run_pipeline(parse_config({**config, "evaluation": {**TINY["evaluation"], "bootstrap": 12}}), echo=_quiet)
    assert _stages(changed) == {
        "logs": True,
        "split": True,
        "simulator": True,
        "dataset": True,
        "fidelity": True,
        "agent_ppo": True,
        "agent_dqn": True,
        "agent_ppo_profit": True,
        "agent_one-step": True,
        "evaluate": False,
        "report": False,
    }
    # more one-step rollouts refit the one-step agents and what reads them, nothing upstream
    refit = run_pipeline(parse_config({**config, "agents": {**TINY["agents"], "one_step_users": 1200}}), echo=_quiet)
    assert [name for name, reused in _stages(refit).items() if not reused] == ["agent_one-step", "evaluate", "report"]


def test_stage_key_follows_config_and_input_files(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("a")
    calls = []

    def compute(folder: Path) -> None:
        calls.append(folder)
        (folder / "out.txt").write_text(source.read_text())

    def run(cfg: dict) -> StageRun:
        return run_stage(tmp_path / "out", "s", cfg, {"src": source}, compute, echo=_quiet)

    assert [run({"k": 1}).reused, run({"k": 1}).reused] == [False, True]
    assert run({"k": 2}).reused is False
    source.write_text("b")
    assert run({"k": 2}).reused is False and (tmp_path / "out" / "s" / "out.txt").read_text() == "b"
    assert len(calls) == 3


def test_stage_key_follows_the_code_the_stage_imports(tmp_path, monkeypatch):
    """A stage names the module it runs; a change in a module that one imports (even inside a
    function) recomputes it, while a change in an unrelated module of the package does not."""
    pkg = tmp_path / "stagepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "laws.py").write_text("RATE = 0.1\n")
    (pkg / "unrelated.py").write_text("X = 1\n")
    (pkg / "stage.py").write_text("def value():\n    from stagepkg.laws import RATE\n    return RATE\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def run() -> StageRun:
        return run_stage(tmp_path / "out", "s", {}, {}, lambda folder: None, code=["stagepkg.stage"], echo=_quiet)

    assert [run().reused, run().reused] == [False, True]
    (pkg / "unrelated.py").write_text("X = 2\n")
    assert run().reused is True
    (pkg / "laws.py").write_text("RATE = 0.2\n")
    cache._imports.cache_clear()
    assert run().reused is False
    assert run().reused is True


def test_every_stage_code_names_importable_modules():
    """A stage's ``code`` naming a module that does not exist would silently key on nothing."""
    from retentionrl.pipeline import run as pipeline_run

    names = [name for code in pipeline_run.STAGE_CODE.values() for name in code]
    missing = [n for n in names if cache._module_file(n) is None]
    assert not missing, missing


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"agents": {"total_stpes": 5}}, r"unknown key 'agents\.total_stpes'"),
        ({"horizon": 30}, r"unknown key 'horizon'"),
        ({"agents": {"algos": ["a2c"]}}, r"key 'agents\.algos\.0'"),
        ({"horizon_days": 0}, r"key 'horizon_days'"),
        ({"agents": {"gamma": 2}}, r"key 'agents': TrainConfig: gamma must be in \[0, 1\], got 2"),  # its own check
        ({"simulator": {"epochs": 0}}, r"key 'simulator': FitConfig: epochs must be a positive integer, got 0"),
        ({"simulator": {"hidden_sise": 8}}, r"unknown key 'simulator\.hidden_sise' \(known keys here: .*hidden_size"),
        ({"agents": {"ppo_epochs": "x"}}, r"key 'agents': TrainConfig: ppo_epochs: .*integer.*\(got 'x'\)"),
        ({"agents": {"seed": 1}}, r"key 'agents': TrainConfig: seed is set by the top-level key seed"),
        ({"reward_mode": "net_revenue"}, r"key 'reward_mode':.*renamed to 'profit' \(world v2\)"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_config_rejects_bad_keys_by_name(data, match):
    with pytest.raises(ValueError, match=match):
        parse_config(data, "run.yaml")


def test_sections_reach_every_field_of_the_fit_and_train_configs(tmp_path):
    """A field the section does not declare is set by name and reaches the stage's config, typed."""
    from retentionrl.envs.reward import RewardConfig
    from retentionrl.pipeline.run import fit_config, train_config

    config = parse_config({"seed": 7, "simulator": {"hidden_size": 16, "ensemble": 2}, "agents": {"net_arch": [8, 8]}})
    fit = fit_config(config, member=1)
    assert (fit.hidden_size, fit.seed, fit.bootstrap) == (16, 8, True)
    train = train_config(config, "dqn", tmp_path, RewardConfig())
    assert train.net_arch == (8, 8) and train.num_envs == 256 and train.algo == "dqn" and train.seed == 7
    default = train_config(parse_config({}), "dqn", tmp_path, RewardConfig())
    assert default.net_arch != (8, 8) and fit_config(parse_config({})).hidden_size != 16


def test_config_from_yaml_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**TINY, "out": str(tmp_path / "r"), "simulatr": {}}))
    with pytest.raises(ValueError, match=r"run\.yaml: unknown key 'simulatr'"):
        load_config(path)
    path.write_text("logs: data/x.parquet\nformat: online-retail\n")
    config = load_config(path)
    assert config.logs == Path("data/x.parquet") and not config.has_world


def test_the_spelled_out_world_config_is_the_quickstart_default():
    """``experiments/configs/world.yaml`` says it is the quickstart's run spelled out: every top-level
    key and every fit and training field it resolves to equals :func:`quickstart_config`'s."""
    from retentionrl.envs.reward import RewardConfig
    from retentionrl.pipeline.config import quickstart_config
    from retentionrl.pipeline.run import fit_config, train_config

    spelled = load_config(Path(__file__).resolve().parents[1] / "experiments" / "configs" / "world.yaml")
    default = quickstart_config(spelled.out, quick=False)
    for key in type(default).model_fields:
        if key not in ("simulator", "agents"):
            assert getattr(spelled, key) == getattr(default, key), key
    assert fit_config(spelled, member=1) == fit_config(default, member=1)
    assert spelled.simulator.ensemble == default.simulator.ensemble
    for algo in ("ppo", "dqn"):
        assert train_config(spelled, algo, Path("t"), RewardConfig()) == train_config(
            default, algo, Path("t"), RewardConfig()
        )
    assert (spelled.agents.algos, spelled.agents.frontier, spelled.agents.one_step_users) == (
        default.agents.algos,
        default.agents.frontier,
        default.agents.one_step_users,
    )


def _purchase_only_log(path: Path, n_users: int = 200, seed: int = 0) -> Path:
    """Shoppers who buy at random days: no impressions, no coupons, no propensities."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        day = rng.uniform(0, 60)
        while day < 150:
            rows.append(
                (
                    f"shopper{u:05d}",
                    pd.Timestamp("2023-01-01") + pd.Timedelta(days=day),
                    "purchase",
                    f"item{rng.integers(30)}",
                    float(rng.uniform(2, 40)),
                    1.0,
                )
            )
            day += rng.exponential(25.0) + 1.0
            if rng.random() < 0.2:
                break
    frame = pd.DataFrame(rows, columns=["user_id", "timestamp", "event", "item_id", "price", "quantity"])
    frame.to_parquet(path, index=False)
    return path


def test_purchase_only_log_reports_what_it_cannot_identify(tmp_path):
    logs = _purchase_only_log(tmp_path / "purchases.parquet")
    config = parse_config(
        {
            **TINY,
            "out": str(tmp_path / "run"),
            "logs": str(logs),
            "format": "events",
            "simulator": {**TINY["simulator"], "ensemble": 1},
            "agents": {**TINY["agents"], "algos": ["ppo"], "frontier": []},
        }
    )
    result = run_pipeline(config, echo=_quiet)
    html = Path(result["report"]).read_text()
    fidelity = FidelityResults.load(tmp_path / "run" / "fidelity" / "fidelity.json")
    assert fidelity.identifies_recommendation is False and fidelity.identifies_coupon is False
    assert "cannot identify the effect of recommendations and coupons" in html
    assert "not evidence" in html
    assert "truth column is skipped" in html and "True value in the world" not in html
    assert html.index("Simulator fidelity") < html.index("Policies: true value")  # leads with what the logs support
    assert "no off-policy estimates" in html
    assert "no certificate: the held-out logs hold no logged propensities" in html
    assert "one-step agents skipped: no base policy (popularity): the log has no logged actions" in html
    assert "These logs record no cost of goods (no unit_cost column): profit is net revenue" in html
    assert "shopper0" not in html


def test_quickstart_quick_runs_end_to_end(tmp_path):
    """The README's main job at its --quick size, through the CLI, as a user runs it."""
    from typer.testing import CliRunner

    from retentionrl.cli.main import app

    result = CliRunner().invoke(app, ["quickstart", "--quick", "--out", str(tmp_path / "qs"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = tmp_path / "qs" / "report" / "index.html"
    assert report.exists() and f"tensorboard --logdir {tmp_path / 'qs'}" in result.stdout
    html = report.read_text()
    for section in (
        "What these logs can identify",
        "True value in the world",
        "Off-policy estimates",
        "Retention curves of all policies",
        "Coupon spend vs retention",
    ):
        assert section in html
    # the one-step agents: one fit of popularity's Q networks, deployed at the run's reward and each
    # frontier weight, evaluated and candidates like every agent
    results = json.loads((tmp_path / "qs" / "evaluate" / "results.json").read_text())
    one_step = {name: row["kind"] for name, row in results["policies"].items() if name.startswith("one-step")}
    assert one_step == {
        f"one-step ({label})": "agent"
        for label in ("retention", "profit", "mixed w=0.25", "mixed w=0.5", "mixed w=0.75")
    }
    assert "one-step (profit)" in html and (tmp_path / "qs" / "agent_one-step" / "one_step.safetensors").is_file()


def test_the_certificates_use_the_configured_method_and_choose_among_the_candidates(tmp_path):
    """``evaluation.certify_method`` reaches both certificates; the candidates' one names the policy
    it chose among them, on the train decisions, and a single candidate gives the recommended one."""
    from retentionrl.interactions.decisions import LoggedDecisions
    from retentionrl.interactions.io import read_events
    from retentionrl.pipeline.run import run_certificates
    from retentionrl.simulators.policy_registry import make_policy
    from retentionrl.simulators.world.config import WorldConfig
    from retentionrl.simulators.world.logs import write_world_logs

    halves = []
    for seed in (0, 1):  # two logs of other shoppers: the train split and the held-out one
        path = tmp_path / f"log_{seed}.parquet"
        write_world_logs(WorldConfig(), 300, 60, seed, path)
        frame = pd.read_parquet(path)
        frame.assign(user_id=f"s{seed}-" + frame["user_id"]).to_parquet(path)
        halves.append(LoggedDecisions.from_log(read_events(path), horizon_days=90))
    train, heldout = halves
    policies = {name: make_policy(name, WorldConfig()) for name in ("never-coupon", "always-coupon", "uniform")}
    config = parse_config({"evaluation": {"certify_method": "bootstrap"}})
    one, why, best = run_certificates(config, heldout, policies, "uniform", train)
    assert set(best) == {"return_visits", "profit"}
    assert all(
        c.method == "bootstrap" and c.policy in policies and c.validation["candidates"] == 3 for c in best.values()
    )
    assert why is None and one.method == "bootstrap" and one.policy == "uniform" and one.validation["candidates"] == 1
    with pytest.raises(ValueError, match="certify_method"):
        parse_config({"evaluation": {"certify_method": "hoeffding"}})
