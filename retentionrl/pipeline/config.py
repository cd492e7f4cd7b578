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
    world: {users: 20000, days: 180}
    split: {heldout_fraction: 0.2}
    simulator: {epochs: 30, patience: 4, lr_decay: 0.3, ensemble: 3}
    agents: {algos: [ppo, dqn], total_steps: 200000, num_envs: 256, frontier: [0, 0.25, 0.5, 0.75, 1]}
    evaluation: {users: 5000, bootstrap: 200, sequential: true}

On one's own logs, ``logs: path/to/events.parquet`` and ``format: events`` (or a dataset
adapter such as ``online-retail``) replace ``world``; there is then no truth to check
against. Relative paths are read from the current directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from retentionrl.agents.config import TrainConfig
from retentionrl.envs.reward import RewardConfig, check_reward_mode
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


class SimulatorSection(_Strict):
    """The learned simulator's fit: the fields of
    :class:`~retentionrl.simulators.learned.config.FitConfig` a run exposes, with FitConfig's
    defaults and checks (nothing is declared twice), and the ensemble size."""

    epochs: int = FitConfig.epochs
    patience: int = FitConfig.patience
    lr_decay: float = FitConfig.lr_decay
    batch_size: int = FitConfig.batch_size
    hidden_size: int = FitConfig.hidden_size
    learning_rate: float = FitConfig.learning_rate
    valid_fraction: float = FitConfig.valid_fraction
    num_threads: int = FitConfig.num_threads
    spend_scale: float = FitConfig.spend_scale
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

    def fit_fields(self) -> dict[str, Any]:
        """The FitConfig fields of this section, by name."""
        return self.model_dump(exclude={"ensemble"})

    @model_validator(mode="after")
    def _checked_by_fit_config(self) -> SimulatorSection:
        FitConfig(**self.fit_fields())
        return self


class AgentsSection(_Strict):
    """PPO and DQN trained in the learned simulator: the fields of
    :class:`~retentionrl.agents.config.TrainConfig` a run exposes, with TrainConfig's defaults
    (but for ``num_envs``) and checks, which algorithms, and the frontier's reward weights."""

    algos: tuple[Literal["ppo", "dqn"], ...] = ("ppo", "dqn")
    total_steps: int = TrainConfig.total_steps
    num_envs: int = 256  # more shoppers per step than `retentionrl train` (64): the pipeline's agents train longer
    gamma: float = TrainConfig.gamma
    learning_rate: float = TrainConfig.learning_rate
    dqn_learning_starts: int = TrainConfig.dqn_learning_starts
    checkpoint_every: int = TrainConfig.checkpoint_every
    deploy: Literal["greedy", "stochastic"] = TrainConfig.deploy  # type: ignore[assignment]
    frontier: tuple[float, ...] = Field(
        (0.0, 0.25, 0.5, 0.75, 1.0),
        description="retention weights w of the frontier agents (the first of `algos`, each trained on the reward "
        "w x retention + (1 - w) x profit / 50: 0 is the profit reward, 1 the retention reward); the "
        "run's own reward is not trained twice; [] for none",
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

    def train_fields(self) -> dict[str, Any]:
        """The TrainConfig fields of this section, by name."""
        return self.model_dump(exclude={"algos", "frontier"})

    @model_validator(mode="after")
    def _checked_by_train_config(self) -> AgentsSection:
        TrainConfig(**self.train_fields())
        return self


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


class PipelineConfig(_Strict):
    """One pipeline run (see the module docstring)."""

    out: Path = Path("runs/pipeline")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    horizon_days: int = Field(90, ge=1)
    reward_mode: Literal["retention", "profit", "mixed"] = "retention"
    retention_weight: float = Field(0.5, ge=0.0, le=1.0, description="w of the mixed reward (retentionrl.envs.reward)")
    logs: Path | None = Field(None, description="a log file; absent: the ground-truth world writes the logs")
    format: str = Field("auto", description="format of `logs`: auto, events, online-retail, complete-journey")
    world: WorldSection = WorldSection()
    split: SplitSection = SplitSection()
    simulator: SimulatorSection = SimulatorSection()
    agents: AgentsSection = AgentsSection()
    evaluation: EvaluationSection = EvaluationSection()

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
        """The run's reward (:class:`retentionrl.envs.reward.RewardConfig`): the agents', and the selection's score."""
        return RewardConfig(mode=self.reward_mode, retention_weight=self.retention_weight)

    @property
    def has_world(self) -> bool:
        """The logs come from the ground-truth world, so true values exist."""
        return self.logs is None


def quickstart_config(out: str | Path, quick: bool) -> PipelineConfig:
    """The embedded default run; ``quick``: small logs and budgets (a few minutes on 2 cores)."""
    if not quick:
        return PipelineConfig(out=Path(out))
    return PipelineConfig(
        out=Path(out),
        world=WorldSection(users=3_000, days=150),
        simulator=SimulatorSection(epochs=4, patience=2, ensemble=1),
        agents=AgentsSection(total_steps=30_000, num_envs=64, dqn_learning_starts=1_000, checkpoint_every=10_000),
        evaluation=EvaluationSection(users=1_000, bootstrap=50),
    )


def _location(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _message(source: str, error: ValidationError) -> str:
    """One line for the first problem of a validation error, naming the key."""
    first = error.errors()[0]
    key = _location(first["loc"])
    if first["type"] == "extra_forbidden":
        parent: Any = PipelineConfig
        for part in first["loc"][:-1]:
            parent = parent.model_fields[str(part)].annotation
        known = ", ".join(getattr(parent, "model_fields", {}))
        return f"{source}: unknown key {key!r} (known keys here: {known})"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    if isinstance(first.get("input"), dict):  # a check of the whole section: its message names the value
        return f"{source}: key {key!r}: {first['msg'].removeprefix('Value error, ')}{more}"
    return f"{source}: key {key!r}: {first['msg']} (got {first.get('input')!r}){more}"


def parse_config(data: object, source: str = "config") -> PipelineConfig:
    """Validate a dict (from YAML) into a :class:`PipelineConfig`; ``ValueError`` names the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")  # noqa: TRY004 (the CLI prints ValueError as one line)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_message(source, exc)) from None


def load_config(path: str | Path) -> PipelineConfig:
    """Read a YAML config with ``yaml.safe_load`` and validate it."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_config(data, str(path))
