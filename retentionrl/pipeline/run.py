"""The end-to-end pipeline: logs -> split -> learned simulator -> agents -> evaluation -> report.

Each stage is a function of the run's config and the files of the stages before it, and
writes one folder under ``config.out`` (cached by :mod:`retentionrl.pipeline.cache`):

==============  ==========================================================  ==================
stage           does                                                        depends on
==============  ==========================================================  ==================
``logs``        the ground-truth world writes logs (world runs only)        world.*, seed
``split``       shoppers -> train / held-out logs (``split_users``); the      logs file, format,
                log's ``retentionrl.*`` Parquet metadata (world version)    heldout_fraction
                goes with them
``simulator``   ``fit_simulator`` on the train logs                         train log, simulator.*,
                                                                            horizon, device
``dataset``     train / held-out decisions in the simulator's action map,   simulator, split
                and the logging-policy clone fit on the train decisions
``fidelity``    simulated (logging clone) vs Kaplan-Meier retention of      dataset, logs,
                held-out shoppers at 7 / 30 / H days; on Complete Journey   evaluation.users
                logs, what its campaigns and coupons hold
``agent_<a>``   PPO / DQN trained in the learned simulator                  simulator, agents.*,
                                                                            reward_mode
``agent_one-    the Q networks of popularity in each simulator member         simulator, dataset,
step``          (:mod:`retentionrl.agents.one_step`), deployed at the run's   agents.one_step_users
                reward and every frontier weight
``evaluate``    baselines; values in the simulator and (world) the world;  all of the above,
                OPE on held-out logs; behaviour by segment                  evaluation.*
``report``      one HTML page with PNGs (:mod:`retentionrl.report.main`)   fidelity, evaluate
==============  ==========================================================  ==================

TensorBoard: ``simulator/tensorboard`` (the fit) and ``agent_<a>/tensorboard`` (training);
``tensorboard --logdir OUT`` shows them all. No raw user id is written outside the split
logs themselves.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from retentionrl.core.atomic import atomic_path, atomic_write_text
from retentionrl.core.policy import Policy
from retentionrl.core.records import json_text
from retentionrl.envs.reward import RewardConfig
from retentionrl.evaluation.certify import Certificate
from retentionrl.pipeline.cache import StageRun, run_stage
from retentionrl.pipeline.config import PipelineConfig
from retentionrl.pipeline.results import (
    EvaluateResults,
    FidelityResults,
    FrontierPlace,
    HeadCard,
    PolicyResult,
)

if TYPE_CHECKING:
    import pandas as pd

    from retentionrl.interactions.adapters.complete_journey import CampaignSummary
    from retentionrl.interactions.io import EventLog
    from retentionrl.interactions.visits import VisitMode

Echo = Callable[[str], None]
ConfigT = TypeVar("ConfigT", bound=PipelineConfig)  # a run's config, or a sweep's (its subclass)
# The modules each stage runs (run_stage's ``code``: they and what they import key the stage,
# with this file). _LOADING is what the helpers _load_simulator and _dataset run.
_LOADING = (
    "retentionrl.interactions.decisions",
    "retentionrl.simulators.learned.ensemble",
    "retentionrl.agents.baselines",
)
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "logs": ("retentionrl.simulators.world.logs",),
    "split": (
        "retentionrl.interactions.io",
        "retentionrl.interactions.splits",
        "retentionrl.interactions.trajectories",
        "retentionrl.envs.reward",
    ),
    "simulator": (
        "retentionrl.interactions.io",
        "retentionrl.simulators.learned.fit",
        "retentionrl.simulators.learned.ensemble",
    ),
    "dataset": (*_LOADING, "retentionrl.interactions.io", "retentionrl.interactions.trajectories"),
    "fidelity": (
        *_LOADING,
        "retentionrl.interactions.io",
        "retentionrl.interactions.adapters.complete_journey",
        "retentionrl.pipeline.measure",
    ),
    "agent": ("retentionrl.agents.training",),
    "one_step": (*_LOADING, "retentionrl.agents.one_step"),
    "evaluate": (
        *_LOADING,
        "retentionrl.agents.training",
        "retentionrl.agents.one_step",
        "retentionrl.agents.registry",
        "retentionrl.evaluation.selection",
        "retentionrl.evaluation.certify",
        "retentionrl.evaluation.world_steps",
        "retentionrl.evaluation.frontier",
        "retentionrl.pipeline.measure",
        "retentionrl.simulators.rollout",
        "retentionrl.simulators.policy_registry",
        "retentionrl.simulators.world.heuristics",
        "retentionrl.simulators.world.simulator",
        "retentionrl.simulators.world.logging_policies",
    ),
    "report": ("retentionrl.report.main",),
}


def _json(path: Path, data: object) -> None:
    atomic_write_text(path, json_text(data))


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- stages


def stage_logs(config: PipelineConfig, echo: Echo) -> tuple[Path, str, StageRun | None]:
    """The log file to learn from, its format and the stage run (None: the user's logs)."""
    if config.logs is not None:
        if not config.logs.exists():  # a file, a folder of Parquet parts, or Complete Journey's tables
            raise ValueError(f"logs: {config.logs}: no such file or folder")
        return config.logs, config.format, None

    def compute(folder: Path) -> None:
        from retentionrl.simulators.world.config import WorldConfig
        from retentionrl.simulators.world.logs import write_world_logs

        s = write_world_logs(
            WorldConfig(),
            config.world.users,
            config.world.days,
            config.seed,
            folder / "world_logs.parquet",
            logging_policy=config.world.logging_policy,
            progress=True,
        )
        _json(folder / "summary.json", {"users": s.n_users, "visits": s.n_visits, "events": s.n_events})

    run = run_stage(
        config.out,
        "logs",
        {**config.world.model_dump(), "seed": config.seed},
        {},
        compute,
        code=STAGE_CODE["logs"],
        echo=echo,
    )
    return run.folder / "world_logs.parquet", "events", run


def stage_split(config: PipelineConfig, logs: Path, fmt: str, echo: Echo) -> StageRun:
    """Train / held-out logs by shopper (every shopper in exactly one part)."""

    def compute(folder: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from retentionrl.interactions.io import EventLog, read_events
        from retentionrl.interactions.splits import split_users

        log = read_events(logs, fmt)
        f = config.split.heldout_fraction
        split = split_users(log.events["user_id"], (1.0 - f, 0.0, f), seed=config.seed)
        events = log.events.assign(event=log.events["event"].astype(str))
        provenance = _retentionrl_metadata(logs)
        for name, mask in (("train", split.train), ("heldout", split.test)):
            table = pa.Table.from_pandas(events.loc[mask], preserve_index=False)
            with atomic_path(folder / f"{name}.parquet") as tmp:
                pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **provenance}), tmp)
        _json(
            folder / "summary.json",
            {
                "source": Path(str(log.source)).name,
                "format": log.report.format,
                "events": len(events),
                "records_cogs": log.records_cogs,
                "users": log.n_users,
                "train_users": int(events.loc[split.train, "user_id"].nunique()),
                "heldout_users": int(events.loc[split.test, "user_id"].nunique()),
                "log_start": str(log.start),
                "log_end": str(log.end),
                "dropped": dict(log.report.dropped),
                "reward_scale": logged_reward_scale(
                    EventLog(log.events.loc[split.train], log.report), config.horizon_days, config.visit_mode, log.end
                ),
            },
        )

    return run_stage(
        config.out,
        "split",
        {
            "format": fmt,
            "heldout_fraction": config.split.heldout_fraction,
            "seed": config.seed,
            "horizon_days": config.horizon_days,
            "visit_mode": config.visit_mode,
        },
        {"logs": logs},
        compute,
        code=STAGE_CODE["split"],
        echo=echo,
    )


def logged_reward_scale(
    log: EventLog, horizon_days: int, visit_mode: VisitMode, log_end: pd.Timestamp | None = None
) -> dict[str, object]:
    """:func:`retentionrl.envs.reward.logged_revenue_scale` of ``log``'s visits in the retention
    window whose window closed before the log ended (``log_end``, default ``log.end``: their
    return is known), with what it reads: their number, profit per visit and share followed by
    a return within H; where the log gives no scale, ``revenue_scale`` is None and ``error`` says why."""
    from retentionrl.envs.reward import logged_revenue_scale
    from retentionrl.interactions.trajectories import visits_with_trajectories, window_closed

    visits = visits_with_trajectories(log, horizon_days=horizon_days, mode=visit_mode)
    end = log.end if log_end is None else log_end
    known = visits["in_window"].to_numpy() & window_closed(visits, end, horizon_days)
    profit = (visits["spend"] - visits["coupon_cost"] - visits["cogs"]).to_numpy()[known]
    returned = visits["returned"].to_numpy()[known]
    stats: dict[str, object] = {
        "visits": int(known.sum()),
        "profit_per_visit": float(profit.mean()) if known.any() else None,
        "return_share": float(returned.mean()) if known.any() else None,
    }
    try:
        return {**stats, "revenue_scale": logged_revenue_scale(profit, returned)}
    except ValueError as exc:
        return {**stats, "revenue_scale": None, "error": str(exc)}


def resolve_revenue_scale(config: ConfigT, split: StageRun) -> ConfigT:
    """``config`` with ``revenue_scale: logs`` replaced by the train split's
    :func:`~retentionrl.envs.reward.logged_revenue_scale` (an amount stays as it is).

    :raises ValueError: the train split gives no scale (the message says why and how to set one).
    """
    if config.revenue_scale != "logs":
        return config
    stats = _read(split.folder / "summary.json")["reward_scale"]
    if stats["revenue_scale"] is None:
        raise ValueError(f"revenue_scale: logs: the train split ({split.folder / 'train.parquet'}): {stats['error']}")
    return config.model_copy(update={"revenue_scale": float(stats["revenue_scale"])})


def _retentionrl_metadata(path: Path) -> dict[bytes, bytes]:
    """The ``retentionrl.*`` entries (world config and version, ...) of a Parquet file's
    schema metadata; none for other files."""
    import pyarrow.parquet as pq

    from retentionrl.interactions.tables import PARQUET_SUFFIXES

    if not path.name.lower().endswith(PARQUET_SUFFIXES):
        return {}
    return {k: v for k, v in (pq.read_schema(path).metadata or {}).items() if k.startswith(b"retentionrl.")}


def fit_config(config: PipelineConfig, member: int = 0):
    """The fit of the ``member``-th simulator of the run (seed ``config.seed + member``; the
    members of an ensemble train on bootstrap resamples of the shoppers)."""
    from retentionrl.simulators.learned.config import FitConfig

    return FitConfig(
        **{**config.simulator.config_fields(), "visit_mode": config.visit_mode},
        horizon_days=config.horizon_days,
        seed=config.seed + member,
        device=config.device,
        bootstrap=config.simulator.ensemble > 1,
    )


def fit_simulators(
    config: PipelineConfig,
    logs: Path,
    folder: Path,
    echo: Echo,
    *,
    progress: bool = True,
    action_logs: Path | None = None,
) -> None:
    """Fit the run's learned simulator on ``logs`` (an events file) into ``folder``; with
    ``simulator.ensemble = K > 1``, K of them (seeds ``seed .. seed + K - 1``, each on a
    bootstrap resample of the shoppers) in ``member_<k>`` folders of an ensemble
    (:mod:`retentionrl.simulators.learned.ensemble`). ``action_logs``: an events file that
    ``logs`` is part of, whose arms and coupon ladder the fit uses (default ``logs``')."""
    from retentionrl.interactions.io import read_events
    from retentionrl.simulators.learned.ensemble import write_ensemble
    from retentionrl.simulators.learned.fit import action_map_of, fit_simulator

    k = config.simulator.ensemble
    log = read_events(logs, "events")
    action_map = action_map_of(read_events(action_logs, "events"), fit_config(config)) if action_logs else None
    if k == 1:
        fit_simulator(log, fit_config(config), folder, progress=progress, action_map=action_map)
        return
    for m in range(k):
        fit = fit_config(config, m)
        echo(f"  ensemble member {m + 1} of {k} (seed {fit.seed})")
        fit_simulator(log, fit, folder / f"member_{m}", progress=progress, action_map=action_map)
    write_ensemble(folder, [f"member_{m}" for m in range(k)])


def simulator_key(config: PipelineConfig) -> dict:
    """What a fitted simulator (or ensemble) of the run depends on in its config."""
    return dataclasses.asdict(fit_config(config)) | {"ensemble": config.simulator.ensemble}


def stage_simulator(
    config: PipelineConfig, logs: Path, echo: Echo, *, name: str = "simulator", action_logs: Path | None = None
) -> StageRun:
    """The learned simulator (:func:`fit_simulators`) fitted on ``logs`` (the train split's)."""
    return run_stage(
        config.out,
        name,
        simulator_key(config),
        {"train": logs, **({"actions": action_logs} if action_logs else {})},
        lambda folder: fit_simulators(config, logs, folder, echo, action_logs=action_logs),
        code=STAGE_CODE["simulator"],
        echo=echo,
    )


def _load_simulator(config: PipelineConfig, folder: Path):
    from retentionrl.simulators.learned.ensemble import load_ensemble

    return load_ensemble(folder, device=config.device)


def _decisions(log, card, horizon_days: int):
    """Logged decisions with the simulator's action map and visit mode."""
    from retentionrl.interactions.decisions import LoggedDecisions
    from retentionrl.interactions.trajectories import visits_with_trajectories

    visits = visits_with_trajectories(log, horizon_days=horizon_days, mode=card.fit_config["visit_mode"])
    return LoggedDecisions.from_visits(visits, card.action_map, horizon_days, card.spend_scale, log_end=log.end)


def stage_dataset(config: PipelineConfig, split: StageRun, sim: StageRun, echo: Echo) -> StageRun:
    """The train and held-out logs as decisions in the simulator's action map (sessionised and
    replayed once) and the logging-policy clone fit on the train decisions: what the fidelity
    and evaluate stages read, instead of each rebuilding them."""

    def compute(folder: Path) -> None:
        from retentionrl.agents.baselines import LoggingPolicyClone
        from retentionrl.interactions.io import read_events

        card = _load_simulator(config, sim.folder).card
        for part in ("train", "heldout"):
            decisions = _decisions(read_events(split.folder / f"{part}.parquet", "events"), card, config.horizon_days)
            decisions.save(folder / f"{part}_decisions.npz")
            if part == "train" and decisions.logged.any():
                LoggingPolicyClone.fit(decisions).save(folder / CLONE_FILE)

    cfg = {"horizon_days": config.horizon_days, "device": config.device}
    return run_stage(
        config.out,
        "dataset",
        cfg,
        {"simulator": sim.folder, "split": split.folder},
        compute,
        code=STAGE_CODE["dataset"],
        echo=echo,
    )


CLONE_FILE = "logging_clone.safetensors"


def _dataset(folder: Path, simulator):
    """(train decisions, held-out decisions, the logging-policy clone or None where the logs
    hold no actions) of a ``dataset`` stage folder."""
    from retentionrl.agents.baselines import LoggingPolicyClone
    from retentionrl.interactions.decisions import LoggedDecisions

    amap = simulator.card.action_map
    clone = (
        LoggingPolicyClone.load(folder / CLONE_FILE, simulator.action_space)
        if (folder / CLONE_FILE).is_file()
        else None
    )
    return (
        LoggedDecisions.load(folder / "train_decisions.npz", amap),
        LoggedDecisions.load(folder / "heldout_decisions.npz", amap),
        clone,
    )


def stage_fidelity(config: PipelineConfig, split: StageRun, sim: StageRun, dataset: StageRun, echo: Echo) -> StageRun:
    """Simulated vs logged retention of held-out shoppers (and the model card's claims): the
    simulator acts with the logging-policy clone (a constant action where the logs hold none)."""

    def compute(folder: Path) -> None:
        from retentionrl.agents.baselines import PopularityPolicy
        from retentionrl.interactions.io import read_events
        from retentionrl.pipeline.measure import logged_retention, rollout

        simulator = _load_simulator(config, sim.folder)
        card = simulator.card
        heldout = read_events(split.folder / "heldout.parquet", "events")
        _, _, clone = _dataset(dataset.folder, simulator)
        has_actions = clone is not None
        simulated = rollout(
            simulator,
            clone if has_actions else PopularityPolicy(simulator.action_space, 0),
            "logging-clone",
            config.evaluation.users,
            config.seed + 1,
        )
        logged_curve, logged_returns = logged_retention(heldout, config.horizon_days, config.visit_mode)
        FidelityResults(
            horizon_days=config.horizon_days,
            logged_curve=logged_curve,
            logged_return_visits=logged_returns,
            simulated=simulated,
            policy="logging-policy clone" if has_actions else "constant action (the logs hold no actions)",
            heads={
                name: HeadCard(bool(h["learned"]), int(h["examples"]), str(h.get("reason") or ""))
                for name, h in card.heads.items()
            },
            identifies_recommendation=bool(card.action_inputs["arm"]),
            identifies_coupon=bool(card.action_inputs["coupon"]),
            campaigns=campaign_summary(config, split),
        ).save(folder / "fidelity.json")

    cfg = {
        "users": config.evaluation.users,
        "seed": config.seed,
        "horizon_days": config.horizon_days,
        "device": config.device,
        "visit_mode": config.visit_mode,
    }
    inputs = {
        "simulator": sim.folder,
        "split": split.folder,
        "dataset": dataset.folder,
        **({"logs": config.logs} if config.logs is not None and _format(split) == "complete-journey" else {}),
    }
    return run_stage(config.out, "fidelity", cfg, inputs, compute, code=STAGE_CODE["fidelity"], echo=echo)


def _format(split: StageRun) -> str:
    """The format the split stage read the logs in (``auto`` resolved)."""
    return str(_read(split.folder / "summary.json")["format"])


def campaign_summary(config: PipelineConfig, split: StageRun) -> CampaignSummary | None:
    """What the campaigns and coupons of Complete Journey logs hold
    (:func:`retentionrl.interactions.adapters.complete_journey.summarize_campaigns`); None for other logs."""
    from retentionrl.interactions.adapters.complete_journey import summarize_campaigns

    if config.logs is None or _format(split) != "complete-journey":
        return None
    return summarize_campaigns(config.logs)


def agent_specs(config: PipelineConfig) -> dict[str, tuple[str, RewardConfig]]:
    """Name -> (algo, reward) of every agent the run trains: each of ``agents.algos`` on the
    run's reward, named by its algo; then the frontier agents, the first algo at each
    weight of ``agents.frontier`` whose reward differs from the run's, named
    ``"<algo> (<reward label>)"`` (e.g. ``ppo (mixed w=0.25)``)."""
    specs: dict[str, tuple[str, RewardConfig]] = {algo: (algo, config.reward) for algo in config.agents.algos}
    if config.agents.algos:
        algo = config.agents.algos[0]
        for w in config.agents.frontier:
            reward = RewardConfig.weighted(w, config.reward.revenue_scale)
            if reward.label != config.reward.label:
                specs[f"{algo} ({reward.label})"] = (algo, reward)
    return specs


def train_config(config: PipelineConfig, algo: str, simulator: Path, reward: RewardConfig):
    from retentionrl.agents.config import TrainConfig

    return TrainConfig(
        **config.agents.config_fields(),
        algo=algo,
        simulator=str(simulator),
        seed=config.seed,
        device=config.device,
        reward_mode=reward.mode,
        revenue_scale=reward.revenue_scale,
        retention_weight=reward.retention_weight,
    )


def stage_name(name: str) -> str:
    """The stage (folder) of the agent called ``name``: ``agent_ppo``, ``agent_ppo_mixed_w0.25``."""
    return "agent_" + name.replace(" (", "_").replace(")", "").replace("=", "").replace(" ", "_")


def stage_agent(
    config: PipelineConfig, name: str, algo: str, reward: RewardConfig, sim: StageRun, echo: Echo
) -> StageRun:
    """An agent (``algo`` on ``reward``) trained in the learned simulator only."""
    tc = train_config(config, algo, sim.folder, reward)

    def compute(folder: Path) -> None:
        from retentionrl.agents.training import train

        train(tc, folder, progress=True)

    cfg = {k: v for k, v in dataclasses.asdict(tc).items() if k != "simulator"}
    return run_stage(
        config.out, stage_name(name), cfg, {"simulator": sim.folder}, compute, code=STAGE_CODE["agent"], echo=echo
    )


ONE_STEP_STAGE = "agent_one-step"
ONE_STEP_SKIPPED = "skipped.json"


def one_step_rewards(config: PipelineConfig) -> dict[str, RewardConfig]:
    """Name -> reward of the one-step agents: the run's reward, then each frontier weight's
    that differs from it (:func:`agent_specs`' order), all deployed from one fit."""
    rewards = [config.reward, *(RewardConfig.weighted(w, config.reward.revenue_scale) for w in config.agents.frontier)]
    return {f"one-step ({r.label})": r for r in {r.label: r for r in rewards}.values()}


def stage_one_step(config: PipelineConfig, sim: StageRun, dataset: StageRun, echo: Echo) -> StageRun | None:
    """The one-step agents' Q networks (popularity's, fitted on rollouts in every member of the
    learned simulator), or None where ``agents.one_step_users`` is 0. Where popularity cannot be
    fitted (logs without logged actions) the folder holds :data:`ONE_STEP_SKIPPED` with the reason."""
    if config.agents.one_step_users == 0:
        return None
    from retentionrl.agents.one_step import OneStepConfig

    one = OneStepConfig(users=config.agents.one_step_users, seed=config.seed)

    def compute(folder: Path) -> None:
        from retentionrl.agents.baselines import PopularityPolicy
        from retentionrl.agents.one_step import fit_q, save_one_step
        from retentionrl.simulators.learned.ensemble import load_members
        from retentionrl.simulators.learned.simulator import resolve_device

        members = load_members(sim.folder, config.device)
        train, _, _ = _dataset(dataset.folder, members[0])  # an ensemble's action map is its first member's
        try:
            base = PopularityPolicy.fit(train).action
        except ValueError as exc:  # no logged actions: no base policy to improve on
            _json(folder / ONE_STEP_SKIPPED, {"reason": f"no base policy (popularity): {exc}"})
            return
        q = fit_q(members, base, one, device=resolve_device(config.device), progress=True)
        save_one_step(folder, q, base, members[0], config.reward, one)

    cfg = {"one_step": dataclasses.asdict(one), "reward": dataclasses.asdict(config.reward), "device": config.device}
    inputs = {"simulator": sim.folder, "dataset": dataset.folder}
    return run_stage(config.out, ONE_STEP_STAGE, cfg, inputs, compute, code=STAGE_CODE["one_step"], echo=echo)


def stage_evaluate(
    config: PipelineConfig,
    dataset: StageRun,
    sim: StageRun,
    agents: dict[str, StageRun],
    echo: Echo,
    one_step: StageRun | None = None,
) -> StageRun:
    """Every policy: value in the learned simulator, true value in the world, OPE, behaviour."""

    def compute(folder: Path) -> None:
        from retentionrl.agents.registry import logged_propensities, make_named_policy
        from retentionrl.agents.training import load_policy
        from retentionrl.evaluation.selection import recommend
        from retentionrl.pipeline.measure import SimulatorModel, behaviour, off_policy, rollout
        from retentionrl.simulators.learned.ensemble import SimulatorEnsemble
        from retentionrl.simulators.learned.simulator import LearnedSimulator
        from retentionrl.simulators.rollout import evaluate_policy

        simulator = _load_simulator(config, sim.folder)
        card, space, h = simulator.card, simulator.action_space, config.horizon_days
        train, heldout, clone = _dataset(dataset.folder, simulator)
        notes: list[str] = []
        policies: dict[str, Policy] = {name: load_policy(run.folder) for name, run in agents.items()}
        one_step_labels: dict[str, str] = {}
        if one_step is not None and (one_step.folder / ONE_STEP_SKIPPED).is_file():
            notes.append(f"one-step agents skipped: {_read(one_step.folder / ONE_STEP_SKIPPED)['reason']}")
        elif one_step is not None:
            from retentionrl.agents.one_step import load_one_step

            fitted = load_one_step(one_step.folder)
            steps = {name: fitted.with_reward(r) for name, r in one_step_rewards(config).items()}
            policies |= steps
            one_step_labels = {name: step.reward.label for name, step in steps.items()}
        kinds = dict.fromkeys(policies, "agent")
        baseline: str
        for baseline in config.evaluation.baselines:
            kinds[baseline] = "baseline"
            try:
                policies[baseline] = (
                    clone
                    if baseline == "logging-clone" and clone is not None
                    else make_named_policy(baseline, space, decisions=train, seed=config.seed)
                )
            except (ImportError, ValueError) as exc:  # logs without actions; uplift: its extra, no coupon variation
                notes.append(f"baseline {baseline!r} skipped: {exc}")
        world = None
        if config.has_world:
            from retentionrl.simulators.policy_registry import make_policy
            from retentionrl.simulators.world.config import WorldConfig
            from retentionrl.simulators.world.heuristics import HEURISTICS
            from retentionrl.simulators.world.simulator import GroundTruthWorld

            world_config = dataclasses.replace(WorldConfig(), horizon_days=h)
            world = GroundTruthWorld(world_config)
            if world.action_space.n_actions != space.n_actions:
                notes.append("the world's action space differs from the logs' action map: no true values")
                world = None
            elif config.evaluation.heuristics:
                for name in HEURISTICS:
                    policies[name], kinds[name] = make_policy(name, world_config), "heuristic"
        members = simulator.members if isinstance(simulator, SimulatorEnsemble) else []
        n_users, seed = config.evaluation.users, config.seed + 1
        rows: dict[str, dict] = {}
        for name, policy in policies.items():
            echo(f"  evaluating {name}")
            rows[name] = {
                "kind": kinds[name],
                "simulator": rollout(simulator, policy, name, n_users, seed),
                "world": rollout(world, policy, name, n_users, seed) if world is not None else None,
                # candidates: their value in each member, for the selection
                "members": [evaluate_policy(m, policy, n_users, seed).metrics() for m in members]
                if kinds[name] != "heuristic"
                else [],
                "behaviour": behaviour(policy, heldout.obs, h, [str(a) for a in card.arms]),
            }
        ope, propensity_note = {}, None
        if heldout.logged.sum() >= 2:
            propensity = logged_propensities(heldout)
            if propensity is not None:
                propensity_note = (
                    "The logs hold no propensities: they were estimated by a clone of the logging "
                    "policy (multinomial logistic regression on the held-out logs). Every "
                    "importance-weighted estimate inherits its errors."
                )
            model = (
                SimulatorModel(
                    [m for m in members or [simulator] if isinstance(m, LearnedSimulator)],
                    [name for name in policies if kinds[name] != "heuristic"],
                    h,
                    config.evaluation.model_rollouts,
                )
                if config.evaluation.model_rollouts > 0
                else None
            )
            ope = off_policy(
                heldout,
                propensity,
                policies,
                config.evaluation.bootstrap,
                config.seed,
                config.evaluation.sequential,
                model,
            )
        else:
            notes.append(
                "no off-policy estimates: the held-out logs hold no logged actions (impressions), so no "
                "logged decision can be reweighted"
            )
        results = {name: PolicyResult(**row, ope=ope.get(name)) for name, row in rows.items()}
        candidates = [name for name in results if kinds[name] != "heuristic"]
        recommendation = recommend(
            {name: results[name].simulator.values for name in candidates},
            [name for name in candidates if kinds[name] == "agent"],
            config.reward,
            {name: results[name].members for name in candidates} if members else None,
        )
        certificate, no_certificate, certified = run_certificates(
            config, heldout, {name: policies[name] for name in candidates}, recommendation.policy, train
        )
        EvaluateResults(
            recommendation=recommendation,
            certificate=certificate,
            no_certificate=no_certificate,
            horizon_days=h,
            n_eval_users=n_users,
            has_world=world is not None,
            policies=results,
            rewards={name: reward.label for name, (_, reward) in agent_specs(config).items()} | one_step_labels,
            frontier=frontier_summary(results),
            propensity_note=propensity_note,
            notes=notes,
            arms=[str(a) for a in card.arms],
            coupon_levels=[float(c) for c in space.coupon_levels],
            heldout_states=int(heldout.n),
            candidate_certificates=certified,
        ).save(folder / "results.json")

    cfg = {
        "evaluation": config.evaluation.model_dump(),
        "seed": config.seed,
        "horizon_days": config.horizon_days,
        "has_world": config.has_world,
        "device": config.device,
    }
    inputs = {"simulator": sim.folder, "dataset": dataset.folder, **{f"agent_{a}": r.folder for a, r in agents.items()}}
    if one_step is not None:
        inputs[ONE_STEP_STAGE] = one_step.folder
    return run_stage(config.out, "evaluate", cfg, inputs, compute, code=STAGE_CODE["evaluate"], echo=echo)


def run_certificates(
    config: PipelineConfig, heldout, policies: dict, recommended: str, train=None
) -> tuple[Certificate | None, str | None, dict[str, Certificate]]:
    """The run's certificates against the logging policy on the held-out logs
    (:mod:`retentionrl.evaluation.certify`): the recommended policy's, in the run's metric
    (profit for the profit reward, else return visits), or ``None`` and why the logs cannot
    give one; and per metric (return visits and profit) the certificate of the best of
    ``policies`` (the run's agents and baselines, the recommended one among them), chosen with
    its mix and clip and certified once (:func:`~retentionrl.evaluation.certify.certify_best`).
    Mixes and clips are chosen on the ``train`` decisions where they hold propensities (then
    every held-out lifetime certifies), else on a half of the held-out ones. The logged steps
    and each policy's probabilities of their actions are computed once for all of them."""
    from retentionrl.evaluation.certify import METRICS, certify_best

    steps = _certifiable_steps(heldout)
    if steps is None:
        return (
            None,
            (
                "the held-out logs hold no logged propensities: a certificate needs the probabilities the "
                "logging policy actually used"
            ),
            {},
        )
    if np.unique(steps.trajectory_id).size < 4:
        return None, "fewer than 4 held-out lifetimes", {}
    taken = {name: policy.taken_probs(steps.obs, steps.action) for name, policy in policies.items()}
    train_steps = _certifiable_steps(train) if train is not None else None
    validation = None
    if train_steps is not None and np.unique(train_steps.trajectory_id).size >= 4:
        validation = (
            train_steps,
            {name: policy.taken_probs(train_steps.obs, train_steps.action) for name, policy in policies.items()},
        )

    def best(names: list[str], metric: str) -> Certificate:
        return certify_best(
            steps,
            {name: taken[name] for name in names},
            metric=metric,
            method=config.evaluation.certify_method,
            seed=config.seed,
            validation=None if validation is None else (validation[0], {name: validation[1][name] for name in names}),
        )

    metric = "profit" if config.reward_mode == "profit" else "return_visits"
    return best([recommended], metric), None, {m: best(list(policies), m) for m in METRICS}


def _certifiable_steps(decisions):
    """The logged steps of ``decisions``, or None where some logged visit lacks its propensity."""
    from retentionrl.evaluation.world_steps import steps_from_decisions

    logged = decisions.logged & decisions.in_window
    if not logged.any() or np.isnan(decisions.propensity[logged]).any():
        return None
    return steps_from_decisions(decisions)


def frontier_summary(results: dict[str, PolicyResult]) -> dict[str, FrontierPlace]:
    """Per place (simulator, world): the frontier and, for each baseline and heuristic, the
    agents that dominate it (:mod:`retentionrl.evaluation.frontier`)."""
    from retentionrl.evaluation.frontier import Point, dominated_by, frontier

    summary = {}
    for place in ("simulator", "world"):
        values = {name: getattr(row, place) for name, row in results.items()}
        points = [Point.of(name, v.values) for name, v in values.items() if v is not None]
        if points:
            agents = [p for p in points if results[p.name].kind == "agent"]
            summary[place] = FrontierPlace(
                frontier(points), dominated_by(agents, [p for p in points if results[p.name].kind != "agent"])
            )
    return summary


def stage_report(
    config: PipelineConfig, split: StageRun, fidelity: StageRun, evaluate: StageRun, echo: Echo
) -> StageRun:
    """The HTML report with its PNGs."""

    def compute(folder: Path) -> None:
        from retentionrl.report.main import write_report

        write_report(
            folder,
            _read(split.folder / "summary.json"),
            FidelityResults.load(fidelity.folder / "fidelity.json"),
            EvaluateResults.load(evaluate.folder / "results.json"),
            run_summary(config),
        )

    inputs = {
        "split": split.folder / "summary.json",
        "fidelity": fidelity.folder / "fidelity.json",
        "evaluate": evaluate.folder / "results.json",
    }
    return run_stage(
        config.out, "report", {"run": run_summary(config)}, inputs, compute, code=STAGE_CODE["report"], echo=echo
    )


def run_summary(config: PipelineConfig) -> dict:
    """The run's config as shown in the report (the log's folder left out)."""
    data = json.loads(config.model_dump_json())
    data["out"] = Path(str(data["out"])).name
    if data["logs"] is not None:
        data["logs"] = Path(str(data["logs"])).name
    return data


# ----------------------------------------------------------------------------- the whole run


def run_pipeline(config: PipelineConfig, echo: Echo = print) -> dict[str, object]:
    """Run (or reuse) every stage; returns the report path, the TensorBoard folder and the stages."""
    config.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config.out / "config.json", config.model_dump_json(indent=2))
    logs, fmt, logs_run = stage_logs(config, echo)
    split = stage_split(config, logs, fmt, echo)
    config = resolve_revenue_scale(config, split)
    sim = stage_simulator(config, split.folder / "train.parquet", echo)
    dataset = stage_dataset(config, split, sim, echo)
    fidelity = stage_fidelity(config, split, sim, dataset, echo)
    agents = {
        name: stage_agent(config, name, algo, reward, sim, echo) for name, (algo, reward) in agent_specs(config).items()
    }
    one_step = stage_one_step(config, sim, dataset, echo)
    evaluate = stage_evaluate(config, dataset, sim, agents, echo, one_step)
    report = stage_report(config, split, fidelity, evaluate, echo)
    stages = [
        *([logs_run] if logs_run else []),
        split,
        sim,
        dataset,
        fidelity,
        *agents.values(),
        *([one_step] if one_step else []),
        evaluate,
        report,
    ]
    return {"report": report.folder / "index.html", "tensorboard": config.out, "stages": stages}
