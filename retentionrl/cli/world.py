"""``retentionrl world ...``: the ground-truth shopper world (logs, true policy values)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from retentionrl.simulators.policy_registry import LOGGING_POLICIES, POLICY_NAMES, make_policy
from retentionrl.simulators.rollout import format_table
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs
from retentionrl.simulators.world.simulator import GroundTruthWorld

world_app = typer.Typer(help="The ground-truth shopper world: write logs, score policies.", no_args_is_help=True)


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=option)
    return value


@world_app.command("logs")
def logs(
    out: Path = typer.Option(..., "--out", help="Parquet file to write (atomically)."),
    users: int = typer.Option(10_000, "--users", min=1, help="Shoppers arriving in the window."),
    days: int = typer.Option(180, "--days", min=1, help="Length of the log window in days."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed writes the same bytes."),
    logging_policy: str = typer.Option("softmax", "--logging-policy", help=f"One of {', '.join(LOGGING_POLICIES)}."),
) -> None:
    """Write an event log of the world under a logging policy, with exact propensities."""
    _choice(logging_policy, LOGGING_POLICIES, "--logging-policy")
    summary = write_world_logs(WorldConfig(), users, days, seed, out, logging_policy=logging_policy, progress=True)
    typer.echo(
        f"wrote {summary.n_events} events ({summary.n_visits} visits of {summary.n_users} shoppers, "
        f"{summary.n_bytes / 1e6:.1f} MB) to {summary.path}"
    )


@world_app.command("evaluate")
def evaluate(
    policy: str = typer.Option(..., "--policy", help=f"One of {', '.join(POLICY_NAMES)}."),
    users: int = typer.Option(5_000, "--users", min=2, help="Shoppers to roll out."),
    seed: int = typer.Option(0, "--seed", help="Seed of the rollouts."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The true value of a policy over the horizon, with 95% intervals."""
    _choice(policy, POLICY_NAMES, "--policy")
    config = WorldConfig()
    value = GroundTruthWorld(config).evaluate(make_policy(policy, config), users, seed, progress=True)
    typer.echo(json.dumps(value.to_dict(), indent=2) if as_json else format_table([value]))
