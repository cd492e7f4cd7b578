"""``retentionrl ope``: off-policy evaluation of policies on an event log, as a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import typer

from retentionrl.core.policy import Policy
from retentionrl.simulators.policy_registry import POLICY_NAMES, make_policy
from retentionrl.simulators.world.config import WorldConfig

CLONE_WARNING = ("The logs have no propensities: they were estimated by a clone of the logging policy "
                 "(multinomial logistic regression). Every importance-weighted estimate inherits its errors.")
NO_COGS_WARNING = ("These logs record no cost of goods (no unit_cost column): profit is net revenue (spend - coupon "
                   "cost).")


def _world_config(logs: Path) -> WorldConfig:
    """The world config stored in a world log's metadata, else the default world."""
    try:
        meta = pq.read_schema(logs).metadata or {}
    except (OSError, pa.ArrowInvalid):  # not Parquet: CSV logs carry no metadata
        return WorldConfig()
    raw = meta.get(b"retentionrl.world_config")
    if raw is None:
        return WorldConfig()
    return WorldConfig.from_json(raw, source=str(logs))


def _load_policy(spec: str, logs: Path) -> Policy:
    if Path(spec).is_dir():
        from retentionrl.agents.training import load_policy

        return load_policy(spec)
    if spec not in POLICY_NAMES:
        raise typer.BadParameter(f"{spec!r} is neither a trained policy folder nor one of {', '.join(POLICY_NAMES)}",
                                 param_hint="--policy")
    return make_policy(spec, _world_config(logs))


def _shown(iv, diag) -> str:
    """An estimate as printed, or why it is not estimable (retentionrl.evaluation.diagnostics.not_estimable)."""
    from retentionrl.evaluation.diagnostics import not_estimable

    return not_estimable(iv.low, iv.high, diag.ess, diag.n_units) or str(iv)


def ope_command(
    logs: Annotated[Path, typer.Option("--logs", exists=True, dir_okay=False, help="Event log (Parquet or CSV).")],
    policy: Annotated[list[str], typer.Option("--policy", help="Trained policy folder or world policy name; repeatable.")],
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Folder for report.md, report.html, PNG.")],
    horizon_days: Annotated[float, typer.Option("--horizon-days", min=1.0, help="Retention horizon H in days.")] = 90.0,
    n_bootstrap: Annotated[int, typer.Option("--bootstrap", min=2, help="Bootstrap resamples over shoppers.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    sequential: Annotated[bool, typer.Option("--sequential/--no-sequential",
                                             help="Also run trajectory estimators.")] = True,
) -> None:
    """Estimate each policy's value from the logs with intervals and diagnostics; write a report."""
    from retentionrl.agents.baselines import LoggingPolicyClone
    from retentionrl.evaluation.report import write_report
    from retentionrl.evaluation.runner import evaluate_offline
    from retentionrl.evaluation.world_steps import steps_from_decisions
    from retentionrl.interactions.decisions import LoggedDecisions
    from retentionrl.interactions.io import read_events

    log = read_events(logs)
    decisions = LoggedDecisions.from_log(log, horizon_days=horizon_days)
    warnings: list[str] = [] if log.records_cogs else [NO_COGS_WARNING]
    propensity = None
    logged = decisions.logged
    if np.isnan(decisions.propensity[logged]).any():
        clone = LoggingPolicyClone.fit(decisions)
        propensity = clone.action_probs(decisions.obs)[np.arange(decisions.n), decisions.action]
        warnings.append(CLONE_WARNING)
    steps = steps_from_decisions(decisions, propensity)
    results = []
    for spec in policy:
        target = _load_policy(spec, logs)
        if target.action_space.n_actions != steps.n_actions:
            raise typer.BadParameter(f"policy {spec!r} has {target.action_space.n_actions} actions, the logs "
                                     f"{steps.n_actions}", param_hint="--policy")
        res = evaluate_offline(steps, target.action_probs(steps.obs), policy=spec, n_bootstrap=n_bootstrap,
                               seed=seed, sequential=sequential)
        results.append(res)
        line = f"{spec}: DR profit/visit {_shown(res.bandit['dr'], res.bandit_diagnostics)}"
        if sequential:
            line += f"; DR return visits {_shown(res.trajectory['dr'], res.trajectory_diagnostics)}"
        typer.echo(line)
    paths = write_report(out, results, str(logs), warnings)
    for w in warnings:
        typer.secho(f"WARNING: {w}", fg=typer.colors.RED, err=True)
    typer.echo(f"wrote {paths['html']}, {paths['md']} and {paths['png']}")
