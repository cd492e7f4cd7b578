"""Decisions per second of the policies whose ``action_probs`` evaluation spends most on:
myopic-greedy, uplift and the one-step agents, this code against another revision's.

The evaluate stage asks every candidate for its action at each simulated visit of 5,000
shoppers in five places and in the model-based estimates' continuations (batches of up
to 32,768 states); these three policies evaluate a model over every action or a forest at
each call. In one run, on this machine, for each policy and batch size: the states per
second of this code's method (torch's default threads, as the pipeline runs) and of the same method read from ``--baseline-rev`` (``git
show``) applied to the same fitted object, ``--repeats`` alternating pairs, and their ratio:

===============  ====================================================================
myopic-greedy    ``ImmediateRewardModel.predict_all`` (fitted on world logs)
uplift           ``UpliftPolicy.net_value`` (causalml DR-learner fitted on world logs)
one-step         ``OneStepPolicy.gains`` (six Q networks of the default size, fitted
                 briefly in the world: their speed, not their accuracy, is measured)
===============  ====================================================================

Usage (from the repository root): ``python -m experiments.benchmarks.bench_policies [--baseline-rev 91aa8ff]
[--repeats 3] [--seconds 1]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from experiments.benchmarks.bench_envs import alternate, git_show, print_pairs

BATCHES = (1_000, 32_768)
"""A late visit's few live shoppers, and the model-based estimates' largest batch."""


def states_per_second(method: Callable[[np.ndarray], object], obs: np.ndarray, seconds: float) -> float:
    """Rows of ``obs`` decided per second by ``method`` over about ``seconds`` (one warm-up call)."""
    method(obs)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or calls == 0:
        method(obs)
        calls += 1
    return calls * len(obs) / elapsed


def module_at(rev: str, path: str) -> types.ModuleType:
    """The module at ``path`` as it was at ``rev`` (its imports resolved against this code)."""
    module = types.ModuleType(f"baseline_{Path(path).stem}")
    sys.modules[module.__name__] = module
    exec(compile(git_show(rev, path), f"{rev}:{path}", "exec"), module.__dict__)
    return module


def fitted_policies(directory: Path) -> dict[str, tuple[object, np.ndarray]]:
    """The three fitted objects and logged states to decide on (world logs: 3,000 shoppers x 90 days)."""
    from retentionrl.agents.baselines import ImmediateRewardModel
    from retentionrl.agents.one_step import OneStepConfig, OneStepPolicy, fit_q
    from retentionrl.agents.registry import make_named_policy
    from retentionrl.agents.uplift import UpliftPolicy
    from retentionrl.envs.reward import RewardConfig
    from retentionrl.interactions.decisions import LoggedDecisions
    from retentionrl.interactions.io import read_events
    from retentionrl.simulators.world.config import WorldConfig
    from retentionrl.simulators.world.logs import write_world_logs
    from retentionrl.simulators.world.simulator import GroundTruthWorld

    config = WorldConfig()
    write_world_logs(config, 3_000, 90, 0, directory / "world.parquet")
    decisions = LoggedDecisions.from_log(read_events(directory / "world.parquet", "events"))
    obs = np.resize(decisions.obs.astype(np.float32), (max(BATCHES), decisions.obs.shape[1]))
    uplift = make_named_policy("uplift", config.action_space, decisions=decisions)
    assert isinstance(uplift, UpliftPolicy)
    worlds = [GroundTruthWorld(config) for _ in range(3)]
    q = fit_q(worlds, 0, OneStepConfig(users=2_000, epochs=1))
    return {
        "myopic-greedy": (ImmediateRewardModel.fit(decisions, steps=50), obs),
        "uplift": (uplift, obs),
        "one-step": (OneStepPolicy(q, 0, config.action_space, RewardConfig.weighted(0.25, 2.44)), obs),
    }


METHODS = {
    "myopic-greedy": ("agents/baselines.py", "ImmediateRewardModel", "predict_all"),
    "uplift": ("agents/uplift.py", "UpliftPolicy", "net_value"),
    "one-step": ("agents/one_step.py", "OneStepPolicy", "gains"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default="91aa8ff", help="git revision to compare with (default: 91aa8ff)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating (baseline, this code) pairs")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per measurement")
    args = parser.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        print("fitting the policies on world logs (not timed) ...", flush=True)
        policies = fitted_policies(Path(tmp))
    print(
        f"states decided per second, {torch.get_num_threads()} torch threads; baseline: {args.baseline_rev}, this code: the working tree"
    )
    for name, (obj, obs) in policies.items():
        path, cls, method = METHODS[name]
        try:
            old = getattr(getattr(module_at(args.baseline_rev, path), cls), method)
        except (subprocess.CalledProcessError, OSError) as exc:
            print(f"{name}: the baseline revision could not be read: {exc}")
            continue
        baseline, current = partial(old, obj), partial(getattr(type(obj), method), obj)
        for n in BATCHES:
            batch = obs[:n]
            pairs = alternate(
                partial(states_per_second, baseline, batch, args.seconds),
                partial(states_per_second, current, batch, args.seconds),
                args.repeats,
            )
            print_pairs(f"{name}, {n:,} states per call", ("baseline", "this code"), pairs)


if __name__ == "__main__":
    main()
