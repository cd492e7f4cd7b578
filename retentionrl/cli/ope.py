"""``retentionrl ope``: off-policy evaluation of policies on an event log, as a report."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pyarrow as pa
import pyarrow.parquet as pq
import typer

from retentionrl.core.errors import InputError
from retentionrl.core.policy import Policy
from retentionrl.interactions.action_map import ActionMap
from retentionrl.simulators.world.config import WorldConfig

if TYPE_CHECKING:
    from retentionrl.interactions.decisions import LoggedDecisions
    from retentionrl.simulators.learned.simulator import LearnedSimulator

CLONE_WARNING = (
    "The logs have no propensities: they were estimated by a clone of the logging policy "
    "(multinomial logistic regression). Every importance-weighted estimate inherits its errors."
)
NO_COGS_WARNING = (
    "These logs record no cost of goods (no unit_cost column): profit is net revenue (spend - coupon cost)."
)


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


def load_target(spec: str, logs: Path, action_map: ActionMap) -> Policy:
    """The policy ``spec`` (a trained folder or a world policy) for logs with ``action_map``:
    a world policy of the world that wrote the logs; a trained policy must act on the same
    actions (:func:`retentionrl.agents.registry.check_action_map`)."""
    from retentionrl.agents.registry import BASELINES, check_action_map, load_trained, make_named_policy

    if spec in BASELINES:
        raise typer.BadParameter(
            f"{spec!r}: a baseline fit on these logs is not evaluated off-policy here; give a "
            "trained policy folder or a world policy",
            param_hint="--policy",
        )
    target: Policy
    if Path(spec).is_dir():
        target = load_trained(spec)
    else:
        target = make_named_policy(spec, action_map.space, world=_world_config(logs))
    check_action_map(target, action_map, policy_name=spec, logs=logs)
    return target


def _shown(iv, diag) -> str:
    """An estimate as printed, or why it is not estimable (retentionrl.evaluation.diagnostics.not_estimable)."""
    from retentionrl.evaluation.diagnostics import not_estimable

    return not_estimable(iv.low, iv.high, diag.ess, diag.n_units) or str(iv)


def _model_members(folder: Path, logs: Path, decisions: LoggedDecisions, horizon_days: float) -> list[LearnedSimulator]:
    """The simulators (an ensemble's members) in ``folder``, which must share the logs'
    action map and ``horizon_days``."""
    from retentionrl.simulators.learned.ensemble import load_members
    from retentionrl.simulators.learned.simulator import LearnedSimulator as Learned

    members = [m for m in load_members(folder, device="cpu") if isinstance(m, Learned)]
    card = members[0].card
    if card.spec.horizon_days != horizon_days:
        raise typer.BadParameter(
            f"{horizon_days:g} days; the simulator {folder} was fitted with H = {card.spec.horizon_days:g}",
            param_hint="--horizon-days",
        )
    fitted, logged = (tuple(str(a) for a in m.arms) for m in (card.action_map, decisions.action_map))
    if card.action_map.space != decisions.action_map.space or fitted != logged:
        raise InputError(
            logs,
            f"the simulator {folder} was fitted on arms {list(fitted)} with coupon levels "
            f"{list(card.action_map.space.coupon_levels)}; these logs' action map is {list(logged)} with "
            f"{list(decisions.action_map.space.coupon_levels)}",
        )
    return members


def ope_command(
    logs: Annotated[
        Path, typer.Option("--logs", exists=True, help="Event log (Parquet or CSV, or a folder of Parquet parts).")
    ],
    policy: Annotated[
        list[str], typer.Option("--policy", help="Trained policy folder or world policy name; repeatable.")
    ],
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Folder for report.md, report.html, PNG.")],
    horizon_days: Annotated[float, typer.Option("--horizon-days", min=1.0, help="Retention horizon H in days.")] = 90.0,
    n_bootstrap: Annotated[int, typer.Option("--bootstrap", min=2, help="Bootstrap resamples over shoppers.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    sequential: Annotated[
        bool, typer.Option("--sequential/--no-sequential", help="Also run trajectory estimators.")
    ] = True,
    simulator: Annotated[
        Path | None,
        typer.Option(
            "--simulator",
            exists=True,
            file_okay=False,
            help="A learned simulator (or ensemble) fitted on other logs of the same shop: adds the "
            "model-based trajectory estimates sim-magic, sim-dm and sim-dr, which far policies need.",
        ),
    ] = None,
    rollouts: Annotated[
        int, typer.Option("--rollouts", min=1, help="Simulated continuations per logged visit (with --simulator).")
    ] = 8,
) -> None:
    """Estimate each policy's value from the logs with intervals and diagnostics; write a report."""
    from retentionrl.agents.registry import logged_propensities
    from retentionrl.evaluation.report import write_report
    from retentionrl.evaluation.runner import evaluate_policies
    from retentionrl.evaluation.world_steps import steps_from_decisions
    from retentionrl.interactions.decisions import LoggedDecisions
    from retentionrl.interactions.io import read_events

    log = read_events(logs)
    decisions = LoggedDecisions.from_log(log, horizon_days=horizon_days)
    warnings: list[str] = [] if log.records_cogs else [NO_COGS_WARNING]
    members = _model_members(simulator, logs, decisions, horizon_days) if simulator is not None else []
    targets = {spec: load_target(spec, logs, decisions.action_map) for spec in policy}
    propensity = logged_propensities(decisions)
    if propensity is not None:
        warnings.append(CLONE_WARNING)
    steps = steps_from_decisions(decisions, propensity)
    results = evaluate_policies(steps, targets, n_bootstrap=n_bootstrap, seed=seed, sequential=sequential)
    if members:
        from retentionrl.evaluation.model_based import estimate_on_decisions

        model = estimate_on_decisions(
            members,
            targets,
            decisions,
            horizon_days,
            propensity=propensity,
            rollouts=rollouts,
            seed=seed,
            progress=True,
        )
        results = {
            name: dataclasses.replace(res, model=model[name].intervals, notes=res.notes + model[name].notes)
            for name, res in results.items()
        }
    for spec, res in results.items():
        line = f"{spec}: DR profit/visit {_shown(res.bandit['dr'], res.bandit_diagnostics)}"
        if sequential:
            line += f"; DR return visits {_shown(res.trajectory['dr'], res.trajectory_diagnostics)}"
        if res.model:
            from retentionrl.evaluation.diagnostics import not_estimable

            magic = res.model["sim-magic"]
            line += f"; simulator MAGIC return visits {not_estimable(magic.low, magic.high) or magic}"
        typer.echo(line)
    paths = write_report(out, list(results.values()), str(logs), warnings)
    for w in warnings:
        typer.secho(f"WARNING: {w}", fg=typer.colors.RED, err=True)
    typer.echo(f"wrote {paths['html']}, {paths['md']} and {paths['png']}")
