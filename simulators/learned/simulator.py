"""The learned shopper simulator: the fitted sequence model behind the simulator interface.

:class:`LearnedSimulator` implements :class:`~retentionrl.simulators.interface.ShopperSimulator` with a
:class:`~retentionrl.simulators.learned.sequence_model.ShopperSequenceModel`. It keeps, per shopper slot, the
GRU state and the previous visit's action and outcome (on the device, or in numpy for a
small batch), and the observable history (:class:`~retentionrl.interactions.history.HistoryFeatures`,
the world's very layout, so one policy runs on both) in numpy. One
:meth:`~LearnedSimulator.step` of ``n`` shoppers is one GRU cell and the heads, with the
model's weights folded for speed: O(1) in history length.

A batch of at most ``small_batch`` shoppers (default :data:`SMALL_BATCH`; :meth:`~LearnedSimulator.reset`
chooses) steps in numpy and Python floats on the CPU
(:class:`~retentionrl.simulators.learned.numpy_step.NumpyStep`), where torch's dispatch of
each small operation would cost more than its arithmetic: a single-shopper env steps
several times faster so. A larger batch steps in torch on the device
(:class:`~retentionrl.simulators.learned.fused_step.FusedStep`). Both paths compute the same
functions of the same draws of the same generator, so a seed gives the same outcomes on
either, but where a uniform falls within float32 rounding of a probability or of a day's
edge of the return law (``tests/test_small_batch_step.py`` checks them against each other).

Outcomes are *sampled* from the heads with the simulator's seeded ``numpy.random.Generator``
(each step draws float32 uniforms ``u`` ``(4, n)`` and then float32 standard normals ``z``
``(n,)``, on either path; :math:`\\sigma` the logistic function):

==========  =================================================================================
outcome     draw
==========  =================================================================================
click       :math:`u_0 < \\sigma(o_c)`
purchase    :math:`u_1 < \\sigma(o_{pc})` after a click, :math:`\\sigma(o_{pn})` without
redeemed    purchase and coupon offered and :math:`u_2 < \\sigma(o_r)`
spend       :math:`\\exp(\\mu + e^{\\log\\sigma} z)` if purchased, else 0 (list price)
coupon      spend x coupon fraction if redeemed
cogs        :math:`(1 - m_a)` x spend: cost of goods at the gross margin :math:`m_a` of the
            recommended arm :math:`a`, estimated from the logs
            (:attr:`~retentionrl.simulators.learned.model_card.ModelCard.gross_margins`; 1 where the logs
            record no cost of goods, so profit is net revenue)
gap, churn  inverse CDF of the churn-or-return law (:mod:`retentionrl.simulators.learned.hazard`) given the drawn outcome (click, purchase,
            redeemed, spend) with :math:`u_3` (:func:`retentionrl.simulators.learned.hazard.sample_gap_days`);
            ``inf`` and churned when no return within :math:`H`
==========  =================================================================================

A head the log could not teach (:class:`~retentionrl.simulators.learned.model_card.ModelCard`) uses the log's
constant rate instead of the model, and an action part the log never varied is fed to the
model as the value it was trained on.

New shoppers (:meth:`reset`, :meth:`replace`) start at their first visit from the learned
empty-history state: the simulator draws new shoppers, it never replays logged ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from retentionrl.interactions.history import HistoryFeatures, VisitOutcomeLike
from retentionrl.simulators.interface import ShopperSimulator, VisitOutcome
from retentionrl.simulators.learned import numpy_step
from retentionrl.simulators.learned.checkpoint import TENSORS_FILE, CheckpointError, load_checkpoint
from retentionrl.simulators.learned.fused_step import FusedStep
from retentionrl.simulators.learned.hazard import sample_gap_days
from retentionrl.simulators.learned.model_card import ModelCard
from retentionrl.simulators.learned.sequence_model import N_PREV_OUTCOMES, ShopperSequenceModel

SMALL_BATCH = 32
"""The largest batch :class:`LearnedSimulator` steps in numpy by default (module docstring).
Measured on one CPU thread with a fitted simulator of the default sizes (hidden 64, 20
arms), ``simulator.step`` with its history, shopper-visits/s of numpy over torch: 4.3 at 1
shopper, 1.9 at 16, 1.3 at 32, 1.0 at 40, 0.9 at 48, 0.7 at 64, 0.5 at 128. The paths cross
near 40 (the numpy path's cost grows with the batch, a Python loop per shopper; torch's
hardly below a few hundred); 32 keeps a margin for other machines and model sizes."""


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU raises."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use --device auto or cpu")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {str(device)!r}")
    return device


@dataclass(frozen=True)
class _Law:
    """The response law of the module docstring, as both paths read it, and the model's
    inputs of each flat action."""

    learned: tuple[bool, ...]
    """Whether the click, purchase after a click, purchase without one and redeemed heads are learned."""
    rates: tuple[float, ...]
    """The logs' constant rate of each of those heads (float32 values), where it is not learned."""
    spend_learned: bool
    spend_scale: float
    inputs: tuple[np.ndarray, np.ndarray, np.ndarray]
    """Per flat action: the model's arm input (int64), coupon input (float32), and whether a coupon is offered."""


class _TorchPath:
    """Any batch, stepped by :class:`FusedStep` on the device, where the carried GRU state,
    previous arm and previous outcome live as tensors."""

    def __init__(self, model: ShopperSequenceModel, law: _Law, device: torch.device) -> None:
        self._fused, self._law, self._device = FusedStep(model), law, device
        self._learned = torch.tensor(law.learned, device=device)
        self._rates = torch.tensor(law.rates, device=device)

    @torch.inference_mode()
    def reset(self, n: int) -> None:
        model = self._fused.model
        self._state = model.empty_state.expand(n, -1).clone()
        self._prev_arm = torch.full((n,), model.spec.n_arms, dtype=torch.long, device=self._device)
        self._prev_outcome = torch.zeros((n, N_PREV_OUTCOMES), device=self._device)

    @torch.inference_mode()
    def replace(self, mask: np.ndarray) -> None:
        model = self._fused.model
        rows = torch.as_tensor(np.flatnonzero(mask), device=self._device)
        self._state.index_copy_(0, rows, model.empty_state.expand(rows.shape[0], -1))
        self._prev_arm.index_fill_(0, rows, model.spec.n_arms)
        self._prev_outcome.index_fill_(0, rows, 0.0)

    @torch.inference_mode()
    def keep_rows(self, mask: np.ndarray) -> None:
        rows = torch.as_tensor(np.flatnonzero(mask), device=self._device)
        self._state, self._prev_arm, self._prev_outcome = (
            t.index_select(0, rows) for t in (self._state, self._prev_arm, self._prev_outcome)
        )

    @property
    def state(self) -> torch.Tensor:
        return self._state.clone()

    @torch.inference_mode()
    def step(self, features: np.ndarray, actions: np.ndarray, u: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Click, purchase, redeemed (0/1), spend and gap ``(5, n)`` of one sampled visit."""
        arm, coupon, offered = (torch.as_tensor(t.take(actions), device=self._device) for t in self._law.inputs)
        uniform, normal = torch.as_tensor(u, device=self._device), torch.as_tensor(z, device=self._device)
        out, shared = self._advance(features, arm, coupon)
        p = torch.where(self._learned, torch.sigmoid(out[:, :4]), self._rates)
        click = uniform[0] < p[:, 0]
        purchase = uniform[1] < torch.where(click, p[:, 1], p[:, 2])
        redeemed = purchase & offered & (uniform[2] < p[:, 3])
        if self._law.spend_learned:
            spend = torch.where(
                purchase, torch.exp(out[:, 4] + torch.exp(out[:, 5]) * normal), torch.zeros_like(normal)
            )
        else:
            spend = torch.zeros_like(normal)
        drawn = [click.float(), purchase.float(), redeemed.float(), spend]
        drawn.append(sample_gap_days(self._return_logits(shared, arm, drawn), uniform[3]))
        self._record(arm, coupon, drawn)
        return torch.stack(drawn).cpu().numpy().astype(np.float64)

    @torch.inference_mode()
    def observe(
        self, features: np.ndarray, actions: np.ndarray, logged: np.ndarray, u: np.ndarray | None, after_day: np.ndarray
    ) -> np.ndarray | None:
        """The gaps ``(n,)`` drawn given ``logged`` click, purchase, redeemed and spend
        ``(4, n)`` and later than ``after_day`` with uniforms ``u`` (none without ``u``)."""
        arm, coupon = (torch.as_tensor(t.take(actions), device=self._device) for t in self._law.inputs[:2])
        _, shared = self._advance(features, arm, coupon)
        drawn = list(torch.as_tensor(logged, device=self._device))
        gaps = None
        if u is not None:
            gaps = (
                sample_gap_days(
                    self._return_logits(shared, arm, drawn),
                    torch.as_tensor(u, device=self._device),
                    torch.as_tensor(after_day, device=self._device),
                )
                .cpu()
                .numpy()
            )
        self._record(arm, coupon, drawn)
        return gaps

    def _advance(
        self, features: np.ndarray, arm: torch.Tensor, coupon: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Response outputs and the return law's input of this visit; moves the GRU state past it."""
        out, shared, self._state = self._fused.advance(
            torch.as_tensor(features, device=self._device), self._prev_arm, self._prev_outcome, arm, coupon, self._state
        )
        return out, shared

    def _return_logits(self, shared: torch.Tensor, arm: torch.Tensor, drawn: list[torch.Tensor]) -> torch.Tensor:
        """Return logits given the visit's arm input and its click, purchase, redeemed and spend ``drawn``."""
        click, purchase, redeemed, spend = drawn[:4]
        redeemed_spend = torch.stack([redeemed, torch.log1p(spend / self._law.spend_scale)], dim=1)
        return self._fused.return_logits(shared, arm, click, purchase, redeemed_spend)

    def _record(self, arm: torch.Tensor, coupon: torch.Tensor, drawn: list[torch.Tensor]) -> None:
        """Carry the visit's arm, coupon and outcome ``drawn`` into the next visit's inputs."""
        self._prev_arm = arm
        self._prev_outcome = torch.stack([coupon, *drawn[:3], torch.log1p(drawn[3] / self._law.spend_scale)], dim=1)


def _sigmoid(x: float) -> float:
    """:math:`\\sigma(x)`, without overflow."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _exp(x: float) -> float:
    """:math:`e^x`, ``inf`` past the largest float (as torch's ``exp``)."""
    return math.exp(x) if x < 709.0 else math.inf


class _NumpyPath:
    """A batch of a few shoppers, stepped by :class:`~retentionrl.simulators.learned.numpy_step.NumpyStep`
    on the CPU, which carries their GRU state and previous visit; each shopper's inputs and
    draws are Python floats: :class:`_TorchPath`'s law, one shopper at a time."""

    def __init__(self, model: ShopperSequenceModel, law: _Law, device: torch.device) -> None:
        self._step, self._law, self._device = numpy_step.NumpyStep(model), law, device
        self._inputs = list(zip(*(t.tolist() for t in law.inputs)))

    def reset(self, n: int) -> None:
        self._step.reset(n)

    def replace(self, mask: np.ndarray) -> None:
        self._step.replace(mask)

    def keep_rows(self, mask: np.ndarray) -> None:
        self._step.keep_rows(mask)

    @property
    def state(self) -> torch.Tensor:
        return torch.from_numpy(self._step.state).to(self._device)

    def step(self, features: np.ndarray, actions: np.ndarray, u: np.ndarray, z: np.ndarray) -> np.ndarray:
        """:meth:`_TorchPath.step`."""
        arm, coupon, offered = self._action_inputs(actions)
        out = self._step.advance(features, arm, coupon)
        learned, rates = self._law.learned, self._law.rates
        u0, u1, u2, u3 = u.tolist()
        click, purchase, redeemed, spend = [], [], [], []
        for o, u0_k, u1_k, u2_k, z_k, offered_k in zip(out.tolist(), u0, u1, u2, z.tolist(), offered):
            p = [_sigmoid(x) if learn else rate for x, learn, rate in zip(o, learned, rates)]
            clicked = u0_k < p[0]
            bought = u1_k < (p[1] if clicked else p[2])
            click.append(float(clicked))
            purchase.append(float(bought))
            redeemed.append(float(bought and offered_k and u2_k < p[3]))
            spend.append(
                numpy_step.round_float32(_exp(o[4] + _exp(o[5]) * z_k)) if bought and self._law.spend_learned else 0.0
            )
        gap = self._close(arm, coupon, click, purchase, redeemed, spend, u3)
        return np.array([click, purchase, redeemed, spend, gap])

    def observe(
        self, features: np.ndarray, actions: np.ndarray, logged: np.ndarray, u: np.ndarray | None, after_day: np.ndarray
    ) -> np.ndarray | None:
        """:meth:`_TorchPath.observe`."""
        arm, coupon, _ = self._action_inputs(actions)
        self._step.advance(features, arm, coupon)
        click, purchase, redeemed, spend = logged.tolist()
        gaps = self._close(
            arm, coupon, click, purchase, redeemed, spend, None if u is None else u.tolist(), after_day.tolist()
        )
        return None if gaps is None else np.array(gaps)

    def _action_inputs(self, actions: np.ndarray) -> tuple[list[int], list[float], list[bool]]:
        """The model's arm and coupon inputs and whether a coupon is offered, of each shopper's flat action."""
        rows = [self._inputs[a] for a in actions.tolist()]
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    def _close(
        self,
        arm: list[int],
        coupon: list[float],
        click: list[float],
        purchase: list[float],
        redeemed: list[float],
        spend: list[float],
        u: list[float] | None,
        after_day: list[float] | None = None,
    ) -> list[float] | None:
        """The visit's gaps drawn with uniforms ``u`` given its outcome (none without ``u``);
        the outcome is carried into the next visit's inputs."""
        log_spend = [math.log1p(s / self._law.spend_scale) for s in spend]
        gaps = None
        if u is not None:
            logits = self._step.return_logits(arm, click, purchase, redeemed, log_spend)
            gaps = numpy_step.sample_gap_days(logits, u, after_day)
        self._step.record(arm, coupon, click, purchase, redeemed, log_spend)
        return gaps


class LearnedSimulator(ShopperSimulator):
    """Shoppers stepped by a fitted sequence model (see the module docstring).

    :param model: the fitted model (moved to ``device``, put in eval mode).
    :param card: its model card (action map, spend scale, heads learned).
    :param device: ``auto``, ``cpu`` or ``cuda``.
    :param small_batch: the largest batch stepped in numpy (module docstring); 0 steps every
        batch in torch.
    """

    def __init__(
        self,
        model: ShopperSequenceModel,
        card: ModelCard,
        device: str | torch.device = "auto",
        small_batch: int = SMALL_BATCH,
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.card = card
        self.action_space = card.action_map.space
        self.horizon_days = int(card.spec.horizon_days)
        self.history = HistoryFeatures(self.action_space, self.horizon_days, spend_scale=card.spend_scale)
        self.observation_names = self.history.names
        if list(self.observation_names) != list(card.feature_names):
            raise ValueError(
                f"model features {card.feature_names} differ from the observation {self.observation_names}"
            )
        margins = np.asarray(card.gross_margins, dtype=np.float64)
        if margins.shape != (self.action_space.n_arms,):
            raise ValueError(f"{margins.size} gross margins for {self.action_space.n_arms} arms")
        n_actions = self.action_space.n_actions
        arm, coupon_index = self.action_space.decode(np.arange(n_actions))
        levels = np.asarray(self.action_space.coupon_levels)[coupon_index]
        # per flat action: the coupon cost (if redeemed) and the cost of goods per unit of spend
        self._cost_shares = np.stack([levels, 1.0 - margins[arm]])
        # per flat action: the model's arm and coupon inputs, and whether a coupon is offered
        top = self.action_space.coupon_levels[-1]
        arm_in = arm if card.action_inputs["arm"] else np.full(n_actions, card.fixed_arm)
        coupon_in = (
            levels / (top if top > 0 else 1.0)
            if card.action_inputs["coupon"]
            else np.full(n_actions, card.fixed_coupon)
        )
        inputs = (arm_in.astype(np.int64), coupon_in.astype(np.float32), levels > 0)
        heads = ("click", "purchase", "purchase", "redeemed")
        law = _Law(
            tuple(card.learned(h) for h in heads),
            tuple(float(np.float32(card.rate(h))) for h in heads),
            card.learned("spend"),
            card.spend_scale,
            inputs,
        )
        self._numpy_path, self._torch_path = (
            _NumpyPath(self.model, law, self.device),
            _TorchPath(self.model, law, self.device),
        )
        self._small_batch = int(small_batch)
        self._rng = np.random.default_rng(0)
        self.reset(0)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "auto") -> LearnedSimulator:
        """The simulator saved in ``directory`` (see :mod:`retentionrl.simulators.learned.checkpoint`).

        :raises CheckpointError: naming the file and the reason; an ensemble's folder names
            its member folders (load it whole with :func:`retentionrl.envs.factory.load_simulator`)."""
        if (Path(directory) / "ensemble.json").is_file():
            raise CheckpointError(
                Path(directory) / "ensemble.json",
                "this folder is an ensemble of simulators: pass "
                "one member's folder (member_0, ...) or load the whole ensemble",
            )
        state, card_dict = load_checkpoint(directory)
        try:
            card = ModelCard.from_dict(card_dict)
            model = ShopperSequenceModel(card.spec)
            model.load_state_dict(state)
        except (TypeError, KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(Path(directory) / TENSORS_FILE, f"does not match its config.json ({exc})") from None
        return cls(model, card, device)

    @property
    def days(self) -> np.ndarray:
        """Day of each shopper's current visit since their first visit."""
        return self._days

    @property
    def state(self) -> torch.Tensor:
        """GRU state of each shopper slot, ``(n, hidden_size)`` (a copy, on the device)."""
        return self._path.state

    def reset(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """``n`` new shoppers at their first visit; a ``seed`` restarts the generator. They step
        in numpy if ``n`` is at most ``small_batch``, else in torch (module docstring)."""
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if seed is not None:
            self._rng = np.random.default_rng(int(seed))
        n = int(n)
        self._path: _NumpyPath | _TorchPath = self._numpy_path if n <= self._small_batch else self._torch_path
        self._path.reset(n)
        self._days = np.zeros(n)
        self.history.reset(n)
        self._obs = self.history.features()
        return self._obs

    def replace(self, mask: np.ndarray) -> np.ndarray:
        """New shoppers (empty history, day 0) in the slots where ``mask`` is true."""
        mask = self._row_mask(mask)
        self._path.replace(mask)
        self._days[mask] = 0.0
        self.history.reset_rows(mask)
        # an empty history's features are all 0: no need to recompute the others (a copy:
        # the caller may hold the previous observation)
        obs = self._obs.copy(order="K")
        obs[mask] = 0.0
        self._obs = obs
        return self._obs

    def keep_rows(self, mask: np.ndarray) -> np.ndarray:
        """Carry on only the shoppers where ``mask`` is true (their state, history and day, in
        order); the batch shrinks to ``mask.sum()`` and stays on its path. Returns their observation."""
        mask = self._row_mask(mask)
        self._path.keep_rows(mask)
        self._days = self._days[mask]
        self.history.keep_rows(mask)
        self._obs = self._obs[mask]
        return self._obs

    def _row_mask(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != self._days.shape:
            raise ValueError(f"mask must be a bool array of shape {self._days.shape}, got {mask.dtype} {mask.shape}")
        return mask

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, VisitOutcome]:
        """One sampled visit of every shopper under flat ``actions`` (ints, shape ``(n,)``)."""
        actions = self.action_space.check(actions, self._days.shape[0])
        n = actions.shape[0]
        u = np.asarray(self._rng.random((4, n), dtype=np.float32))  # asarray: numpy's stubs say float
        z = np.asarray(self._rng.standard_normal(n, dtype=np.float32))
        return self._finish(actions, self._path.step(self._obs, actions, u, z))

    def observe(
        self,
        actions: np.ndarray,
        outcome: VisitOutcomeLike,
        gap_days: np.ndarray,
        min_gap_days: np.ndarray | None = None,
    ) -> tuple[np.ndarray, VisitOutcome]:
        """One *logged* visit of every shopper: the model state moves as in :meth:`step`, but
        the outcome is the given one (teacher forcing, to start shoppers from their history).

        :param outcome: ``click``, ``purchase``, ``redeemed``, ``spend`` arrays ``(n,)``; the
            returned outcome's coupon cost and cost of goods follow from them as in :meth:`step`.
        :param gap_days: days to the next visit; ``inf`` for churn; NaN where unknown: there
            the gap is sampled from the model's churn-or-return law given the outcome and
            that it exceeds ``min_gap_days`` (e.g. the days from the visit to the end of the log;
            default 0).
        """
        actions = self.action_space.check(actions, self._days.shape[0])
        n = actions.shape[0]
        gap = np.asarray(gap_days, dtype=np.float64)
        if gap.shape != (n,):
            raise ValueError(f"gap_days must have shape ({n},), got {gap.shape}")
        floor = np.zeros(n) if min_gap_days is None else np.floor(np.maximum(np.asarray(min_gap_days, float), 0.0))
        logged = np.array([outcome.click, outcome.purchase, outcome.redeemed, outcome.spend], dtype=np.float32)
        unknown = np.isnan(gap)
        u = np.asarray(self._rng.random(n, dtype=np.float32)) if unknown.any() else None
        sampled = self._path.observe(self._obs, actions, logged, u, floor)
        if sampled is not None:
            gap = np.where(unknown, sampled, gap)
        return self._finish(actions, np.concatenate([logged, gap[None].astype(np.float32)]).astype(np.float64))

    def _finish(self, actions: np.ndarray, drawn: np.ndarray) -> tuple[np.ndarray, VisitOutcome]:
        """Record the visit of flat ``actions`` with outcome ``drawn`` ``(5, n)`` (click,
        purchase, redeemed, spend, gap) and move on."""
        arm, coupon_index = self.action_space.decode(actions, check=False)
        click, purchase, redeemed = drawn[:3] > 0
        spend, gap = drawn[3:]
        coupon_cost, cogs = self._cost_shares.take(actions, axis=1) * spend
        churned = np.isinf(gap)
        outcome = VisitOutcome(
            click=click,
            purchase=purchase,
            redeemed=redeemed,
            spend=spend,
            coupon_cost=np.where(redeemed, coupon_cost, 0.0),
            cogs=cogs,
            gap_days=gap,
            churned=churned,
        )
        self._days += np.where(churned, 0.0, gap)
        self.history.record(arm, coupon_index, outcome, gap)
        self._obs = self.history.features()
        return self._obs, outcome
