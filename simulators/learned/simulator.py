"""The learned shopper simulator: the fitted sequence model behind the simulator interface.

:class:`LearnedSimulator` implements :class:`~retentionrl.simulators.interface.ShopperSimulator` with a
:class:`~retentionrl.simulators.learned.sequence_model.ShopperSequenceModel`. It keeps, per shopper slot, the
GRU state and the previous visit's action and outcome on the device, and the observable
history (:class:`~retentionrl.interactions.history.HistoryFeatures`, the world's very layout, so one
policy runs on both) in numpy. One :meth:`~LearnedSimulator.step` of ``n`` shoppers is one
GRU cell and the heads, with the model's weights folded for speed
(:class:`~retentionrl.simulators.learned.fused_step.FusedStep`): O(1) in history length.

Outcomes are *sampled* from the heads with the simulator's seeded ``torch.Generator``
(``u`` uniforms, ``z`` a standard normal, :math:`\\sigma` the logistic function):

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

from pathlib import Path

import numpy as np
import torch

from retentionrl.interactions.history import HistoryFeatures, VisitOutcomeLike
from retentionrl.simulators.learned.checkpoint import TENSORS_FILE, CheckpointError, load_checkpoint
from retentionrl.simulators.learned.fused_step import FusedStep
from retentionrl.simulators.learned.hazard import sample_gap_days
from retentionrl.simulators.interface import ShopperSimulator, VisitOutcome
from retentionrl.simulators.learned.model_card import ModelCard
from retentionrl.simulators.learned.sequence_model import N_PREV_OUTCOMES, ShopperSequenceModel


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


class LearnedSimulator(ShopperSimulator):
    """Shoppers stepped by a fitted sequence model (see the module docstring).

    :param model: the fitted model (moved to ``device``, put in eval mode).
    :param card: its model card (action map, spend scale, heads learned).
    :param device: ``auto``, ``cpu`` or ``cuda``.
    """

    def __init__(self, model: ShopperSequenceModel, card: ModelCard, device: str | torch.device = "auto") -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self._fused = FusedStep(self.model)
        self.card = card
        self.action_space = card.action_map.space
        self.horizon_days = int(card.spec.horizon_days)
        self.history = HistoryFeatures(self.action_space, self.horizon_days, spend_scale=card.spend_scale)
        self.observation_names = self.history.names
        if list(self.observation_names) != list(card.feature_names):
            raise ValueError(f"model features {card.feature_names} differ from the observation {self.observation_names}")
        self._margins = np.asarray(card.gross_margins, dtype=np.float64)
        if self._margins.shape != (self.action_space.n_arms,):
            raise ValueError(f"{self._margins.size} gross margins for {self.action_space.n_arms} arms")
        levels = np.asarray(self.action_space.coupon_levels)
        self._coupon_scaled = levels / (levels[-1] if levels[-1] > 0 else 1.0)
        self._levels = levels
        head_learned = [card.learned(h) for h in ("click", "purchase", "purchase", "redeemed")]
        self._learned = torch.tensor(head_learned, device=self.device)
        self._rates = torch.tensor([card.rate(h) for h in ("click", "purchase", "purchase", "redeemed")],
                                   device=self.device)
        self._spend_learned = card.learned("spend")
        self._generator = torch.Generator(self.device)
        self._generator.manual_seed(0)
        self.reset(0)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "auto") -> LearnedSimulator:
        """The simulator saved in ``directory`` (see :mod:`retentionrl.simulators.learned.checkpoint`).

        :raises CheckpointError: naming the file and the reason; an ensemble's folder names
            its member folders (load it whole with :func:`retentionrl.envs.factory.load_simulator`)."""
        if (Path(directory) / "ensemble.json").is_file():
            raise CheckpointError(Path(directory) / "ensemble.json", "this folder is an ensemble of simulators: pass "
                                  "one member's folder (member_0, ...) or load the whole ensemble")
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
        """GRU state of each shopper slot, ``(n, hidden_size)`` (a copy)."""
        return self._state.clone()

    def reset(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """``n`` new shoppers at their first visit; a ``seed`` restarts the generator."""
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if seed is not None:
            self._generator.manual_seed(int(seed))
        n = int(n)
        with torch.inference_mode():
            self._state = self.model.empty_state.expand(n, -1).clone()
            self._prev_arm = torch.full((n,), self.action_space.n_arms, dtype=torch.long, device=self.device)
            self._prev_outcome = torch.zeros((n, N_PREV_OUTCOMES), device=self.device)
        self._days = np.zeros(n)
        self.history.reset(n)
        self._obs = self.history.features()
        return self._obs

    def replace(self, mask: np.ndarray) -> np.ndarray:
        """New shoppers (empty history, day 0) in the slots where ``mask`` is true."""
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != self._days.shape:
            raise ValueError(f"mask must be a bool array of shape {self._days.shape}, got {mask.dtype} {mask.shape}")
        with torch.inference_mode():
            rows = torch.as_tensor(np.flatnonzero(mask), device=self.device)
            self._state.index_copy_(0, rows, self.model.empty_state.expand(rows.shape[0], -1))
            self._prev_arm.index_fill_(0, rows, self.action_space.n_arms)
            self._prev_outcome.index_fill_(0, rows, 0.0)
        self._days[mask] = 0.0
        self.history.reset_rows(mask)
        # an empty history's features are all 0: no need to recompute the others (a copy:
        # the caller may hold the previous observation)
        obs = self._obs.copy(order="K")
        obs[mask] = 0.0
        self._obs = obs
        return self._obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, VisitOutcome]:
        """One sampled visit of every shopper under flat ``actions`` (ints, shape ``(n,)``)."""
        arm, coupon_index, arm_t, coupon_t = self._action_inputs(actions)
        with torch.inference_mode():
            response, shared = self._advance(arm_t, coupon_t)
            drawn = self._sample(response, shared, arm_t,
                                 torch.as_tensor(self._levels[coupon_index] > 0, device=self.device))
        return self._finish(arm, coupon_index, arm_t, coupon_t, drawn)

    def observe(
        self, actions: np.ndarray, outcome: VisitOutcomeLike, gap_days: np.ndarray, min_gap_days: np.ndarray | None = None
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
        arm, coupon_index, arm_t, coupon_t = self._action_inputs(actions)
        n = arm.shape[0]
        gap = np.asarray(gap_days, dtype=np.float64)
        if gap.shape != (n,):
            raise ValueError(f"gap_days must have shape ({n},), got {gap.shape}")
        floor = np.zeros(n) if min_gap_days is None else np.floor(np.maximum(np.asarray(min_gap_days, float), 0.0))
        with torch.inference_mode():
            _, shared = self._advance(arm_t, coupon_t)
            drawn = [torch.as_tensor(np.asarray(v, dtype=np.float32), device=self.device)
                     for v in (outcome.click, outcome.purchase, outcome.redeemed, outcome.spend)]
            unknown = np.isnan(gap)
            if unknown.any():
                u = torch.rand(n, generator=self._generator, device=self.device)
                sampled = sample_gap_days(self._return_logits(shared, arm_t, drawn), u,
                                          torch.as_tensor(floor, device=self.device))
                gap = np.where(unknown, sampled.cpu().numpy().astype(np.float64), gap)
            drawn.append(torch.as_tensor(gap, dtype=torch.float32, device=self.device))
        return self._finish(arm, coupon_index, arm_t, coupon_t, drawn)

    def _action_inputs(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]:
        """(arm, coupon index) of checked flat ``actions``, and the model's arm and coupon inputs."""
        n = self._days.shape[0]
        arm, coupon_index = self.action_space.decode(self.action_space.check(actions, n), check=False)
        card = self.card
        arm_in = arm if card.action_inputs["arm"] else np.full(n, card.fixed_arm)
        coupon_in = self._coupon_scaled[coupon_index] if card.action_inputs["coupon"] else np.full(n, card.fixed_coupon)
        arm_t = torch.as_tensor(arm_in, device=self.device)
        coupon_t = torch.as_tensor(coupon_in, dtype=torch.float32, device=self.device)
        return arm, coupon_index, arm_t, coupon_t

    def _advance(self, arm_t: torch.Tensor, coupon_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Response outputs and shared head layer of this visit; moves the GRU state past it."""
        response, shared, self._state = self._fused.advance(
            torch.as_tensor(self._obs, device=self.device), self._prev_arm, self._prev_outcome, arm_t, coupon_t,
            self._state)
        return response, shared

    def _return_logits(self, shared: torch.Tensor, arm: torch.Tensor, drawn: list[torch.Tensor]) -> torch.Tensor:
        """Return logits given the visit's arm input and its click, purchase, redeemed and spend ``drawn``."""
        click, purchase, redeemed, spend = drawn[:4]
        redeemed_spend = torch.stack([redeemed, torch.log1p(spend / self.card.spend_scale)], dim=1)
        return self._fused.return_logits(shared, arm, click, purchase, redeemed_spend)

    def _finish(self, arm: np.ndarray, coupon_index: np.ndarray, arm_t: torch.Tensor, coupon_t: torch.Tensor,
                drawn: list[torch.Tensor]) -> tuple[np.ndarray, VisitOutcome]:
        """Record the visit's outcome ``drawn`` (click, purchase, redeemed, spend, gap) and move on."""
        with torch.inference_mode():
            self._prev_arm = arm_t
            self._prev_outcome = torch.stack([coupon_t, *drawn[:3], torch.log1p(drawn[3] / self.card.spend_scale)], dim=1)
            click, purchase, redeemed, spend, gap = torch.stack(drawn).cpu().numpy().astype(np.float64)
        churned = np.isinf(gap)
        coupon = self._levels[coupon_index]
        outcome = VisitOutcome(
            click=click > 0, purchase=purchase > 0, redeemed=redeemed > 0, spend=spend,
            coupon_cost=np.where(redeemed > 0, spend * coupon, 0.0), cogs=(1.0 - self._margins[arm]) * spend,
            gap_days=gap, churned=churned,
        )
        self._days += np.where(churned, 0.0, gap)
        self.history.record(arm, coupon_index, outcome, gap)
        self._obs = self.history.features()
        return self._obs, outcome

    def _sample(self, out: torch.Tensor, shared: torch.Tensor, arm: torch.Tensor, offered: torch.Tensor
                ) -> list[torch.Tensor]:
        """Click, purchase, redeemed (0/1 floats), spend and gap days of response outputs
        ``out``; the gap given the drawn outcome, the arm input and the shared layer ``shared``."""
        n = out.shape[0]
        u = torch.rand((4, n), generator=self._generator, device=self.device)
        z = torch.randn(n, generator=self._generator, device=self.device)
        p = torch.where(self._learned, torch.sigmoid(out[:, :4]), self._rates)
        click = u[0] < p[:, 0]
        purchase = u[1] < torch.where(click, p[:, 1], p[:, 2])
        redeemed = purchase & offered & (u[2] < p[:, 3])
        if self._spend_learned:
            spend = torch.where(purchase, torch.exp(out[:, 4] + torch.exp(out[:, 5]) * z), torch.zeros_like(z))
        else:
            spend = torch.zeros_like(z)
        drawn = [click.float(), purchase.float(), redeemed.float(), spend]
        drawn.append(sample_gap_days(self._return_logits(shared, arm, drawn), u[3]))
        return drawn
