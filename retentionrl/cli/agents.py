"""``retentionrl train`` and ``retentionrl evaluate``: agents and baselines on a simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from retentionrl.agents.config import ALGOS, TrainConfig
from retentionrl.agents.registry import BASELINES
from retentionrl.cli import Device
from retentionrl.cli.fields import SET_HELP, apply_set, fields_callback

TRAIN_OPTIONS = {
    "algo": "--algo",
    "simulator": "--simulator",
    "total_steps": "--steps",
    "seed": "--seed",
    "device": "--device",
    "num_envs": "--num-envs",
    "reward_mode": "--reward",
    "checkpoint_every": "--checkpoint-every",
    "deploy": "--deploy",
    "ppo_head": "--ppo-head",
    "warm_start": "experiments/agent_ablation.py (it fits the teacher on logs)",
}
"""TrainConfig fields that ``retentionrl train`` sets from its own options."""


def train_command(
    algo: Annotated[str, typer.Option(help=f"One of {', '.join(ALGOS)}.")] = "ppo",
    simulator: Annotated[str, typer.Option(help="'world' or the folder of a fitted learned simulator.")] = "world",
    steps: Annotated[
        int, typer.Option(help="Environment steps (shopper-visits) to train for.", min=1)
    ] = TrainConfig.total_steps,
    out: Annotated[Path, typer.Option(help="Run folder: config.json, policy, tensorboard/, checkpoints/.")] = Path(
        "runs/agent"
    ),
    seed: Annotated[int, typer.Option(help="Seed of env, networks and generators.")] = 0,
    device: Annotated[Device, typer.Option(help="auto (CUDA when present), cpu or cuda.")] = "auto",
    num_envs: Annotated[int, typer.Option(help="Shoppers stepped together.", min=1)] = TrainConfig.num_envs,
    reward: Annotated[str, typer.Option(help="retention, profit or mixed.")] = "retention",
    checkpoint_every: Annotated[
        int, typer.Option(help="Environment steps between resumable checkpoints.", min=1)
    ] = TrainConfig.checkpoint_every,
    deploy: Annotated[
        str, typer.Option(help="How the saved policy acts: greedy (argmax) or stochastic (as trained).")
    ] = TrainConfig.deploy,
    ppo_head: Annotated[
        str,
        typer.Option(
            help="PPO: flat (one softmax over group x coupon) or factorised (a softmax "
            "over groups and one over coupons)."
        ),
    ] = TrainConfig.ppo_head,
    set_fields: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    fields: Annotated[
        bool,
        typer.Option(
            "--fields",
            help="List the fields --set can reach, with their defaults, and exit.",
            is_eager=True,
            callback=fields_callback(TrainConfig, TRAIN_OPTIONS),
        ),
    ] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in OUT from its last checkpoint.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Train PPO or DQN on a simulator; watch it with `tensorboard --logdir OUT/tensorboard`."""
    config = TrainConfig(
        algo=algo,
        simulator=simulator,
        total_steps=steps,
        seed=seed,
        device=device,
        num_envs=num_envs,
        reward_mode=reward,
        checkpoint_every=checkpoint_every,
        deploy=deploy,
        ppo_head=ppo_head,
    )
    config = apply_set(config, set_fields or [], TRAIN_OPTIONS)
    from retentionrl.agents.training import train  # torch and stable-baselines3: after the checks

    model = train(config, out, resume=resume, progress=progress)
    typer.echo(
        f"trained {algo} for {model.num_timesteps:,} steps; policy in {out}; tensorboard --logdir {out / 'tensorboard'}"
    )


def evaluate_command(
    policy: Annotated[
        str,
        typer.Option(
            help=f"A run folder, a baseline ({', '.join(BASELINES)}) or a world policy "
            "(always-coupon, never-coupon, ...)."
        ),
    ],
    env: Annotated[
        str, typer.Option(help="world (true values) or simulator (values in a learned simulator).")
    ] = "world",
    simulator: Annotated[Path | None, typer.Option(help="Learned simulator folder, for --env simulator.")] = None,
    logs: Annotated[
        Path | None, typer.Option(help=f"Event log the baselines {', '.join(BASELINES[1:])} are fit on.")
    ] = None,
    users: Annotated[int, typer.Option(help="Shoppers to roll out.", min=2)] = 5_000,
    seed: Annotated[int, typer.Option(help="Seed of the rollouts.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Per-shopper value of a policy over the horizon, with 95% intervals."""
    if env not in ("world", "simulator"):
        raise typer.BadParameter(f"{env!r} is not world or simulator", param_hint="--env")
    if env == "simulator" and simulator is None:
        raise typer.BadParameter("--env simulator needs --simulator DIR", param_hint="--simulator")
    from retentionrl.agents.registry import make_named_policy
    from retentionrl.envs.factory import load_simulator
    from retentionrl.interactions.action_map import ActionMap
    from retentionrl.interactions.decisions import LoggedDecisions
    from retentionrl.interactions.io import read_events
    from retentionrl.interactions.trajectories import visits_with_trajectories
    from retentionrl.simulators.rollout import evaluate_policy, format_table

    sim = load_simulator(simulator if env == "simulator" and simulator is not None else "world", device="cpu")
    space = sim.action_space
    decisions = None
    if policy in BASELINES[1:]:
        if logs is None:
            raise typer.BadParameter(f"the {policy} baseline is fit on logs: give --logs PATH", param_hint="--logs")
        log = read_events(logs)
        visits = visits_with_trajectories(log, horizon_days=sim.horizon_days)
        decisions = LoggedDecisions.from_visits(
            visits,
            ActionMap.fit(visits, coupon_levels=space.coupon_levels),
            sim.horizon_days,
            sim.history.spend_scale,
            log_end=log.end,
        )
    chosen = make_named_policy(policy, space, decisions=decisions, seed=seed)
    value = evaluate_policy(sim, chosen, users, seed, progress=True)
    typer.echo(json.dumps(value.to_dict(), indent=2) if as_json else format_table([value]))
