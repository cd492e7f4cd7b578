"""Every policy by name, in one place: trained run folders, baselines fit on logs, and the
ground-truth world's named policies.

=================  ==========================================================================
name               policy
=================  ==========================================================================
a folder           a policy trained by ``retentionrl train`` (:func:`~retentionrl.agents.training.load_policy`)
``random``         uniform over every action
``popularity``     the most purchased arm, no coupon (fit on logged decisions)
``myopic-greedy``  the action with the largest immediate expected profit (fit on logged decisions)
``logging-clone``  a clone of the policy that wrote the logs (fit on logged decisions)
``uplift``         coupons where their estimated uplift on returning pays for them (fit on logs)
world names        the world's heuristics and logging policies
                   (:data:`retentionrl.simulators.policy_registry.POLICY_NAMES`)
=================  ==========================================================================

:func:`check_action_map` refuses a policy whose arm labels or coupon levels differ from
those of the logs it is evaluated on: index ``a`` must mean the same action on both sides.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retentionrl.core.actions import ActionSpace
from retentionrl.core.errors import InputError
from retentionrl.core.policy import Policy
from retentionrl.interactions.action_map import ActionMap
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.simulators.policy_registry import POLICY_NAMES, make_policy
from retentionrl.simulators.world.config import WorldConfig

BASELINES: tuple[str, ...] = ("random", "popularity", "myopic-greedy", "logging-clone", "uplift")
"""Baselines a shop can run without RL; all but ``random`` are fit on logged decisions."""


def policy_names() -> tuple[str, ...]:
    """Every name :func:`make_named_policy` knows, besides run folders."""
    return BASELINES + POLICY_NAMES


def load_trained(folder: str | Path) -> Policy:
    """The policy trained into ``folder``: a one-step agent's (:mod:`retentionrl.agents.one_step`)
    or a PPO / DQN run's (:func:`retentionrl.agents.training.load_policy`).

    :raises InputError: naming the folder or file when it holds neither.
    """
    from retentionrl.agents.one_step import is_one_step_folder, load_one_step

    if is_one_step_folder(folder):
        return load_one_step(folder)
    from retentionrl.agents.training import load_policy

    return load_policy(folder)


def make_named_policy(
    name: str,
    space: ActionSpace,
    *,
    decisions: LoggedDecisions | None = None,
    world: WorldConfig | None = None,
    seed: int = 0,
) -> Policy:
    """The policy called ``name`` (module table) acting in ``space``.

    :param decisions: logged decisions the baselines are fit on (required for them).
    :param world: the world config of the world policies (default: the default world).
    :raises ValueError: an unknown name, a baseline without decisions or on logs with no
        logged action, or a policy that acts in another action space.
    """
    from retentionrl.simulators.world.logging_policies import UniformPolicy

    if Path(name).is_dir():
        policy: Policy = load_trained(name)
    elif name == "random":
        policy = UniformPolicy(space)
    elif name in BASELINES:
        policy = _fit_baseline(name, decisions, seed)
    elif name in POLICY_NAMES:
        policy = make_policy(name, world or WorldConfig())
    else:
        raise ValueError(
            f"{name!r} is not a trained policy folder, a baseline ({', '.join(BASELINES)}) or a world "
            f"policy ({', '.join(POLICY_NAMES)})"
        )
    if policy.action_space != space:
        raise ValueError(f"policy {name!r} acts on {_actions(policy.action_space)}; expected {_actions(space)}")
    return policy


def _actions(space: ActionSpace) -> str:
    return f"{space.n_arms} arms x coupon levels {list(space.coupon_levels)}"


def _fit_baseline(name: str, decisions: LoggedDecisions | None, seed: int) -> Policy:
    from retentionrl.agents.baselines import LoggingPolicyClone, MyopicGreedyPolicy, PopularityPolicy

    if decisions is None:
        raise ValueError(f"the {name} baseline is fit on logs: give the logs")
    if not decisions.logged.any():
        raise ValueError("the logs hold no logged actions (impressions) to fit it on")
    if name == "popularity":
        return PopularityPolicy.fit(decisions)
    if name == "myopic-greedy":
        return MyopicGreedyPolicy.fit(decisions, seed=seed)
    if name == "logging-clone":
        return LoggingPolicyClone.fit(decisions)
    from retentionrl.agents.uplift import UpliftPolicy

    return UpliftPolicy.fit(decisions, seed=seed)


def check_action_map(policy: Policy, action_map: ActionMap, *, policy_name: str, logs: str | Path) -> None:
    """Refuse (:class:`InputError` naming the logs) a policy whose actions mean something
    else in ``logs``: other coupon levels, another number of arms, or (where the policy knows
    its arm labels) other arms or another order."""
    if policy.action_space != action_map.space:
        raise InputError(
            logs,
            f"policy {policy_name!r} acts on {_actions(policy.action_space)}; these logs' action "
            f"map is {_actions(action_map.space)}",
        )
    logged = tuple(str(a) for a in action_map.arms)
    if policy.arms is not None and tuple(policy.arms) != logged:
        first = next(i for i, (a, b) in enumerate(zip(policy.arms, logged)) if a != b)
        raise InputError(
            logs,
            f"policy {policy_name!r} was trained on arms {list(policy.arms)}; these logs' action "
            f"map is {list(logged)} (first difference at index {first}): its actions would mean "
            "other arms here",
        )


def logged_propensities(decisions: LoggedDecisions) -> np.ndarray | None:
    """The propensities OPE should use: ``None`` where every logged action carries the
    probability the logging policy used (read from the logs); else a logging-policy
    clone's probability of each logged action (an estimate every importance weight inherits)."""
    from retentionrl.agents.baselines import LoggingPolicyClone

    if not np.isnan(decisions.propensity[decisions.logged]).any():
        return None
    clone = LoggingPolicyClone.fit(decisions)
    return clone.taken_probs(decisions.obs, decisions.action)
