"""Does the certificate hold? ``retentionrl certify`` against world truth, over many seeds.

For each seed: the world writes a log (``--users`` shoppers, ``--days`` days, the softmax
logging policy); a random ``--heldout`` share of its lifetimes is the held-out log, the rest
the train split; the certificate of ``--policy`` is computed there as the pipeline does
(``--validation train``: the logging share alpha and the clip chosen on the train split,
the bound on every held-out lifetime) or as ``retentionrl certify`` without
``--validation-logs`` does (``half``: chosen on one half of the held-out log, the bound on
the other). The truth it is checked
against is the same quantity measured on a log written *under the certified policy*:
the mean per-lifetime value (return visits or profit, per logged lifetime, with the same
window and censoring at the log's end) of ``--truth-users`` shoppers under the mixture
:math:`\\pi_\\alpha = (1 - \\alpha)\\pi + \\alpha\\pi_b`, minus the same under the logging
policy :math:`\\pi_b` (one truth per alpha of :data:`retentionrl.evaluation.certify.MIXES`).

Prints, per seed, alpha, the estimate, the lower bound, the truth and whether the bound
held; then the count of seeds where it held with a 95% Wilson interval, and how often
the policy was certified (the bound above 0).

    python experiments/certify_truth.py --policy never-coupon --seeds 30
    python experiments/certify_truth.py --policy runs/quickstart/agent_ppo_profit --metric profit --method bootstrap
    python experiments/certify_truth.py --policy never-coupon --validation half
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from retentionrl.core.atomic import atomic_write_text
from retentionrl.core.policy import Policy
from retentionrl.evaluation.certify import METHODS, METRICS, MIXES, certify
from retentionrl.evaluation.policies import MixturePolicy
from retentionrl.evaluation.runner import LoggedSteps
from retentionrl.evaluation.world_steps import steps_from_decisions
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.interactions.io import read_events
from retentionrl.simulators.policy_registry import make_policy
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs


def logged_steps(
    config: WorldConfig, users: int, days: int, seed: int, policy: Policy | str, folder: Path
) -> LoggedSteps:
    """The logged steps of a world log written under ``policy``."""
    path = folder / f"log_{seed}.parquet"
    write_world_logs(config, users, days, seed, path, logging_policy=policy)
    steps = steps_from_decisions(LoggedDecisions.from_log(read_events(path), horizon_days=config.horizon_days))
    path.unlink()
    return steps


def per_lifetime(steps: LoggedSteps, metric: str) -> float:
    """Mean over logged lifetimes of the summed per-visit value (the certificate's :math:`G`)."""
    reward = steps.trajectory_reward if metric == "return_visits" else steps.bandit_reward
    _, unit = np.unique(steps.trajectory_id, return_inverse=True)
    return float(np.bincount(unit, weights=reward).mean())


def take_lifetimes(steps: LoggedSteps, share: float, seed: int) -> tuple[LoggedSteps, LoggedSteps]:
    """A random ``share`` of the lifetimes (all their steps), the held-out log, and the rest."""
    ids = np.unique(steps.trajectory_id)
    keep = np.random.default_rng(seed).choice(ids, size=max(4, int(round(share * ids.size))), replace=False)
    mask = np.isin(steps.trajectory_id, keep)

    def rows(m: np.ndarray) -> LoggedSteps:
        return LoggedSteps(
            **{k: (v[m] if isinstance(v, np.ndarray) and v.shape[:1] == m.shape else v) for k, v in vars(steps).items()}
        )

    return rows(mask), rows(~mask)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a binomial share ``k / n``."""
    p = k / n
    centre, half = (
        (p + z * z / (2 * n)) / (1 + z * z / n),
        z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n),
    )
    return float(centre - half), float(centre + half)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="never-coupon", help="a world policy name or a trained policy folder")
    parser.add_argument("--metric", default="return_visits", choices=METRICS)
    parser.add_argument("--method", default="bernstein", choices=METHODS)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--first-seed", type=int, default=0, help="world log seeds run from here")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--heldout", type=float, default=0.2)
    parser.add_argument("--truth-users", type=int, default=200_000)
    parser.add_argument(
        "--validation",
        default="train",
        choices=("train", "half"),
        help="where alpha and the clip are chosen: the train split, or a half of the held-out log",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    config = WorldConfig()
    if Path(args.policy).is_dir():
        from retentionrl.agents.training import load_policy

        target = load_policy(args.policy)
    else:
        target = make_policy(args.policy, config)
    logging = make_policy("softmax", config)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base = per_lifetime(logged_steps(config, args.truth_users, args.days, 10_000, logging, folder), args.metric)
        truth = {
            a: per_lifetime(
                logged_steps(
                    config,
                    args.truth_users,
                    args.days,
                    10_000,
                    MixturePolicy([target, logging], [1 - a, a], f"mix {a}"),
                    folder,
                ),
                args.metric,
            )
            - base
            for a in MIXES
        }
        print(
            f"truth (per logged lifetime, {args.truth_users:,} shoppers each): logging {base:.4f}; improvement by "
            "alpha: " + ", ".join(f"{a:g}: {v:+.4f}" for a, v in truth.items()),
            flush=True,
        )
        rows = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            steps, train = take_lifetimes(
                logged_steps(config, args.users, args.days, seed, logging, folder), args.heldout, seed
            )
            cert = certify(
                steps,
                target.taken_probs(steps.obs, steps.action),
                policy=args.policy,
                metric=args.metric,
                method=args.method,
                seed=seed,
                validation=(train, target.taken_probs(train.obs, train.action)) if args.validation == "train" else None,
            )
            held = cert.lower_bound <= truth[cert.mix]
            rows.append(
                {
                    "seed": seed,
                    "mix": cert.mix,
                    "clip": cert.clip,
                    "n": cert.n,
                    "estimate": cert.estimate,
                    "lower_bound": cert.lower_bound,
                    "truth": truth[cert.mix],
                    "relative": truth[cert.mix] / base,
                    "held": bool(held),
                    "certified": cert.verdict == "improves",
                }
            )
            print(
                f"seed {seed:3d}  alpha {cert.mix:4.2f}  clip {cert.clip:4.0f}  estimate {cert.estimate:+.4f}  "
                f"bound {cert.lower_bound:+.4f}  truth {truth[cert.mix]:+.4f}  {'held' if held else 'FAILED'}"
                f"{'  certified' if cert.verdict == 'improves' else ''}",
                flush=True,
            )
    k, n = sum(r["held"] for r in rows), len(rows)
    low, high = wilson(k, n)
    certified = sum(r["certified"] for r in rows)
    powerful = sum(r["certified"] and r["relative"] >= 0.1 for r in rows)
    print(
        f"bound <= truth in {k} of {n} seeds ({k / n:.0%}; 95% Wilson interval [{low:.0%}, {high:.0%}]); "
        f"certified (bound > 0) in {certified} of {n}, {powerful} of them with a true improvement >= 10%; "
        f"{time.perf_counter() - t0:.0f} s"
    )
    if args.json is not None:
        atomic_write_text(
            args.json,
            json.dumps(
                {"args": vars(args) | {"json": str(args.json)}, "truth": truth, "logging": base, "rows": rows},
                indent=2,
                default=str,
            ),
        )


if __name__ == "__main__":
    main()
