"""One trial of a sweep: train an agent with a trial's settings, score it on validation shoppers.

A trial is a plain function of its settings (:func:`run_trial`), so the same trial runs
through Ray Tune (:mod:`retentionrl.tune.sweep`) or in a loop, and both give the same
numbers. Given the sweep's shared stages (:class:`TrialSpec`) and the trial's ``params``:

1. **simulator**: the sweep's simulator, fitted once on the *fit* shoppers, unless the
   trial's fit settings (``simulator.*`` keys) differ from the run's; then the trial fits
   its own on the same shoppers, into ``simulator/`` of its folder;
2. **agent**: ``algo`` trained in it with the trial's :class:`~retentionrl.agents.config.TrainConfig`
   (``agent/``, with its TensorBoard logs); an agent interrupted after a checkpoint resumes
   from it when the trial is started again;
3. **score**: the agent's value per shopper, in the sweep's metric, in the *validation
   simulator*, fitted on shoppers that no trial's simulator saw; with an ensemble there, the
   smallest value over its members (what every model of those shoppers agrees it reaches,
   :mod:`retentionrl.evaluation.selection`). Every trial is scored on the same fresh shoppers
   (the same seed), so differences between trials are not rollout noise;
4. **truth**, for the record only, when the logs came from the ground-truth world: the
   agent's true values on the same number of fresh world shoppers. It never enters the score.

The trial writes ``trial.json`` last (atomically); a trial whose ``trial.json`` exists for
the same params is not run again; ``starts.txt`` counts how often the trial was started.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retentionrl.core.atomic import atomic_write_text
from retentionrl.core.interval import Interval
from retentionrl.core.policy import Policy
from retentionrl.core.records import read_record, write_record
from retentionrl.envs.reward import RewardConfig
from retentionrl.evaluation.selection import score
from retentionrl.tune.config import SweepConfig, trial_config

TRIAL_FILE = "trial.json"
PARAMS_FILE = "params.json"
STARTS_FILE = "starts.txt"
TRIAL_SCHEMA, TRIAL_VERSION = "retentionrl-tune-trial", 1


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of a sweep shares.

    :param sweep: the sweep's config.
    :param simulator: folder of the simulator fitted on the fit shoppers with the run's settings.
    :param fit_logs: the fit shoppers' events (a trial with its own fit settings fits on them).
    :param action_logs: the events whose arms and coupon ladder every simulator of the sweep uses.
    :param validation: folder of the simulator fitted on the validation shoppers (the score).
    """

    sweep: SweepConfig
    simulator: Path
    fit_logs: Path
    action_logs: Path
    validation: Path


@dataclass(frozen=True)
class TrialResult:
    """A finished trial.

    :param trial: its name (its folder's).
    :param params: the space's keys and the values this trial took.
    :param algo: the algorithm it trained.
    :param score: its value in the validation simulator (module docstring), in ``metric``.
    :param member_scores: that value in each member of the validation ensemble.
    :param validation: its values per shopper in the validation member that scores it lowest.
    :param truth: its true values per shopper in the world (world logs only; never scored).
    :param true_score: its true value in ``metric`` (world logs only; never scored).
    :param own_simulator: it fitted its own simulator (its fit settings differ from the run's).
    :param seconds: wall time of the attempt that finished it.
    """

    trial: str
    params: dict[str, Any]
    algo: str
    metric: str
    score: float
    member_scores: list[float]
    validation: dict[str, Interval]
    truth: dict[str, Interval] | None
    true_score: float | None
    own_simulator: bool
    seconds: float

    def save(self, path: Path) -> None:
        write_record(path, self, TRIAL_SCHEMA, TRIAL_VERSION)

    @classmethod
    def load(cls, path: Path) -> TrialResult:
        return read_record(path, cls, TRIAL_SCHEMA, TRIAL_VERSION)

    def metrics(self) -> dict[str, float]:
        """Flat numbers for Ray Tune and TensorBoard: ``score``, ``validation/<metric>``, ``truth/<metric>``."""
        out = {"score": self.score}
        out |= {f"validation/{k}": v.estimate for k, v in self.validation.items()}
        out |= {f"truth/{k}": v.estimate for k, v in (self.truth or {}).items()}
        if self.true_score is not None:
            out["truth/score"] = self.true_score
        return out


def finished(folder: Path, params: Mapping[str, Any]) -> TrialResult | None:
    """The result in ``folder`` if the trial finished there with the same ``params``."""
    path = folder / TRIAL_FILE
    if not path.is_file():
        return None
    result = TrialResult.load(path)
    return result if result.params == dict(params) else None


def run_trial(spec: TrialSpec, params: Mapping[str, Any], folder: Path) -> TrialResult:
    """Run (or reuse) the trial with ``params`` in ``folder`` (module docstring)."""
    params = dict(params)
    folder.mkdir(parents=True, exist_ok=True)
    _count_start(folder, params)
    done = finished(folder, params)
    if done is not None:
        return done
    from retentionrl.agents.training import load_policy

    started = time.perf_counter()
    config, algo = trial_config(spec.sweep, params)
    simulator, own = _simulator(spec, config, folder)
    policy = load_policy(_train(config, algo, simulator, folder / "agent"))
    reward = spec.sweep.tune.scoring_reward(spec.sweep)
    member_scores, validation = _score(spec, policy, reward)
    truth = _truth(spec.sweep, policy) if config.has_world else None
    result = TrialResult(
        trial=folder.name,
        params=params,
        algo=algo,
        metric=spec.sweep.tune.metric,
        score=min(member_scores),
        member_scores=member_scores,
        validation=validation,
        truth=truth,
        true_score=score(truth, reward) if truth is not None else None,
        own_simulator=own,
        seconds=round(time.perf_counter() - started, 2),
    )
    _hparams(folder, result)
    result.save(folder / TRIAL_FILE)
    return result


def _count_start(folder: Path, params: dict[str, Any]) -> None:
    """Record the trial's params and one more start; a folder left by other params is emptied."""
    path = folder / PARAMS_FILE
    if path.is_file() and json.loads(path.read_text()) != json.loads(json.dumps(params)):
        shutil.rmtree(folder)
        folder.mkdir(parents=True)
    atomic_write_text(path, json.dumps(params, indent=2))
    atomic_write_text(folder / STARTS_FILE, str(starts(folder) + 1))


def starts(folder: Path) -> int:
    """How many times the trial in ``folder`` was started (a finished trial started again
    returns its result at once, but counts)."""
    path = folder / STARTS_FILE
    return int(path.read_text()) if path.is_file() else 0


def _simulator(spec: TrialSpec, config, folder: Path) -> tuple[Path, bool]:
    """The simulator folder the trial trains in, and whether the trial fitted it itself."""
    from retentionrl.pipeline.run import fit_simulators, simulator_key

    base = spec.sweep.run_config()
    # the trial's seed seeds its agent and rollouts; its simulators keep the run's seed
    fit_run = config.model_copy(update={"seed": base.seed})
    if simulator_key(fit_run) == simulator_key(base):
        return spec.simulator, False
    own = folder / "simulator"
    marker = own / "fit.json"
    key = json.dumps(simulator_key(fit_run), sort_keys=True, default=str)
    if not (marker.is_file() and marker.read_text() == key):
        if own.exists():
            shutil.rmtree(own)
        fit_simulators(fit_run, spec.fit_logs, own, lambda _: None, progress=False, action_logs=spec.action_logs)
        atomic_write_text(marker, key)
    return own, True


def _train(config, algo: str, simulator: Path, out: Path) -> Path:
    """Train (or resume from its last checkpoint) the trial's agent; returns its folder."""
    from retentionrl.agents.checkpoint import latest_checkpoint
    from retentionrl.agents.training import train
    from retentionrl.pipeline.run import train_config

    tc = train_config(config, algo, simulator, config.reward)
    resume = latest_checkpoint(out) is not None
    if out.exists() and not resume:
        shutil.rmtree(out)
    train(tc, out, resume=resume, progress=False)
    return out


def _score(spec: TrialSpec, policy: Policy, reward: RewardConfig) -> tuple[list[float], dict[str, Interval]]:
    """The agent's score in each validation member, and its values in the lowest-scoring one."""
    from retentionrl.simulators.learned.ensemble import load_members
    from retentionrl.simulators.rollout import evaluate_policy

    sweep = spec.sweep
    values = [
        evaluate_policy(m, policy, sweep.evaluation.users, sweep.seed + 1).metrics()
        for m in load_members(spec.validation, device=sweep.device)
    ]
    scores = [score(v, reward) for v in values]
    return scores, values[scores.index(min(scores))]


def _truth(sweep: SweepConfig, policy: Policy) -> dict[str, Interval] | None:
    """The agent's true values per shopper on fresh world shoppers, the same for every trial
    (for the record only); None where the logs' action map is not the world's (logs too
    small to show every group), so the agent cannot act in the world."""
    from retentionrl.simulators.rollout import evaluate_policy
    from retentionrl.simulators.world.config import WorldConfig
    from retentionrl.simulators.world.simulator import GroundTruthWorld

    world = GroundTruthWorld(dataclasses.replace(WorldConfig(), horizon_days=sweep.horizon_days))
    if policy.action_space != world.action_space:
        return None
    return evaluate_policy(world, policy, sweep.evaluation.users, sweep.seed + 1).metrics()


def _hparams(folder: Path, result: TrialResult) -> None:
    """The trial's params and metrics in TensorBoard's HParams view (``tensorboard --logdir OUT/trials``)."""
    from torch.utils.tensorboard import SummaryWriter

    params = {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in result.params.items()}
    with SummaryWriter(str(folder / "tensorboard")) as writer:
        writer.add_hparams({"algo": result.algo, **params}, result.metrics(), run_name=".")
