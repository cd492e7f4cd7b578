"""``retentionrl certify``: is a policy, with high confidence, better than the logging policy?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from retentionrl.evaluation.certify import METHODS, METRICS

if TYPE_CHECKING:
    from retentionrl.evaluation.runner import LoggedSteps
    from retentionrl.interactions.action_map import ActionMap
    from retentionrl.interactions.decisions import LoggedDecisions

CERTIFICATE_FILE = "certificate.json"


def certify_command(
    logs: Annotated[
        Path,
        typer.Option(
            "--logs",
            exists=True,
            help="Held-out event log with logged propensities (Parquet or CSV, or a folder of Parquet parts).",
        ),
    ],
    policy: Annotated[
        list[str],
        typer.Option(
            "--policy",
            help="Trained policy folder or world policy name; repeat it to certify the best of several "
            "(chosen with the mix on validation lifetimes, then one bound: the confidence holds for the choice).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", file_okay=False, help=f"Folder for {CERTIFICATE_FILE}.")],
    baseline: Annotated[
        str, typer.Option("--baseline", help="The policy to improve on: logging (the one that wrote the logs).")
    ] = "logging",
    metric: Annotated[
        str, typer.Option("--metric", help=f"One of {', '.join(METRICS)}, per lifetime.")
    ] = "return_visits",
    confidence: Annotated[
        float, typer.Option("--confidence", min=0.5, max=0.999, help="Probability that the bound holds.")
    ] = 0.95,
    method: Annotated[
        str, typer.Option("--method", help="bernstein (a finite-sample guarantee, default) or bootstrap (approximate).")
    ] = "bernstein",
    mix: Annotated[
        str,
        typer.Option(
            "--mix",
            help="Share of the logging policy mixed into the certified policy: "
            "auto (chosen on a validation half) or a number in [0, 1].",
        ),
    ] = "auto",
    validation_logs: Annotated[
        Path | None,
        typer.Option(
            "--validation-logs",
            exists=True,
            help="Other logs of the same logging policy, disjoint from --logs (e.g. the train split): "
            "--mix auto chooses there and the certificate uses every lifetime of --logs "
            "(default: a random half of --logs chooses, the other half certifies).",
        ),
    ] = None,
    horizon_days: Annotated[float, typer.Option("--horizon-days", min=1.0, help="Retention horizon H in days.")] = 90.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the validation split and the bootstrap.")] = 0,
) -> None:
    """Certify POLICY against the logging policy on held-out LOGS; print the verdict, write certificate.json.

    With several --policy, the one certified is chosen among them on the validation lifetimes
    (with its mix and clip) and certified once; certificate.json names it.
    A bound at or below 0 is a verdict ("not certified", exit 0), not an error.
    """
    from retentionrl.cli.ope import load_target
    from retentionrl.core.atomic import atomic_write_text
    from retentionrl.evaluation.certify import certify_best
    from retentionrl.interactions.decisions import LoggedDecisions
    from retentionrl.interactions.io import read_events

    if baseline != "logging":
        raise ValueError(f"--baseline: only 'logging' can be certified against from logs alone, got {baseline!r}")
    for name, value, allowed in (("--metric", metric, METRICS), ("--method", method, METHODS)):
        if value not in allowed:
            raise ValueError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
    share = None if mix == "auto" else _share(mix)
    log = read_events(logs)
    decisions = LoggedDecisions.from_log(log, horizon_days=horizon_days)
    if len(set(policy)) != len(policy):
        raise ValueError(f"--policy: each candidate once, got {policy}")
    targets = {name: load_target(name, logs, decisions.action_map) for name in policy}
    steps = _logged_steps(logs, decisions)
    taken = {name: target.taken_probs(steps.obs, steps.action) for name, target in targets.items()}
    validation = None
    if validation_logs is not None:
        other_log = read_events(validation_logs)
        shared = np.intersect1d(other_log.events["user_id"].unique(), log.events["user_id"].unique())
        if shared.size:
            raise ValueError(
                f"{validation_logs} shares {shared.size:,} shoppers with {logs} (e.g. {shared[0]!r}): the "
                "certificate must not be computed on the lifetimes that chose its mix"
            )
        other = LoggedDecisions.from_log(other_log, horizon_days=horizon_days)
        if _actions(other.action_map) != _actions(decisions.action_map):
            raise ValueError(
                f"{validation_logs}: its action map (arms and coupon levels) differs from {logs}'s: "
                "validation logs must come from the same shop and logging policy"
            )
        v_steps = _logged_steps(validation_logs, other)
        validation = (v_steps, {name: t.taken_probs(v_steps.obs, v_steps.action) for name, t in targets.items()})
    cert = certify_best(
        steps,
        taken,
        metric=metric,
        confidence=confidence,
        method=method,
        mix=share,
        seed=seed,
        validation=validation,
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CERTIFICATE_FILE, json.dumps(cert.to_dict(), indent=2))
    typer.echo(cert.headline())
    typer.echo(f"wrote {out / CERTIFICATE_FILE}")


def _logged_steps(path: Path, decisions: LoggedDecisions) -> LoggedSteps:
    """The logged steps of ``decisions`` (read from ``path``); an error naming ``path`` where
    they hold no propensities."""
    from retentionrl.evaluation.world_steps import steps_from_decisions

    logged = decisions.logged
    if not logged.any():
        raise ValueError(f"{path}: no logged decisions (impressions): nothing to certify a policy on")
    missing = int(np.isnan(decisions.propensity[logged]).sum())
    if missing:
        raise ValueError(
            f"{path}: {missing:,} of {int(logged.sum()):,} logged visits have no propensity (column "
            "'propensity'): a certificate needs the probabilities the logging policy actually used"
        )
    return steps_from_decisions(decisions)


def _actions(action_map: ActionMap) -> tuple:
    """What a log's actions mean (its arms and coupon levels), not how often it took them."""
    return action_map.arm_column, action_map.arms, action_map.space


def _share(text: str) -> float:
    """``--mix`` as a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"--mix: expected auto or a number in [0, 1], got {text!r}")
    return value
