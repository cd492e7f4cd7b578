"""The configuration of one end-to-end pipeline run, read from YAML into pydantic models.

Every model forbids unknown keys, so a mistyped key stops the run with one line naming it
(``error: run.yaml: unknown key 'agents.total_stpes' ...``). A config with no ``logs``
runs on the embedded default, the ground-truth world::

    out: runs/pipeline          # every stage writes a folder below this one
    seed: 0                     # seeds the world, the split, the fit, the agents, the rollouts
    device: auto                # auto (CUDA when present), cpu or cuda
    horizon_days: 90            # H: no return within H days is churn
    reward_mode: retention      # retention, profit or mixed (retentionrl.envs.reward)
    retention_weight: 0.5       # w of the mixed reward
    revenue_scale: 50           # S of the profit terms: an amount, or logs (train logs' profit per visit / return share)
    world: {users: 20000, days: 180}
    split: {heldout_fraction: 0.2}
    simulator: {epochs: 30, patience: 4, lr_decay: 0.3, ensemble: 3}
    agents: {algos: [ppo, dqn], total_steps: 200000, num_envs: 256, frontier: [0, 0.25, 0.5, 0.75, 1]}
    evaluation: {users: 5000, bootstrap: 200, sequential: true, certify_method: bernstein}

The ``simulator`` and ``agents`` sections also take any other field of the fit's and the
agents' configs by its name (``simulator: {hidden_size: 128}``, ``agents: {ppo_ent_coef:
0.02}``; ``retentionrl simulator fit --fields`` and ``retentionrl train --fields`` list them):
each component's settings are defined once, in its dataclass, which checks them.

On one's own logs, ``logs: path/to/events.parquet`` and ``format: events`` (or a dataset
adapter such as ``online-retail``) replace ``world``; there is then no truth to check
against. Relative paths are read from the current directory. ``logs: dataset:NAME`` (e.g.
``dataset:online-retail``) is the copy of a public dataset that ``retentionrl data fetch NAME``
put in the data cache (:func:`retentionrl.interactions.datasets.dataset_path`).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from retentionrl.agents.config import TrainConfig
from retentionrl.core.overrides import with_overrides
from retentionrl.envs.reward import RewardConfig, check_reward_mode
from retentionrl.interactions.datasets import DATASET_PREFIX, DatasetError, resolve_location
from retentionrl.interactions.visits import VisitMode
from retentionrl.simulators.learned.config import FitConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorldSection(_Strict):
    """The embedded default: logs written by the ground-truth world."""

    users: int = Field(20_000, ge=20, description="shoppers in the world's logs")
    days: int = Field(180, ge=7, description="days the logs cover")
    logging_policy: str = Field(
        "softmax", description="the world's logging policy (retentionrl.simulators.policy_registry)"
    )


class SplitSection(_Strict):
    """Shoppers held out from the fit: fidelity and off-policy evaluation run on them."""

    heldout_fraction: float = Field(0.2, gt=0.0, lt=1.0)


class _ConfigSection(_Strict):
    """A section that configures a dataclass of the library (``config_class``): the keys
    declared on the section (its own keys, and fields with the run's own default or
    description) and **any other field of** ``config_class`` by its name, converted and
    checked by the dataclass (:mod:`retentionrl.core.overrides`). The fields in
    ``run_fields`` come from elsewhere in the run; a section that names one is refused."""

    model_config = ConfigDict(extra="allow", frozen=True)
    config_class: ClassVar[type]
    run_fields: ClassVar[dict[str, str]]
    own_keys: ClassVar[frozenset[str]]
    """Keys of the section that are not fields of ``config_class``."""

    def config_fields(self) -> dict[str, Any]:
        """The ``config_class`` fields this section sets, converted to their types, by name."""
        given = self.model_dump(exclude=set(self.own_keys))
        known = {f.name for f in dataclasses.fields(self.config_class)}
        unknown = [name for name in given if name not in known]
        if unknown:
            keys = sorted(set(type(self).model_fields) | (known - set(self.run_fields)))
            raise ValueError(f"unknown key {unknown[0]!r} (known keys here: {', '.join(keys)})")
        converted = with_overrides(self.config_class(), given, source=self.config_class.__name__, fixed=self.run_fields)
        return {name: getattr(converted, name) for name in given}

    @model_validator(mode="after")
    def _checked_by_config_class(self) -> _ConfigSection:
        self.config_fields()
        return self


class SimulatorSection(_ConfigSection):
    """The learned simulator's fit: any field of
    :class:`~retentionrl.simulators.learned.config.FitConfig` (``epochs``, ``patience``,
    ``hidden_size``, ...; ``retentionrl simulator fit --fields`` lists them) with FitConfig's
    defaults and checks, and the ensemble size."""

    config_class = FitConfig
    run_fields = {
        "seed": "the top-level key seed (member k of an ensemble: seed + k)",
        "device": "the top-level key device",
        "horizon_days": "the top-level key horizon_days",
        "bootstrap": "simulator.ensemble (members of an ensemble > 1 train on bootstrap resamples)",
    }
    own_keys = frozenset({"ensemble"})

    visit_mode: VisitMode = Field(
        "auto",
        description="what a visit is (retentionrl.interactions.visits); auto on online-retail "
        "logs means purchase days, since one shopper's invoices can share a timestamp",
    )
    ensemble: int = Field(
        3,
        ge=1,
        le=16,
        description="simulators fitted with seeds seed, seed + 1, ..., each on a "
        "bootstrap resample of the train shoppers: agents train on all "
        "of them (each shopper in one) and the recommendation is "
        "chosen by its value in the least favourable one",
    )


class AgentsSection(_ConfigSection):
    """PPO and DQN trained in the learned simulator: any field of
    :class:`~retentionrl.agents.config.TrainConfig` (``total_steps``, ``learning_rate``,
    ``ppo_ent_coef``, ...; ``retentionrl train --fields`` lists them) with TrainConfig's
    defaults (but for ``num_envs``) and checks, which algorithms, and the frontier's reward weights."""

    config_class = TrainConfig
    run_fields = {
        "algo": "agents.algos",
        "simulator": "the run (its fitted simulator)",
        "seed": "the top-level key seed",
        "device": "the top-level key device",
        "reward_mode": "the top-level key reward_mode",
        "retention_weight": "the top-level key retention_weight",
        "revenue_scale": "the top-level key revenue_scale",
        "warm_start": "experiments/agent_ablation.py (it fits the teacher on logs)",
    }
    own_keys = frozenset({"algos", "frontier", "one_step_users"})

    algos: tuple[Literal["ppo", "dqn"], ...] = ("ppo", "dqn")
    num_envs: int = 256  # more shoppers per step than `retentionrl train` (64): the pipeline's agents train longer
    frontier: tuple[float, ...] = Field(
        (0.0, 0.25, 0.5, 0.75, 1.0),
        description="retention weights w of the frontier agents (the first of `algos`, each trained on the reward "
        "w x retention + (1 - w) x profit / S, S the top-level revenue_scale: 0 is the profit reward, 1 the "
        "retention reward); the "
        "run's own reward is not trained twice; [] for none",
    )
    one_step_users: int = Field(
        200_000,
        ge=0,
        description="fresh shoppers per simulator member rolled out to fit the one-step agents "
        "(retentionrl.agents.one_step: one pessimistic step of improvement over popularity, deployed at the run's "
        "reward and every frontier weight from one fit); 0: none",
    )

    @field_validator("frontier")
    @classmethod
    def _weights(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        bad = [w for w in value if not 0.0 <= w <= 1.0]
        if bad:
            raise ValueError(f"frontier weights must lie in [0, 1], got {bad}")
        if len(set(value)) != len(value):
            raise ValueError(f"frontier weights must differ, got {list(value)}")
        return value


class EvaluationSection(_Strict):
    """Rollouts (world, learned simulator) and off-policy evaluation on held-out logs."""

    users: int = Field(5_000, ge=2, description="fresh shoppers per rollout")
    bootstrap: int = Field(200, ge=2, description="bootstrap resamples over shoppers")
    sequential: bool = Field(True, description="also run the trajectory estimators (return visits)")
    model_rollouts: int = Field(
        4,
        ge=0,
        description="simulated continuations per held-out visit for the model-based trajectory estimates "
        "of agents and baselines (retentionrl.evaluation.model_based; with sequential); 0: none",
    )
    baselines: tuple[Literal["random", "popularity", "myopic-greedy", "logging-clone", "uplift"], ...] = Field(
        ("random", "popularity", "myopic-greedy", "logging-clone", "uplift"),
        description="baselines fit on the train logs; uplift needs the optional extra (pip install "
        "'retentionrl[uplift]') and is skipped with a note in the report without it",
    )
    heuristics: bool = Field(
        True,
        description="also roll out the world's heuristics (retentionrl.simulators.world.heuristics; world "
        "runs only): they use the world's group rates, so they are compared "
        "with, never recommended",
    )
    certify_method: Literal["bernstein", "bootstrap"] = Field(
        "bernstein",
        description="the certificates' lower bound (retentionrl.evaluation.certify): bernstein, a finite-sample "
        "guarantee; bootstrap, approximate and tighter",
    )


class PipelineConfig(_Strict):
    """One pipeline run (see the module docstring)."""

    out: Path = Path("runs/pipeline")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    horizon_days: int = Field(90, ge=1)
    reward_mode: Literal["retention", "profit", "mixed"] = "retention"
    retention_weight: float = Field(0.5, ge=0.0, le=1.0, description="w of the mixed reward (retentionrl.envs.reward)")
    revenue_scale: float | Literal["logs"] = Field(
        50.0,
        description="S, currency per reward unit of the profit and mixed rewards (retentionrl.envs.reward; 50: a "
        "typical basket); logs: the train logs' profit per visit over their share of visits followed by a return "
        "within H (retentionrl.envs.reward.logged_revenue_scale), so that w = 0.5 weighs retention and profit as "
        "the logs trade them",
    )
    logs: Path | None = Field(
        None,
        description="a log file, or dataset:NAME for a fetched public dataset (retentionrl data fetch NAME); "
        "absent: the ground-truth world writes the logs",
    )
    format: str = Field("auto", description="format of `logs`: auto, events, online-retail, complete-journey")
    world: WorldSection = WorldSection()
    split: SplitSection = SplitSection()
    simulator: SimulatorSection = SimulatorSection()
    agents: AgentsSection = AgentsSection()
    evaluation: EvaluationSection = EvaluationSection()

    @field_validator("logs", mode="before")
    @classmethod
    def _dataset_location(cls, value: object) -> object:
        """``dataset:NAME`` becomes the cached copy of that dataset; not cached: the error says how to fetch it."""
        if isinstance(value, str) and value.startswith(DATASET_PREFIX):
            try:
                return resolve_location(value)
            except DatasetError as exc:
                raise PydanticCustomError("dataset_not_fetched", str(exc)) from None
        return value

    @field_validator("revenue_scale", mode="before")
    @classmethod
    def _revenue_scale(cls, value: object) -> object:
        """``logs`` or an amount > 0 (one message for both, rather than one per type)."""
        if value == "logs":
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise PydanticCustomError(
                "revenue_scale",
                "must be 'logs' or an amount > 0 (currency per reward unit)",
                {"value": value},
            )
        return float(value)

    @field_validator("reward_mode", mode="before")
    @classmethod
    def _renamed_reward_mode(cls, value: object) -> object:
        """The world-v1 mode ``net_revenue`` is refused with its new name (``profit``)."""
        return check_reward_mode(value) if value == "net_revenue" else value

    @property
    def visit_mode(self) -> VisitMode:
        """The visit mode the stages use (see ``SimulatorSection.visit_mode``)."""
        if self.simulator.visit_mode == "auto" and self.logs is not None and self.format == "online-retail":
            return "day"
        return self.simulator.visit_mode

    @property
    def reward(self) -> RewardConfig:
        """The run's reward (:class:`retentionrl.envs.reward.RewardConfig`): the agents', and the
        selection's score. ``revenue_scale: logs`` must have been resolved first
        (:func:`retentionrl.pipeline.run.resolve_revenue_scale`, from the train split)."""
        if self.revenue_scale == "logs":
            raise RuntimeError("revenue_scale 'logs' is read from the train split: resolve it before the reward")
        return RewardConfig(
            mode=self.reward_mode, revenue_scale=float(self.revenue_scale), retention_weight=self.retention_weight
        )

    @property
    def has_world(self) -> bool:
        """The logs come from the ground-truth world, so true values exist."""
        return self.logs is None


def quickstart_config(out: str | Path, quick: bool) -> PipelineConfig:
    """The embedded default run; ``quick``: small logs and budgets (a few minutes on 2 cores).

    Its profit scale is the train logs' (``revenue_scale: logs``), so that the frontier's weights
    trade a return against profit as the logs do (w = 0.5: equally); a run's config keeps
    the fixed default of 50 unless it says otherwise, since a shop's logs may hold no profit
    to scale by."""
    if not quick:
        return PipelineConfig(out=Path(out), revenue_scale="logs")
    return PipelineConfig(
        out=Path(out),
        revenue_scale="logs",
        world=WorldSection(users=3_000, days=150),
        simulator=SimulatorSection(epochs=4, patience=2, ensemble=1),
        agents=AgentsSection(
            total_steps=30_000, num_envs=64, dqn_learning_starts=1_000, checkpoint_every=10_000, one_step_users=30_000
        ),
        evaluation=EvaluationSection(users=1_000, bootstrap=50),
    )


C = TypeVar("C", bound="PipelineConfig")


def _location(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _message(source: str, error: ValidationError, model: type[BaseModel]) -> str:
    """One line for the first problem of a validation error of ``model``, naming the key."""
    first = error.errors()[0]
    key = _location(first["loc"])
    if first["type"] == "extra_forbidden":
        parent: Any = model
        for part in first["loc"][:-1]:
            parent = parent.model_fields[str(part)].annotation
        known = ", ".join(getattr(parent, "model_fields", {}))
        return f"{source}: unknown key {key!r} (known keys here: {known})"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    if isinstance(first.get("input"), dict):  # a check of the whole section: its message names the value
        text = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # a check across sections names its keys itself
            return f"{source}: {text}"
        unknown = re.match(r"unknown key '([^']+)'(.*)", text)
        if unknown:  # a key of a config section that is not a field of its dataclass
            return f"{source}: unknown key '{key}.{unknown[1]}'{unknown[2]}"
        return f"{source}: key {key!r}: {text}{more}"
    return f"{source}: key {key!r}: {first['msg']} (got {first.get('input')!r}){more}"


def parse_config(data: object, source: str = "config", model: type[C] = PipelineConfig) -> C:  # type: ignore[assignment]
    """Validate a dict (from YAML) into a ``model`` (a :class:`PipelineConfig` by default, or
    one that extends it); ``ValueError`` names the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")  # noqa: TRY004 (the CLI prints ValueError as one line)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_message(source, exc, model)) from None


def load_config(path: str | Path, model: type[C] = PipelineConfig) -> C:  # type: ignore[assignment]
    """Read a YAML config with ``yaml.safe_load`` and validate it into ``model``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_config(data, str(path), model)
