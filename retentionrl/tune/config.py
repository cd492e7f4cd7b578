"""The configuration of a sweep (``retentionrl tune``): a run's config plus a ``tune`` section.

Everything of a run's YAML (:mod:`retentionrl.pipeline.config`) keeps its meaning and
defaults: the logs (or the world's), ``seed``, ``horizon_days``, the reward, the base
simulator fit and agent settings, ``evaluation.users``. The ``tune`` section says what
varies between trials and how they are scored::

    world: {users: 4000, days: 150}
    simulator: {epochs: 6, ensemble: 1}
    agents: {total_steps: 40000, num_envs: 64}
    tune:
      algo: ppo                   # the algorithm each trial trains (or search `algo`)
      samples: 2                  # draws of the space; a grid is crossed with them
      metric: reward              # the score: reward (the run's), return_visits or profit
      validation_fraction: 0.25   # train shoppers set aside to score the trials
      cpus_per_trial: 1
      space:
        agents.learning_rate: {loguniform: [1.0e-4, 1.0e-3]}
        agents.ppo_ent_coef: {choice: [0.0, 0.01]}
        seed: {grid: [0, 1]}
        retention_weight: {uniform: [0.25, 1.0]}
        simulator.hidden_size: {choice: [32, 64]}

A key of ``space`` is a key of the run's config, dotted: ``agents.<field>`` (any field of
:class:`~retentionrl.agents.config.TrainConfig` the run's ``agents`` section takes),
``simulator.<field>`` (any field of :class:`~retentionrl.simulators.learned.config.FitConfig`
the ``simulator`` section takes, and ``simulator.ensemble``), ``seed`` (the trial's agent;
the simulators and the scoring rollouts keep the run's seed), ``reward_mode``, ``retention_weight``,
and ``algo``. Its value is one domain: ``grid`` (every value, in every sample), ``choice``
(one of the values, at random), ``uniform`` / ``loguniform`` ``[low, high]`` (floats) or
``randint`` ``[low, high)``. Every value a domain can take at its ends is checked against
the run's config when the sweep is read, so a mistyped key or an out-of-range value stops
the sweep with one line naming it before any trial runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from retentionrl.envs.reward import RewardConfig
from retentionrl.pipeline.config import PipelineConfig, _Strict, load_config, parse_config

ALGOS = ("ppo", "dqn")
SEARCHABLE_TOP = ("algo", "seed", "reward_mode", "retention_weight")
"""Top-level keys a space may search; with ``agents.<field>`` and ``simulator.<field>``."""
UNSEARCHABLE = {
    "agents.algos": "each trial trains one algorithm: search `algo` (or set tune.algo)",
    "agents.frontier": "a trial trains one agent on its reward: search `retention_weight` or `reward_mode`",
}
Metric = Literal["reward", "return_visits", "profit"]


class Domain(_Strict):
    """The values one key of the space takes (exactly one of the fields)."""

    grid: list[Any] | None = Field(None, min_length=1, description="every value, in every sample")
    choice: list[Any] | None = Field(None, min_length=1, description="one of the values at random")
    uniform: tuple[float, float] | None = Field(None, description="a float drawn uniformly from [low, high]")
    loguniform: tuple[float, float] | None = Field(None, description="a float whose log is uniform on [low, high]")
    randint: tuple[int, int] | None = Field(None, description="an integer drawn uniformly from [low, high)")

    @model_validator(mode="after")
    def _one_kind(self) -> Domain:
        given = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(type(self).model_fields)} (got {given or 'none'})")
        low_high = self.uniform or self.loguniform or self.randint
        if low_high is not None and not low_high[0] < low_high[1]:
            raise ValueError(f"{given[0]} needs low < high, got {list(low_high)}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError(f"loguniform needs low > 0, got {list(self.loguniform)}")
        return self

    @property
    def kind(self) -> str:
        """Which of the fields is given."""
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)

    def extremes(self) -> list[Any]:
        """The values to check the run's config with: every listed value, or the ends of a range."""
        if self.grid is not None or self.choice is not None:
            return list(self.grid or self.choice or [])
        if self.randint is not None:
            return [self.randint[0], self.randint[1] - 1]
        low, high = self.uniform or self.loguniform or (math.nan, math.nan)
        return [low, high]

    def to_ray(self) -> Any:
        """The Ray Tune search-space object (``tune.grid_search``, ``tune.choice``, ...)."""
        from ray import tune

        if self.grid is not None:
            return tune.grid_search(self.grid)
        if self.choice is not None:
            return tune.choice(self.choice)
        if self.uniform is not None:
            return tune.uniform(*self.uniform)
        if self.loguniform is not None:
            return tune.loguniform(*self.loguniform)
        assert self.randint is not None
        return tune.randint(*self.randint)


class TuneSection(_Strict):
    """What a sweep searches and how its trials are scored (module docstring)."""

    algo: Literal["ppo", "dqn"] = Field(
        "ppo", description="the algorithm each trial trains (unless `algo` is searched)"
    )
    samples: int = Field(
        1, ge=1, description="draws of the space (Ray Tune's num_samples); a grid is crossed with them"
    )
    metric: Metric = Field(
        "reward",
        description="the score, per shopper over the horizon in the validation simulator: reward (the run's "
        "reward_mode and retention_weight, whatever a trial trains on), return_visits or profit",
    )
    validation_fraction: float = Field(
        0.25,
        gt=0.0,
        lt=1.0,
        description="share of the train shoppers set aside: a simulator fitted on them alone scores every trial",
    )
    cpus_per_trial: float = Field(1.0, gt=0.0, description="CPUs Ray gives each trial (trials run side by side)")
    gpus_per_trial: float = Field(0.0, ge=0.0, description="GPUs Ray gives each trial (0: trials run on CPU)")
    space: dict[str, Domain] = Field(default_factory=dict, description="key of the run's config -> its domain")

    def scoring_reward(self, run: PipelineConfig) -> RewardConfig:
        """The reward whose value per shopper is a trial's score (``metric``)."""
        if self.metric == "reward":
            return run.reward
        return RewardConfig(mode="retention" if self.metric == "return_visits" else "profit")


class SweepConfig(PipelineConfig):
    """A sweep: a run's config (:class:`~retentionrl.pipeline.config.PipelineConfig`) and ``tune``."""

    out: Path = Path("runs/tune")
    tune: TuneSection = TuneSection()

    @model_validator(mode="after")
    def _space_fits_the_run(self) -> SweepConfig:
        for key, domain in self.tune.space.items():
            if key in UNSEARCHABLE:
                raise ValueError(f"tune.space: key {key!r} cannot be searched: {UNSEARCHABLE[key]}")
            section = key.partition(".")[0]
            if key not in SEARCHABLE_TOP and (section not in ("agents", "simulator") or "." not in key):
                raise ValueError(
                    f"tune.space: key {key!r} cannot be searched (searchable: {', '.join(SEARCHABLE_TOP)}, "
                    "agents.<field>, simulator.<field>)"
                )
            for value in domain.extremes():
                trial_config(self, {key: value}, source=f"tune.space: {key} = {value!r}")
        return self

    def run_config(self) -> PipelineConfig:
        """The run's config alone (the sweep's base: its simulators, the split)."""
        return PipelineConfig.model_validate(self.model_dump(exclude={"tune"}))


def trial_config(sweep: SweepConfig, params: Mapping[str, Any], source: str = "trial") -> tuple[PipelineConfig, str]:
    """The run's config with a trial's ``params`` (space key -> value) set, and its algorithm.

    :raises ValueError: a value the run's config refuses (naming the key, as a run's YAML would).
    """
    data = sweep.model_dump(mode="json", exclude={"tune"})
    algo = str(params.get("algo", sweep.tune.algo))
    if algo not in ALGOS:
        raise ValueError(f"{source}: algo must be one of {', '.join(ALGOS)}, got {algo!r}")
    for key, value in params.items():
        if key == "algo":
            continue
        *sections, name = key.split(".")
        target = data
        for part in sections:
            target = target.setdefault(part, {})
        target[name] = value
    return parse_config(data, source), algo


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read a sweep's YAML with ``yaml.safe_load`` and validate it (one line naming a bad key)."""
    return load_config(path, SweepConfig)
