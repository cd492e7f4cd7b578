"""Hillstrom: off-policy estimates from a deliberately biased sub-sample with known
propensities, against the truth from the full randomized data.

**The biased log.** In the full data every customer :math:`x` got arm
:math:`a \\in \\{0 = \\text{no e-mail}, 1 = \\text{Mens}, 2 = \\text{Womens}\\}` with probability
1/3, independently of :math:`x` and of the potential outcomes. Choose a feature-dependent
logging policy :math:`\\pi_b(a \\mid x)` (:func:`logging_policy`) and keep row :math:`i`
independently with probability

.. math:: \\kappa(x_i, a_i) = \\pi_b(a_i \\mid x_i) / \\pi_{\\max}, \\qquad
          \\pi_{\\max} = \\max_{x, a} \\pi_b(a \\mid x) \\;(\\le 1, \\text{ so } \\kappa \\le 1).

Then, since the keep coin depends only on :math:`(x, a)`,

.. math::
   P(a \\mid x, \\text{kept}) = \\frac{\\tfrac13 \\kappa(x, a)}{\\sum_{a'} \\tfrac13 \\kappa(x, a')}
      = \\frac{\\pi_b(a \\mid x)}{\\sum_{a'} \\pi_b(a' \\mid x)} = \\pi_b(a \\mid x),
   \\qquad
   P(x \\mid \\text{kept}) = \\frac{p(x) \\sum_a \\tfrac13 \\kappa(x, a)}{\\sum_{x'} p(x') \\sum_a \\tfrac13
      \\kappa(x', a)} = p(x)

(because :math:`\\sum_a \\kappa(x, a) = 1 / \\pi_{\\max}` for every :math:`x`), and the reward
law :math:`p(r \\mid x, a)` is untouched. So the kept rows are i.i.d. draws of
:math:`x \\sim p`, :math:`a \\sim \\pi_b(\\cdot \\mid x)`, :math:`r \\sim p(\\cdot \\mid x, a)`: a log
of :math:`\\pi_b` with the **exact** propensity :math:`\\pi_b(a_i \\mid x_i)`, about
:math:`1 / (3 \\pi_{\\max})` of the rows, for the same customer population -- so the value of a
target policy on it is the value on the full population.

:math:`\\pi_b` (``logging_policy``) = 0.85 softmax(z) + 0.05, with no-e-mail logit 0 and, for
each e-mail arm, +1.5 when the customer bought only that arm's line, -1.0 when only the
other line, +0.8 if recency <= 3 months, +0.5 if history >= $250: recent, valuable
customers are e-mailed more, and with the matching e-mail -- the usual targeting bias, which
makes naive arm means on the log wrong.

**Truth.** :math:`V(\\pi_e) = E_x \\sum_a \\pi_e(a \\mid x) \\mu(x, a)`, estimated without bias
on the full randomized data by IPS with propensity 1/3 (its 95% bootstrap interval shown;
the sub-sample is part of the full data, so the two are not independent).

**Estimates.** The seven bandit estimators on the sub-sample, with the cross-fitted
per-arm logistic reward model (:func:`retentionrl.evaluation.reward_models.logistic_reward_model`,
``per_action=True``) for DM and the DR family, Switch-DR's :math:`\\tau` and DRos's
:math:`\\lambda` tuned by estimated MSE, 95% bootstrap intervals (200 resamples, the reward
model moved with each resample by its fit influence, :mod:`retentionrl.evaluation.fit_influence`); "naive" is
the mean reward of the logged rows where the log's arm equals the policy's, which ignores
the propensities.

Run: ``python -m experiments.ope_hillstrom [--data hillstrom.csv] [--reward visit] [--seed 0]``;
``--data`` defaults to the copy ``retentionrl data fetch hillstrom`` cached.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from retentionrl.evaluation.bandit import IPS, SNIPS, BanditInputs, evaluate_bandit, tuned_estimators
from retentionrl.evaluation.reward_models import logistic_reward_model
from retentionrl.interactions.adapters import read_hillstrom
from retentionrl.interactions.bandit import BanditFeedback
from retentionrl.interactions.datasets import cached_path

DEFAULT_DATA = (
    cached_path("hillstrom") or Path(__file__).resolve().parents[2] / "shared" / "data" / "hillstrom" / "hillstrom.csv"
)
"""The copy ``retentionrl data fetch hillstrom`` cached, else this machine's ../shared/data copy."""
TAUS = (1.0, 2.0, 5.0, 10.0, 20.0, float("inf"))
LAMBDAS = (0.1, 1.0, 5.0, 10.0, 50.0, 1000.0)
NO_EMAIL, MENS, WOMENS = 0, 1, 2


def _column(fb: BanditFeedback, name: str) -> np.ndarray:
    return fb.context[:, fb.context_names.index(name)]


def logging_policy(fb: BanditFeedback) -> np.ndarray:
    """:math:`\\pi_b(a \\mid x_i)`, ``(n, 3)``, a function of the features only (module docstring)."""
    mens, womens = _column(fb, "mens"), _column(fb, "womens")
    bonus = 0.8 * (_column(fb, "recency") <= 3) + 0.5 * (_column(fb, "history") >= 250)
    only_m, only_w = mens * (1 - womens), womens * (1 - mens)
    z = np.column_stack(
        [np.zeros(fb.n_rounds), 1.5 * only_m - 1.0 * only_w + bonus, 1.5 * only_w - 1.0 * only_m + bonus]
    )
    soft = np.exp(z - z.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    return 0.85 * soft + 0.05


PI_MAX = 0.85 + 0.05
"""An upper bound on :math:`\\pi_b` for every possible customer (softmax <= 1), so
:math:`\\kappa = \\pi_b / \\pi_{\\max} \\le 1` without looking at the data."""


def biased_subsample(fb: BanditFeedback, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept row indices, their exact logging propensities :math:`\\pi_b(a_i \\mid x_i)`)."""
    pi_b = logging_policy(fb)
    p_logged = pi_b[np.arange(fb.n_rounds), fb.action]
    keep = np.random.default_rng(seed).random(fb.n_rounds) < p_logged / PI_MAX
    return np.flatnonzero(keep), p_logged[keep]


def target_policies(fb: BanditFeedback) -> dict[str, np.ndarray]:
    """Name -> chosen arm per customer (deterministic targeting rules)."""
    n = fb.n_rounds
    womens = _column(fb, "womens")
    history = _column(fb, "history")
    return {
        "no e-mail": np.full(n, NO_EMAIL),
        "always Mens": np.full(n, MENS),
        "always Womens": np.full(n, WOMENS),
        "match line (Womens if womens buyer else Mens)": np.where(womens == 1, WOMENS, MENS),
        "Womens if history >= $250 else none": np.where(history >= 250, WOMENS, NO_EMAIL),
    }


def one_hot(choice: np.ndarray, n_actions: int = 3) -> np.ndarray:
    return np.eye(n_actions)[choice]


def run(data: Path, reward: str = "visit", seed: int = 0, n_bootstrap: int = 200) -> tuple[pd.DataFrame, dict]:
    """Rows (policy, estimator, estimate, low, high) including the truth rows; and facts."""
    full = read_hillstrom(data, reward=reward)
    rows_kept, propensity = biased_subsample(full, seed)
    ctx, act, rew = full.context[rows_kept], full.action[rows_kept], full.reward[rows_kept]
    fit = logistic_reward_model(ctx, act, rew, 3, n_folds=3, seed=seed, per_action=True) if reward != "spend" else None
    facts = {
        "n_full": full.n_rounds,
        "n_log": rows_kept.size,
        "propensity_range": (float(propensity.min()), float(propensity.max())),
        "arm_share_log": np.bincount(act, minlength=3) / act.size,
    }
    out = []
    for name, choice in target_policies(full).items():
        dist_full = one_hot(choice)
        truth_inputs = BanditInputs.prepare(full.reward, full.action, full.propensity, dist_full)
        t = evaluate_bandit([IPS()], truth_inputs, n_bootstrap=n_bootstrap, seed=seed)["ips"]
        out.append(
            {
                "policy": name,
                "estimator": "truth (IPS, full data)",
                "estimate": t.estimate,
                "low": t.low,
                "high": t.high,
            }
        )
        inputs = BanditInputs.prepare(rew, act, propensity, dist_full[rows_kept], estimated_rewards=fit)
        match = act == choice[rows_kept]
        out.append(
            {
                "policy": name,
                "estimator": "naive (ignores propensities)",
                "estimate": float(rew[match].mean()),
                "low": np.nan,
                "high": np.nan,
            }
        )
        estimators = [IPS(), SNIPS()]
        if fit is not None:
            estimators = tuned_estimators(inputs, TAUS, LAMBDAS)
        for est_name, iv in evaluate_bandit(estimators, inputs, n_bootstrap=n_bootstrap, seed=seed).items():
            out.append({"policy": name, "estimator": est_name, "estimate": iv.estimate, "low": iv.low, "high": iv.high})
    frame = pd.DataFrame(out)
    truth = frame[frame.estimator.str.startswith("truth")].set_index("policy")["estimate"]
    frame["rel_error"] = (frame.estimate - frame.policy.map(truth)).abs() / frame.policy.map(truth)
    frame["covers_truth"] = (frame.low <= frame.policy.map(truth)) & (frame.policy.map(truth) <= frame.high)
    return frame, facts


def table(frame: pd.DataFrame) -> pd.DataFrame:
    """Estimator x policy cells ``estimate [low, high] (rel. error)``."""

    def cell(r: pd.Series) -> str:
        iv = "" if np.isnan(r.low) else f" [{r.low:.4f}, {r.high:.4f}]"
        err = "" if r.estimator.startswith("truth") else f" {100 * r.rel_error:.1f}%"
        return f"{r.estimate:.4f}{iv}{err}"

    f = frame.assign(cell=frame.apply(cell, axis=1))
    return f.pivot(index="estimator", columns="policy", values="cell").reindex(
        index=list(dict.fromkeys(frame.estimator)), columns=list(dict.fromkeys(frame.policy))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--reward", default="visit", choices=("visit", "conversion", "spend"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument(
        "--draws", type=int, default=0, help="also summarize this many independent sub-sample draws (seeds seed+1..)"
    )
    args = parser.parse_args()
    frame, facts = run(args.data, args.reward, args.seed, args.bootstrap)
    lo, hi = facts["propensity_range"]
    print(
        f"full randomized data: {facts['n_full']} customers; biased log: {facts['n_log']} rows, "
        f"propensities in [{lo:.3f}, {hi:.3f}], arm shares {np.round(facts['arm_share_log'], 3).tolist()}"
    )
    print(f"reward = {args.reward}; cells: estimate [95% bootstrap interval] relative error vs the truth row")
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 40)
    print(table(frame).T.to_string())
    if args.draws > 0:
        frames = [run(args.data, args.reward, args.seed + 1 + k, args.bootstrap)[0] for k in range(args.draws)]
        every = pd.concat(frames + [frame])
        est = every[~every.estimator.str.startswith(("truth", "naive"))]
        naive = every[every.estimator.str.startswith("naive")]
        summary = (
            pd.concat([est, naive])
            .groupby("estimator", sort=False)
            .agg(mean_rel_error=("rel_error", "mean"), coverage=("covers_truth", "mean"))
        )
        summary.loc[summary.index.str.startswith("naive"), "coverage"] = np.nan
        print(
            f"\nover {args.draws + 1} sub-sample draws x {frame.policy.nunique()} policies "
            "(truth from the same full data):"
        )
        print(summary.round(3).T.to_string())


if __name__ == "__main__":
    main()
