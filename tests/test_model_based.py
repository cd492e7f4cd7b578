"""Model-based trajectory estimates (evaluation/model_based.py) and the simulator's keep_rows."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from retentionrl.evaluation.model_based import (
    Lifetimes,
    magic_weights,
    model_based_estimates,
    model_intervals,
    simulated_q,
    step_returns,
)
from retentionrl.evaluation.trajectory import TrajectoryDR, TrajectoryInputs
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.interactions.io import read_events
from retentionrl.simulators.learned.config import FitConfig
from retentionrl.simulators.learned.fit import fit_simulator
from retentionrl.simulators.learned.simulator import LearnedSimulator
from retentionrl.simulators.policy_registry import make_policy
from retentionrl.simulators.rollout import evaluate_policy
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs

H = 90


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[LearnedSimulator]:
    path = tmp_path_factory.mktemp("train") / "logs.parquet"
    write_world_logs(WorldConfig(), 500, 120, 0, path)
    log = read_events(path)
    return [fit_simulator(log, FitConfig(epochs=1, seed=m, bootstrap=True, device="cpu")).simulator for m in range(2)]


@pytest.fixture(scope="module")
def decisions(members, tmp_path_factory) -> LoggedDecisions:
    path = tmp_path_factory.mktemp("heldout") / "logs.parquet"
    write_world_logs(WorldConfig(), 300, 120, 1, path)
    card = members[0].card
    return LoggedDecisions.from_log(read_events(path), horizon_days=H, action_map=card.action_map)


@pytest.fixture(scope="module")
def lifetimes(decisions) -> Lifetimes:
    return Lifetimes.from_decisions(decisions, H)


def test_lifetimes_hold_each_lifetimes_window_visits_in_order(decisions: LoggedDecisions, lifetimes) -> None:
    d = decisions.take(decisions.in_window)
    assert lifetimes.n == np.unique(d.trajectory_id).size
    assert lifetimes.mask.sum() == d.n
    i = 5
    rows = np.flatnonzero(d.trajectory_id == lifetimes.trajectory_ids[i])
    rows = rows[np.argsort(d.visit_index[rows])]
    assert lifetimes.length[i] == rows.size
    assert lifetimes.mask[i, : rows.size].all() and not lifetimes.mask[i, rows.size :].any()
    np.testing.assert_array_equal(lifetimes.action[i, : rows.size], d.action[rows])
    np.testing.assert_array_equal(lifetimes.reward[i, : rows.size], d.returned[rows])
    np.testing.assert_array_equal(lifetimes.gap[i, : rows.size - 1], d.next_visit_days[rows[:-1]])
    # returns count until the window closes or the log ends, whichever comes first
    assert lifetimes.cutoff[i] == min(H, d.observed_days[rows[0]])
    assert (lifetimes.cutoff < H).any() and (lifetimes.cutoff == H).any()


def test_lifetimes_refuse_visits_without_an_action_or_a_propensity(decisions: LoggedDecisions) -> None:
    first = np.flatnonzero(decisions.in_window)[0]
    missing = decisions.propensity.copy()
    missing[first] = np.nan
    with pytest.raises(ValueError, match="1 logged visits have no propensity"):
        Lifetimes.from_decisions(dataclasses.replace(decisions, propensity=missing), H)
    unlogged = decisions.logged.copy()
    unlogged[first] = False
    with pytest.raises(ValueError, match="1 visits in the window have no logged action"):
        Lifetimes.from_decisions(dataclasses.replace(decisions, logged=unlogged), H)


@pytest.mark.parametrize("n", [6, 40], ids=["numpy path", "torch path"])
def test_keep_rows_carries_state_history_and_day(members, n: int) -> None:
    """Replaying two visits on a batch and keeping some rows in between gives those rows
    exactly what replaying both visits on the whole batch gives (observe draws nothing)."""
    sim = members[0]
    rng = np.random.default_rng(0)
    visits = [
        (
            rng.integers(sim.action_space.n_actions, size=n),
            SimpleNamespace(
                click=np.ones(n), purchase=rng.random(n) < 0.5, redeemed=np.zeros(n), spend=rng.random(n) * 40
            ),
            rng.integers(1, 20, size=n).astype(float),
        )
        for _ in range(2)
    ]
    keep = rng.random(n) < 0.5

    def replay(keep_between: bool):
        sim.reset(n, seed=0)
        sim.observe(*visits[0])
        if not keep_between:
            obs, _ = sim.observe(*visits[1])
            return obs[keep], sim.state.numpy()[keep], sim.days[keep]
        sim.keep_rows(keep)
        action, outcome, gap = visits[1]
        kept = SimpleNamespace(**{k: v[keep] for k, v in vars(outcome).items()})
        obs, _ = sim.observe(action[keep], kept, gap[keep])
        return obs, sim.state.numpy(), sim.days

    for got, want in zip(replay(True), replay(False)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="mask must be a bool array"):
        sim.keep_rows(np.ones(3, dtype=bool))


def _random_inputs(rng: np.random.Generator, n: int = 50, t: int = 6) -> TrajectoryInputs:
    length = rng.integers(1, t + 1, size=n)
    mask = np.arange(t) < length[:, None]
    ratio = np.where(mask, rng.uniform(0.2, 3.0, (n, t)), 1.0)
    reward = np.where(mask, rng.random((n, t)) < 0.6, 0.0).astype(float)
    q = np.where(mask, rng.uniform(0, 4, (n, t)), 0.0)
    v = np.where(mask, rng.uniform(0, 4, (n, t)), 0.0)
    return TrajectoryInputs(reward, ratio, mask, q, v, 1.0, np.arange(n))


def test_step_returns_run_from_the_direct_method_to_per_decision_dr() -> None:
    inputs = _random_inputs(np.random.default_rng(3))
    g = step_returns(inputs)
    assert g.shape == (50, 7)
    np.testing.assert_allclose(g[:, 0], inputs.v_policy[:, 0])
    np.testing.assert_allclose(g[:, -1].mean(), TrajectoryDR().terms(inputs).value())
    # a lifetime's step returns stop moving after its last visit
    short = int(np.argmin(inputs.mask.sum(axis=1)))
    length = int(inputs.mask[short].sum())
    assert np.all(g[short, length:] == g[short, -1])


def test_magic_trusts_the_logs_when_the_model_is_off_and_the_model_when_the_logs_are_noisy() -> None:
    rng = np.random.default_rng(0)
    n = 4_000
    truth = 3.0
    dr_precise = truth + rng.normal(0, 0.5, n)  # unbiased and precise
    model_biased = np.full(n, truth + 0.8) + rng.normal(0, 0.05, n)
    x = magic_weights(np.stack([model_biased, dr_precise], axis=1))
    assert x.sum() == pytest.approx(1.0) and (x >= 0).all()
    assert x[1] > 0.95
    dr_noisy = truth + rng.standard_cauchy(n).clip(-200, 200)  # unbiased, huge variance
    model_close = np.full(n, truth + 0.05) + rng.normal(0, 0.05, n)
    x = magic_weights(np.stack([model_close, dr_noisy], axis=1))
    assert x[0] > 0.95


def test_intervals_cover_when_members_scatter_around_the_truth() -> None:
    """The bootstrap picture: a fit on the logs misses the truth by a relative error of sd
    5%, and members fitted on resamples of those logs scatter around that fit as much
    (3 members, 4 policies); lifetimes add their own noise. The pooled t interval covers
    the truth about 95% of the time; a normal interval from each policy's own 3 members
    (2 degrees of freedom of spread) covers far less often."""
    rng = np.random.default_rng(0)
    k, n, reps = 3, 400, 400
    covered, naive = [], []
    for _ in range(reps):
        truth = rng.uniform(2.0, 4.0, size=4)
        values = {}
        for p, theta in enumerate(truth):
            fit = theta * (1 + 0.05 * rng.standard_normal())
            member = fit * (1 + 0.05 * rng.standard_normal(k))
            values[str(p)] = np.repeat(member[:, None, None], 3, axis=2) + rng.normal(0, 1.0, (1, n, 1))
        intervals = model_intervals(values)
        for p, theta in enumerate(truth):
            covered.append(intervals[str(p)]["sim-dm"].covers(theta))
            m = values[str(p)].mean(axis=1)[:, 0]
            naive.append(abs(m.mean() - theta) <= 1.96 * np.hypot(m.std(ddof=1), 1.0 / np.sqrt(n)))
    assert 0.93 <= np.mean(covered) <= 0.99
    assert np.mean(naive) < 0.90
    one = model_intervals({"a": np.ones((1, n, 3)) + rng.normal(0, 1.0, (1, n, 1))})["a"]["sim-dm"]
    assert one.high - one.low == pytest.approx(2 * 1.96 * one_sd(n), rel=0.15)


def one_sd(n: int) -> float:
    """Standard error of the mean of ``n`` unit-variance lifetimes."""
    return 1.0 / np.sqrt(n)


def test_the_value_at_the_first_visit_is_the_simulators_own_value(members, lifetimes) -> None:
    """Every lifetime starts from an empty history, so the rollouts' V at visit 0 average
    to the simulator's value of the policy on fresh shoppers (counted the same way)."""
    sim, policy = members[0], make_policy("never-coupon", WorldConfig())
    full = dataclasses.replace(lifetimes, cutoff=np.full(lifetimes.n, float(H)))
    q, v = simulated_q(sim, policy, full, rollouts=16, seed=0)
    fresh = evaluate_policy(sim, policy, 6_000, seed=1).return_visits
    se = np.hypot(v[:, 0].std() / np.sqrt(full.n), (fresh.high - fresh.low) / 3.92)
    assert abs(v[:, 0].mean() - fresh.estimate) < 4 * se
    assert (q[~full.mask] == 0).all() and (v[~full.mask] == 0).all()
    nothing = dataclasses.replace(lifetimes, cutoff=np.zeros(lifetimes.n))
    q0, v0 = simulated_q(sim, policy, nothing, rollouts=2, seed=0)
    assert not q0.any() and not v0.any()


def test_estimates_of_the_logging_policy_agree_with_what_it_logged(members, lifetimes) -> None:
    """On the logging policy itself every weight is 1: sim-dr is then the logged mean
    corrected by the model's residuals, and its interval covers the logged mean."""
    logging = make_policy("softmax", WorldConfig())
    logged_mean = lifetimes.reward.sum() / lifetimes.n
    res = model_based_estimates(members, {"logging": logging}, lifetimes, rollouts=4, n_bootstrap=100, seed=0)
    est = res["logging"]
    assert set(est.intervals) == {"sim-dm", "sim-dr", "sim-magic"}
    assert est.intervals["sim-dr"].covers(logged_mean)
    for iv in est.intervals.values():
        assert iv.low <= iv.estimate <= iv.high
    assert [len(m) for m in est.members.values()] == [2, 2, 2]
    assert est.notes == []
    one = model_based_estimates(members[:1], {"logging": logging}, lifetimes, rollouts=2, n_bootstrap=50)
    assert "leaves out the model's own uncertainty" in one["logging"].notes[0]


def test_same_seed_same_estimates(members, lifetimes) -> None:
    policy = {"never": make_policy("never-coupon", WorldConfig())}
    a, b = (model_based_estimates(members, policy, lifetimes, rollouts=2, n_bootstrap=50, seed=4) for _ in range(2))
    assert a["never"].intervals == b["never"].intervals


def test_ope_cli_adds_the_model_rows_and_checks_the_horizon(members, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from retentionrl.cli.main import app
    from retentionrl.simulators.learned.checkpoint import save_checkpoint

    logs = tmp_path / "heldout.parquet"
    write_world_logs(WorldConfig(), 200, 120, 2, logs)
    folder = tmp_path / "sim"
    save_checkpoint(folder, members[0].model.state_dict(), members[0].card.to_dict())
    args = ["ope", "--logs", str(logs), "--policy", "never-coupon", "--out", str(tmp_path / "ope")]
    result = CliRunner().invoke(app, [*args, "--simulator", str(folder), "--rollouts", "2", "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    assert "simulator MAGIC return visits" in result.output
    report = (tmp_path / "ope" / "report.md").read_text()
    assert "the learned simulator as the model" in report and "| sim-magic |" in report
    assert "leaves out the model's own uncertainty" in report
    wrong = CliRunner().invoke(app, [*args, "--simulator", str(folder), "--horizon-days", "30"])
    assert wrong.exit_code == 2 and "--horizon-days" in wrong.output
