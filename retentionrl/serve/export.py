"""Export a trained policy as one self-contained ONNX or TorchScript model, checked.

The exported model maps a float32 batch of observations ``obs`` ``(n, d)`` (the policy's
:class:`~retentionrl.interactions.history.HistoryFeatures`, in the order of the metadata's
``features``) to float32 ``action_probs`` ``(n, A)``, the deployed policy's
:math:`\\pi(a \\mid s)` over the flat actions :math:`a = arm \\cdot n_{coupons} + coupon`
(:class:`~retentionrl.core.actions.ActionSpace`), the same numbers as
:meth:`SB3Policy.action_probs <retentionrl.agents.policies.SB3Policy.action_probs>`:

=====================  ==============================================================
policy (policy.json)   :math:`\\pi(a \\mid s)`
=====================  ==============================================================
PPO, flat head         :math:`\\mathrm{softmax}(z)_a`, :math:`z` the policy logits
PPO, factorised head   :math:`\\mathrm{softmax}(z^{arm})_g\\, \\mathrm{softmax}(z^{coupon})_c`
DQN                    :math:`\\varepsilon / A + (1 - \\varepsilon)[a = \\arg\\max_b Q(s, b)]`
``deploy: greedy``     :math:`[a = \\arg\\max_b \\pi(b \\mid s)]`; factorised: the pair of the
                       factors' argmaxes (the argmax of their product); DQN: :math:`\\varepsilon = 0`
=====================  ==============================================================

An argmax picks the first of tied maxima, as numpy and torch do (ONNX ``ArgMax`` with
``select_last_index = 0``). With an exploration floor :math:`p` (``min_propensity``) the
model returns :math:`(1 - A p)\\, \\pi(a \\mid s) + p`: every action keeps at least
:math:`p`, rows still sum to 1, so logs written under it support off-policy evaluation.

The file carries its contract as metadata, every value JSON-encoded (ONNX
``metadata_props``; TorchScript the extra file ``retentionrl.json``, one JSON object):
algo, deploy, epsilon, arms (labels in index order), arm_column, coupon_levels, features,
horizon_days, spend_scale, min_propensity and policy_version (as the decision service
logs it: :func:`~retentionrl.serve.policy.policy_version`).

Every export is checked before it is moved into place: the written file is loaded back
(onnxruntime on CPU, ``torch.jit.load``) and run on a batch of observations; if it differs
from ``load_policy(dir).action_probs`` with the same floor by more than
:data:`TOLERANCE` anywhere, nothing is written and :class:`ExportMismatchError` is raised.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal, get_args

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn

from retentionrl.agents.policies import SB3Policy
from retentionrl.agents.training import load_policy, read_policy_meta
from retentionrl.core.actions import ActionSpace
from retentionrl.core.atomic import atomic_path
from retentionrl.core.errors import InputError
from retentionrl.serve.policy import check_min_propensity, policy_version

ExportFormat = Literal["onnx", "torchscript"]
FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)
TOLERANCE = 1e-6
"""Largest absolute difference in any probability the check accepts."""
INPUT_NAME, OUTPUT_NAME = "obs", "action_probs"
METADATA_FILE = "retentionrl.json"
"""The TorchScript extra file holding the metadata."""
ONNX_OPSET = 17
CHECK_SHOPPERS, CHECK_VISITS = 256, 8
"""The default check set: this many world shoppers, observed at their first this-many visits."""


class ExportMismatchError(ValueError):
    """The exported model does not compute the policy's probabilities; nothing was written."""


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_policy` wrote and how well it matched the policy.

    :param path: the exported file.
    :param format: ``onnx`` or ``torchscript``.
    :param n_features: observation width :math:`d`.
    :param n_actions: flat actions :math:`A`.
    :param max_abs_diff: largest :math:`|\\text{exported} - \\text{policy}|` over the check
        observations and actions (at most :data:`TOLERANCE`).
    :param n_checked: number of check observations.
    :param metadata: the metadata embedded in the file (module docstring), decoded.
    """

    path: Path
    format: ExportFormat
    n_features: int
    n_actions: int
    max_abs_diff: float
    n_checked: int
    metadata: dict[str, object]


class DeployedPolicy(nn.Module):
    """The deployed policy's action probabilities as one torch module (module docstring).

    It holds the policy network's own layers (not copies), so it computes with the same
    weights and, under the same torch, the same kernels.

    :param policy: a loaded policy (:func:`~retentionrl.agents.training.load_policy`).
    :param min_propensity: the exploration floor :math:`p`, :math:`0 \\le A p \\le 1`.
    """

    def __init__(self, policy: SB3Policy, min_propensity: float = 0.0) -> None:
        super().__init__()
        space = policy.action_space
        self.n_actions = space.n_actions
        self.floor = check_min_propensity(min_propensity, self.n_actions)
        self.greedy = policy.greedy
        net = policy.policy
        self.head: nn.Module
        if isinstance(net, DQNPolicy):
            self.head = _EpsilonGreedyQ(net, policy.epsilon, self.n_actions)
        elif isinstance(net, ActorCriticPolicy):
            factorised = isinstance(net.action_space, spaces.MultiDiscrete)
            self.head = _ActorProbs(net, (space.n_arms, space.n_coupons) if factorised else None)
        else:
            raise TypeError(f"expected an ActorCriticPolicy or a DQNPolicy, got {type(net).__name__}")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``action_probs`` ``(n, A)`` of float32 observations ``(n, d)``."""
        probs, best = self.head(obs)
        if self.greedy:
            probs = _one_hot(best, self.n_actions, obs.dtype)
        return (1.0 - self.n_actions * self.floor) * probs + self.floor


class _ActorProbs(nn.Module):
    """An actor-critic's categorical probabilities ``(n, A)`` and their argmax ``(n,)``.

    :param factors: ``(n_arms, n_coupons)`` for the factorised head, else ``None``.
    """

    def __init__(self, net: ActorCriticPolicy, factors: tuple[int, int] | None) -> None:
        super().__init__()
        self.features, self.latent, self.logits = (
            net.pi_features_extractor,
            net.mlp_extractor.policy_net,
            net.action_net,
        )
        self.factors = factors

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.logits(self.latent(self.features(obs)))
        if self.factors is None:
            probs = _categorical_probs(logits)
            return probs, probs.argmax(dim=1)
        arm_logits, coupon_logits = logits.split(list(self.factors), dim=1)
        arm, coupon = _categorical_probs(arm_logits), _categorical_probs(coupon_logits)
        joint = (arm.unsqueeze(2) * coupon.unsqueeze(1)).flatten(start_dim=1)
        # greedy: the pair of the factors' first argmaxes, which is the argmax of the policy's
        # exact float64 product; argmax of the float32 product could see a tie it does not
        return joint, arm.argmax(dim=1) * self.factors[1] + coupon.argmax(dim=1)


class _EpsilonGreedyQ(nn.Module):
    """DQN's epsilon-greedy probabilities ``(n, A)`` and its greedy action ``(n,)``."""

    def __init__(self, net: DQNPolicy, epsilon: float, n_actions: int) -> None:
        super().__init__()
        self.q_net, self.epsilon, self.n_actions = net.q_net, float(epsilon), n_actions

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        best = self.q_net(obs).argmax(dim=1)
        one_hot = _one_hot(best, self.n_actions, obs.dtype)
        return (1.0 - self.epsilon) * one_hot + self.epsilon / self.n_actions, best


def _one_hot(index: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """Rows ``(len(index), n)`` with 1 at ``index`` and 0 elsewhere."""
    return nn.functional.one_hot(index, n).to(dtype)


def _categorical_probs(logits: torch.Tensor) -> torch.Tensor:
    """``Categorical(logits=logits).probs``, the same ops: softmax of the normalised logits."""
    return torch.softmax(logits - logits.logsumexp(dim=1, keepdim=True), dim=1)


def check_format(fmt: str, name: str = "fmt") -> ExportFormat:
    """``fmt`` as an :data:`ExportFormat`, checked.

    :param name: how the caller calls it in the error (the CLI: ``--format``).
    :raises ValueError: naming ``name``, the value and the formats.
    """
    for known in FORMATS:
        if fmt == known:
            return known
    raise ValueError(f"{name}: expected one of {', '.join(FORMATS)}, got {fmt!r}")


def export_policy(
    policy_dir: str | Path,
    fmt: ExportFormat,
    out: str | Path,
    *,
    min_propensity: float = 0.0,
    obs: np.ndarray | None = None,
) -> ExportSummary:
    """Export the trained policy in ``policy_dir`` to ``out`` as ONNX or TorchScript, checked.

    :param policy_dir: a run folder with ``policy.json`` and ``policy.safetensors``; the
        policy acts as its ``deploy`` says (greedy or stochastic).
    :param fmt: ``onnx`` (opset 17, input ``obs``, output ``action_probs``, dynamic batch)
        or ``torchscript`` (traced; ``torch.jit.load`` it).
    :param out: the file to write, atomically; its folder must exist.
    :param min_propensity: exploration floor :math:`p` mixed in, :math:`0 \\le A p \\le 1`.
    :param obs: observations ``(n, d)`` to check the export on; default
        :func:`check_observations`.
    :raises InputError: not a policy folder (naming it), or ``out`` in a missing folder or a folder.
    :raises ValueError: a bad ``fmt``, ``min_propensity`` or ``obs``.
    :raises ImportError: ``onnx`` without onnx and onnxruntime installed.
    :raises ExportMismatchError: the export differs from the policy by more than :data:`TOLERANCE`.
    """
    fmt = check_format(fmt)
    out = Path(out)
    if out.is_dir():
        raise InputError(out, "is a folder: give the path of the file to write")
    if not out.parent.is_dir():
        raise InputError(out, f"the folder {out.parent} does not exist")
    meta, space = read_policy_meta(policy_dir)
    p = check_min_propensity(min_propensity, space.n_actions)
    n_features = int(meta["n_features"])
    check = check_observations(space, n_features) if obs is None else _checked_obs(obs, n_features)
    policy = load_policy(policy_dir)
    metadata = _metadata(meta, space, policy, p, policy_dir)
    module = DeployedPolicy(policy, p).eval()
    expected = policy.action_probs(check) * (1.0 - space.n_actions * p) + p
    with atomic_path(out) as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            # torch deprecates TorchScript and its ONNX exporter for torch.export (whose ONNX
            # exporter needs onnxscript): these two formats are the ones embedders load today
            warnings.simplefilter("ignore", DeprecationWarning)
            _WRITERS[fmt](module, torch.from_numpy(check[:2]), tmp, metadata)
            got = _RUNNERS[fmt](tmp, check)
        diff = float(np.max(np.abs(got.astype(np.float64) - expected))) if got.shape == expected.shape else math.inf
        if not diff <= TOLERANCE:
            raise ExportMismatchError(
                f"{out}: the exported {fmt} model differs from the policy by up to {diff:.3g} (> {TOLERANCE:g}) "
                f"on {len(check):,} observations; nothing was written"
            )
    return ExportSummary(out, fmt, n_features, space.n_actions, diff, len(check), metadata)


def check_observations(space: ActionSpace, n_features: int) -> np.ndarray:
    """A deterministic float32 batch of observations to check an export on.

    Where the policy acts in the ground-truth world's action space and observation width
    (the default :class:`WorldConfig`), realistic states: :data:`CHECK_SHOPPERS` world
    shoppers (``reset(seed=0)``) at their first :data:`CHECK_VISITS` visits under the
    uniform policy (generator seeded 0), a churned shopper replaced by a fresh one;
    otherwise (a policy of another shop) uniform [0, 1) features, seeded 0.
    """
    from retentionrl.simulators.world.config import WorldConfig
    from retentionrl.simulators.world.logging_policies import UniformPolicy
    from retentionrl.simulators.world.simulator import GroundTruthWorld

    world = GroundTruthWorld(WorldConfig())
    rng = np.random.default_rng(0)
    if world.action_space != space or world.obs_dim != n_features:
        return rng.random((CHECK_SHOPPERS * CHECK_VISITS, n_features), dtype=np.float32)
    uniform = UniformPolicy(world.action_space)
    states = [world.reset(CHECK_SHOPPERS, seed=0)]
    for _ in range(CHECK_VISITS - 1):
        _, outcome = world.step(uniform.act(states[-1], rng))
        states.append(world.replace(outcome.churned))
    return np.concatenate(states).astype(np.float32)


def _checked_obs(obs: np.ndarray, n_features: int) -> np.ndarray:
    """Caller-given check observations as float32 ``(n, d)``, n >= 1, finite."""
    array = np.asarray(obs, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] != n_features:
        raise ValueError(f"obs: expected shape (n >= 1, {n_features}), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("obs: expected finite values, got NaN or inf")
    return np.ascontiguousarray(array)


def _metadata(meta: dict, space: ActionSpace, policy: SB3Policy, p: float, policy_dir: str | Path) -> dict[str, object]:
    """The contract embedded in the file (module docstring); ``None`` where an older
    ``policy.json`` does not record it."""
    observation = meta.get("observation", {})
    return {
        "algo": meta["algo"],
        "deploy": "greedy" if policy.greedy else "stochastic",
        "epsilon": policy.epsilon,
        "arms": meta.get("arms"),
        "arm_column": meta.get("arm_column"),
        "coupon_levels": list(space.coupon_levels),
        "features": observation.get("features"),
        "horizon_days": observation.get("horizon_days"),
        "spend_scale": observation.get("spend_scale"),
        "min_propensity": p,
        "policy_version": policy_version(Path(policy_dir), p),
    }


def _onnx() -> tuple[ModuleType, ModuleType]:
    """The ``onnx`` and ``onnxruntime`` modules, or an ImportError saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            f"ONNX export needs onnx and onnxruntime ({exc}): pip install 'retentionrl[export]'"
        ) from None
    return onnx, onnxruntime


def _write_onnx(module: nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, object]) -> None:
    onnx, _ = _onnx()
    batch = {0: "batch"}
    torch.onnx.export(
        module,
        (example,),
        str(path),
        dynamo=False,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: batch, OUTPUT_NAME: batch},
        opset_version=ONNX_OPSET,
    )
    model = onnx.load_model(str(path))
    onnx.helper.set_model_props(model, {key: json.dumps(value) for key, value in metadata.items()})
    onnx.save_model(model, str(path))


def _run_onnx(path: Path, obs: np.ndarray) -> np.ndarray:
    _, onnxruntime = _onnx()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: obs})[0])


def _write_torchscript(module: nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, object]) -> None:
    traced = torch.jit.trace(module, example)
    torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: json.dumps(metadata)})


def _run_torchscript(path: Path, obs: np.ndarray) -> np.ndarray:
    return torch.jit.load(str(path))(torch.from_numpy(obs)).numpy()


_WRITERS = {"onnx": _write_onnx, "torchscript": _write_torchscript}
_RUNNERS = {"onnx": _run_onnx, "torchscript": _run_torchscript}
