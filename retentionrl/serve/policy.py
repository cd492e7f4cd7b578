"""The policy a service serves: a trained policy folder, its observation contract, and an
exploration floor.

Served distribution. With :math:`A` flat actions and a floor :math:`p` (``min_propensity``),

.. math:: \\pi_{served}(a \\mid s) = (1 - A p)\\, \\pi(a \\mid s) + p,

the trained policy mixed with the uniform policy at weight :math:`\\lambda = A p`: every
action keeps probability at least :math:`p`, so off-policy evaluation of any later policy on
the served decisions has support, and a greedy policy still takes its action with probability
:math:`1 - (A - 1) p`. The trained network is evaluated in float64 numpy
(:class:`~retentionrl.agents.inference.NumpyPolicy`: microseconds per shopper, and the same
numbers one row at a time as in a bulk replay of the log).
The service samples from :math:`\\pi_{served}` and logs :math:`\\pi_{served}(a \\mid s)` of the
action it sampled: the exact propensity.

Observation contract (``policy.json``, written by :func:`retentionrl.agents.training.save_policy`):
the horizon :math:`H` and spend scale :math:`S` of the
:class:`~retentionrl.interactions.history.HistoryFeatures` the policy was trained on, the arm
labels in index order and what they are in the logs (``arm_column``: ``rec_group`` = item
groups, ``rec_item`` = items; ``arm_type``: ``int`` or ``str``). Folders written before the
contract was recorded use :math:`H = 90`, :math:`S = 50`, item groups, and integer labels
where every label reads as one.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retentionrl.agents.inference import NumpyPolicy
from retentionrl.agents.training import POLICY_META, POLICY_TENSORS, load_policy, read_policy_meta
from retentionrl.core.actions import ActionSpace
from retentionrl.core.policy import Policy
from retentionrl.serve import DEFAULT_MIN_PROPENSITY


@dataclass(frozen=True)
class ObservationContract:
    """What a service needs to rebuild a policy's observation from events (module docstring)."""

    horizon_days: float
    spend_scale: float
    arm_column: str
    arms: tuple[str | int, ...]
    coupon_levels: tuple[float, ...]

    @property
    def arm_type(self) -> type:
        """``int`` or ``str``: the type of an arm label (and of ``item_id``) in the logs."""
        return int if all(isinstance(a, int) for a in self.arms) else str


class ServedPolicy(Policy):
    """A trained policy folder served with an exploration floor (module docstring).

    :param policy_dir: a folder written by ``retentionrl train``.
    :param min_propensity: the floor :math:`p \\ge 0`, with :math:`A p \\le 1`.
    :param deploy: ``greedy`` or ``stochastic`` (default: the folder's own).
    :raises ValueError: a floor out of range, naming ``min_propensity``.
    :raises InputError: the folder is not a readable trained policy.
    """

    def __init__(
        self, policy_dir: str | Path, min_propensity: float = DEFAULT_MIN_PROPENSITY, *, deploy: str | None = None
    ) -> None:
        self.path = Path(policy_dir)
        meta, space = read_policy_meta(self.path)
        n_actions = space.n_actions
        min_propensity = check_min_propensity(min_propensity, n_actions, "min_propensity (--min-propensity)")
        super().__init__(space)
        self.min_propensity = float(min_propensity)
        self.trained: Policy = NumpyPolicy(load_policy(self.path, deploy=deploy))
        self.name, self.arms = f"{self.trained.name}+floor", self.trained.arms
        self._keep = 1.0 - n_actions * self.min_propensity
        self.meta = meta
        self.contract = _contract(meta, space)
        self.version = policy_version(self.path, self.min_propensity)

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        """:math:`\\pi_{served}(\\cdot \\mid s)` for each row of ``obs``, float64 ``(n, A)``."""
        return self.trained.action_probs(obs) * self._keep + self.min_propensity


def _contract(meta: dict, space: ActionSpace) -> ObservationContract:
    """The observation contract of a checked ``policy.json`` (older folders: module defaults)."""
    observation = meta.get("observation", {})
    labels = meta.get("arms", [str(g) for g in range(space.n_arms)])
    arm_type = meta.get("arm_type", "int" if all(_is_int_label(a) for a in labels) else "str")
    arms = tuple(int(a) for a in labels) if arm_type == "int" else tuple(labels)
    return ObservationContract(
        horizon_days=float(observation.get("horizon_days", 90.0)),
        spend_scale=float(observation.get("spend_scale", 50.0)),
        arm_column=meta.get("arm_column") or "rec_group",
        arms=arms,
        coupon_levels=tuple(space.coupon_levels),
    )


def _is_int_label(label: str) -> bool:
    """``label`` is an integer written canonically (``"7"``, ``"-2"``; not ``"07"`` or ``"a"``)."""
    try:
        return str(int(label)) == label
    except ValueError:
        return False


def check_min_propensity(value: float, n_actions: int, name: str = "min_propensity") -> float:
    """The exploration floor :math:`p` as a float, checked: :math:`p \\ge 0` and
    :math:`A p \\le 1` (the floor takes :math:`A p` of the mass from the policy).

    :param name: how the caller calls it in the error (the CLI: ``--min-propensity``).
    :raises ValueError: naming ``name``, the value and the largest allowed.
    """
    p = float(value)
    if not (math.isfinite(p) and p >= 0.0 and p * n_actions <= 1.0):
        raise ValueError(
            f"{name}: expected a number in [0, 1/A] = [0, {1.0 / n_actions:.6g}] for A = {n_actions} actions, got {value!r}"
        )
    return p


def policy_version(policy_dir: Path, min_propensity: float) -> str:
    """The version a service logs with each decision: the first 16 hex digits of SHA-256 over
    the policy's tensors, its metadata and the floor (the served distribution is a function of
    exactly these)."""
    digest = hashlib.sha256()
    for name in (POLICY_TENSORS, POLICY_META):
        digest.update((policy_dir / name).read_bytes())
    digest.update(repr(float(min_propensity)).encode())
    return digest.hexdigest()[:16]
