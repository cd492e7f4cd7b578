"""Speed of the bandit estimators: 1,000,000 logged decisions, all seven estimators, point
estimates plus 200-resample bootstrap intervals. (obp, the reference implementation, cannot
be installed beside this project: it needs Python < 3.11, ``../shared/STACK.md``; so no peer
figure is printed: none could be measured in the same run.)

Synthetic log: ``--actions`` actions (20), ``--positions`` slots (3); the logging policy is
a softmax of a random per-round score, the target a different softmax; rewards Bernoulli of
a logistic mean; the reward model is the true mean plus noise. Timed: building the checked
inputs (:meth:`retentionrl.evaluation.bandit.BanditInputs.prepare`: weights, :math:`\\hat q_i`,
:math:`\\hat q^{\\pi}_i`), then :func:`retentionrl.evaluation.bandit.evaluate_bandit` for the seven
estimators (per-round terms once, each resample drawn once for all estimators). The
per-estimator seconds are the terms of that estimator alone (point estimate); the shared
bootstrap is one line.

Usage: ``python experiments/benchmarks/bench_ope.py [--n 1000000] [--bootstrap 200]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from retentionrl.evaluation.bandit import BanditInputs, default_estimators, evaluate_bandit


def synthetic(n: int, n_actions: int, len_list: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1)).astype(np.float64)
    arm = np.linspace(-1.0, 1.0, n_actions)
    logits = x * arm[None, :]
    behavior = np.exp(logits - logits.max(axis=1, keepdims=True))
    behavior /= behavior.sum(axis=1, keepdims=True)
    action = (rng.random((n, 1)) > behavior.cumsum(axis=1)).sum(axis=1).clip(0, n_actions - 1)
    position = rng.integers(0, len_list, n)
    mean = 1.0 / (1.0 + np.exp(-(x * arm[None, :] - 2.0)))  # (n, A)
    slot = np.array([1.0, 0.7, 0.5])[:len_list] if len_list <= 3 else np.ones(len_list)
    reward = (rng.random(n) < mean[np.arange(n), action] * slot[position]).astype(np.float64)
    target = np.exp(-2.0 * logits)
    target /= target.sum(axis=1, keepdims=True)
    q = (mean + rng.normal(0.0, 0.02, mean.shape)).clip(0, 1)
    return {
        "reward": reward,
        "action": action,
        "propensity": behavior[np.arange(n), action],
        "action_dist": np.repeat(target[:, :, None], len_list, axis=2),
        "position": position,
        "estimated_rewards": q[:, :, None] * slot[None, None, :],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--actions", type=int, default=20)
    parser.add_argument("--positions", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    data = synthetic(args.n, args.actions, args.positions)
    t0 = time.perf_counter()
    inputs = BanditInputs.prepare(**data)
    t_prep = time.perf_counter() - t0
    estimators = default_estimators()
    seconds = {}
    for est in estimators:
        t = time.perf_counter()
        est._checked_terms(inputs).value()
        seconds[est.name] = time.perf_counter() - t
    t = time.perf_counter()
    out = evaluate_bandit(estimators, inputs, n_bootstrap=args.bootstrap, seed=0)
    t_all = time.perf_counter() - t
    total = time.perf_counter() - t0
    print(
        f"{args.n:,} decisions, {args.actions} actions, {args.positions} positions, "
        f"{args.bootstrap} bootstrap resamples"
    )
    print(f"{'estimator':<10} {'estimate':>9} {'95% interval':>21} {'seconds':>8}")
    for est in estimators:
        iv = out[est.name]
        print(f"{est.name:<10} {iv.estimate:9.5f} [{iv.low:9.5f}, {iv.high:9.5f}] {seconds[est.name]:8.3f}")
    print(f"{'inputs (prepare, checks, weights, q)':<42} {t_prep:8.3f}")
    print(f"{'evaluate_bandit (7 estimates + bootstrap)':<42} {t_all:8.3f}")
    print(f"{'total':<42} {total:8.3f}")


if __name__ == "__main__":
    main()
