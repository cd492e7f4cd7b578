"""``retentionrl ope`` on a small world log: report files, and the clone warning without propensities."""

from __future__ import annotations

import re

import numpy as np
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from retentionrl.cli.ope import CLONE_WARNING, NO_COGS_WARNING, ope_command
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs

app = typer.Typer()
app.command()(ope_command)


@pytest.fixture(scope="module")
def world_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("ope") / "log.parquet"
    write_world_logs(WorldConfig(), 300, 120, 0, path)
    return path


def test_report_for_two_policies(world_log, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "--logs",
            str(world_log),
            "--policy",
            "softmax",
            "--policy",
            "never-coupon",
            "--out",
            str(tmp_path),
            "--bootstrap",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    png = (tmp_path / "ope_estimates.png").read_bytes()
    assert png[:4] == b"\x89PNG"
    for text in ("## softmax", "## never-coupon", "| dr |", "| pdwis |", "ESS"):
        assert text in md
    assert "unsupported target mass" in html and "never-coupon" in html
    assert CLONE_WARNING not in md and NO_COGS_WARNING not in md  # the world's logs record costs of goods
    assert "per decision: profit per visit" in md and "profit/visit" in result.output
    assert "effective sample size" in md  # the deterministic target gets an ESS warning
    # an estimate whose weights have too small an ESS is never shown as a number, in any output
    logging_part, greedy_part = md.split("## never-coupon")
    softmax = logging_part.split("## softmax")[1]  # the logging policy itself: full ESS, every interval shown
    assert "| dr | not estimable" not in softmax and "effective sample size" not in softmax
    assert "| fqe | not estimable from these logs: no finite interval |" in softmax  # FQE has no interval here
    assert re.search(r"\| pdwis \| not estimable from these logs: effective sample size [\d.]+ < \d+ \|", greedy_part)
    assert re.search(r"never-coupon: DR profit/visit .*; DR return visits not estimable from these logs", result.output)


def test_logs_without_propensities_or_costs_use_the_clone_and_say_so(world_log, tmp_path):
    table = pq.read_table(world_log)
    no_prop = tmp_path / "noprop.parquet"
    pq.write_table(table.drop(["propensity", "unit_cost"]), no_prop)
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["--logs", str(no_prop), "--policy", "uniform", "--out", str(out), "--bootstrap", "20", "--no-sequential"]
    )
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.output
    md = (out / "report.md").read_text()
    assert f"**WARNING: {CLONE_WARNING}**" in md and f"**WARNING: {NO_COGS_WARNING}**" in md
    assert 'class="warn"' in (out / "report.html").read_text()


def test_unknown_policy_is_rejected(world_log, tmp_path):
    result = CliRunner().invoke(app, ["--logs", str(world_log), "--policy", "nope", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "is not a trained policy folder, a baseline" in str(result.exception)


def test_policies_evaluated_together_get_the_numbers_of_separate_calls(world_log):
    """evaluate_policies shares the ridge design and the reward model across targets: they do
    not depend on the target, so every estimate and interval equals a call of its own."""
    from retentionrl.evaluation.runner import evaluate_offline, evaluate_policies
    from retentionrl.evaluation.world_steps import steps_from_decisions
    from retentionrl.interactions.decisions import LoggedDecisions
    from retentionrl.interactions.io import read_events
    from retentionrl.simulators.policy_registry import make_policy

    steps = steps_from_decisions(LoggedDecisions.from_log(read_events(world_log)))
    policies = {name: make_policy(name, WorldConfig()) for name in ("never-coupon", "always-coupon")}
    together = evaluate_policies(steps, policies, n_bootstrap=20, seed=3)

    def numbers(intervals: dict) -> dict:
        return {est: (iv.estimate, iv.low, iv.high) for est, iv in intervals.items()}

    for name, policy in policies.items():
        alone = evaluate_offline(steps, policy.action_probs(steps.obs), policy=name, n_bootstrap=20, seed=3)
        np.testing.assert_equal(numbers(together[name].bandit), numbers(alone.bandit))  # NaN equals NaN here
        np.testing.assert_equal(numbers(together[name].trajectory), numbers(alone.trajectory))
