"""The learned shopper simulator: the fitted sequence model behind the simulator interface.

:class:`LearnedSimulator` implements :class:`~retentionrl.simulators.interface.ShopperSimulator` with a
:class:`~retentionrl.simulators.learned.sequence_model.ShopperSequenceModel`. It keeps, per shopper slot, the
GRU state and the previous visit's action and outcome (on the device, or in numpy for a
small batch), and the observable history (:class:`~retentionrl.interactions.history.HistoryFeatures`,
the world's very layout, so one policy runs on both) in numpy, and where the model reads them
its ignored showings (:class:`~retentionrl.simulators.learned.exposure.IgnoredShowings`, fed to the
model after the observation, never to the policy). One
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

A visit can also be taken in halves: :meth:`LearnedSimulator.open_visit` computes the
response law (an :class:`OpenVisit`, whose :meth:`~OpenVisit.predict` gives the probabilities
of purchase and of a return within :math:`H`, :meth:`LearnedSimulator.predict`), and
:meth:`OpenVisit.close` records an outcome, the one :meth:`OpenVisit.draw` samples (that is
:meth:`~LearnedSimulator.step`, draws unchanged) or one given (what another member of a shared
:class:`~retentionrl.simulators.learned.ensemble.SimulatorEnsemble` drew).

A head the log could not teach (:class:`~retentionrl.simulators.learned.model_card.ModelCard`) uses the log's
constant rate instead of the model, and an action part the log never varied is fed to the
model as the value it was trained on.

New shoppers (:meth:`reset`, :meth:`replace`) start at their first visit from the learned
empty-history state: the simulator draws new shoppers, it never replays logged ones. A model
with latent classes (``ModelSpec.latent_classes`` = K > 1) draws each new shopper's class
first (one uniform each, before the visit's draws), and the shopper starts from that class's
state. A shopper replayed from logged visits (:meth:`~LearnedSimulator.observe`) is carried
in K copies, one per class, each accumulating the log-likelihood of the logged outcomes and
gaps; at the first call that is not ``observe`` (or at a logged visit whose gap is unknown)
one class per shopper is drawn from the posterior :math:`\\propto \\pi_z\\, p(\\text{visits}
\\mid z)` and the other copies are dropped.

A model with arm tastes (``ModelSpec.arm_taste``) carries, on either path, each shopper's
posterior log-odds of favouring each arm (:class:`~retentionrl.simulators.learned.taste.TasteBelief`):
a visit's click and purchase are drawn from the predictive mixture over the shown arm's taste,
and every recorded visit, drawn or logged, adds its evidence.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from retentionrl.interactions.history import HistoryFeatures, VisitOutcomeLike
from retentionrl.simulators.interface import ShopperSimulator, VisitOutcome
from retentionrl.simulators.learned import numpy_step
from retentionrl.simulators.learned.checkpoint import TENSORS_FILE, CheckpointError, load_checkpoint
from retentionrl.simulators.learned.exposure import IgnoredShowings
from retentionrl.simulators.learned.fused_step import FusedStep
from retentionrl.simulators.learned.hazard import sample_gap_days, survival, survival_targets
from retentionrl.simulators.learned.losses import visit_nll
from retentionrl.simulators.learned.model_card import ModelCard
from retentionrl.simulators.learned.reactivation import NEVER_REACTIVATE, ReactivationLaw
from retentionrl.simulators.learned.sequence_model import N_PREV_OUTCOMES, ShopperSequenceModel
from retentionrl.simulators.learned.taste import N_TASTE_HEADS, TasteBelief

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


class _Classes(enum.Enum):
    """Where a batch's latent classes stand (a model without classes is always ``DRAWN``)."""

    PENDING = "new shoppers, classes not drawn yet"
    OBSERVING = "logged visits being read: every class's copy of each shopper, and their likelihoods"
    DRAWN = "one class per shopper"


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


@dataclass(frozen=True)
class _TorchVisit:
    """A visit opened on the torch path: the model's inputs of its flat actions, and its
    response outputs ``(n, 6)`` and return-law input (:class:`FusedStep` workspace tensors,
    valid until the path's next advance)."""

    arm: torch.Tensor
    coupon: torch.Tensor
    offered: torch.Tensor
    out: torch.Tensor
    shared: torch.Tensor


class _TorchPath:
    """Any batch, stepped by :class:`FusedStep` on the device, where the carried GRU state,
    previous arm and previous outcome live as tensors. A visit is :meth:`open`, then
    :meth:`draw` (or :meth:`gaps` given a logged outcome, or :meth:`predict`), then
    :meth:`record` of its outcome."""

    def __init__(self, model: ShopperSequenceModel, law: _Law, device: torch.device) -> None:
        self._fused, self._law, self._device = FusedStep(model), law, device
        self._learned = torch.tensor(law.learned, device=device)
        self._rates = torch.tensor(law.rates, device=device)
        self._taste = _taste_belief(model, law, device)

    @torch.inference_mode()
    def reset(self, n: int, initial: np.ndarray) -> None:
        """``n`` new shoppers from the empty-history states ``initial`` ``(n, hidden)``."""
        model = self._fused.model
        self._state = torch.as_tensor(initial, device=self._device).clone()
        self._prev_arm = torch.full((n,), model.spec.n_arms, dtype=torch.long, device=self._device)
        self._prev_outcome = torch.zeros((n, N_PREV_OUTCOMES), device=self._device)
        if self._taste is not None:
            self._taste.reset(n)

    @torch.inference_mode()
    def replace(self, mask: np.ndarray, initial: np.ndarray) -> None:
        """New shoppers where ``mask`` is true, from the states ``initial`` ``(mask.sum(), hidden)``."""
        model = self._fused.model
        rows = torch.as_tensor(np.flatnonzero(mask), device=self._device)
        self._state.index_copy_(0, rows, torch.as_tensor(initial, device=self._device))
        self._prev_arm.index_fill_(0, rows, model.spec.n_arms)
        self._prev_outcome.index_fill_(0, rows, 0.0)
        if self._taste is not None:
            self._taste.replace(rows)

    @torch.inference_mode()
    def keep_rows(self, mask: np.ndarray) -> None:
        rows = torch.as_tensor(np.flatnonzero(mask), device=self._device)
        self._state, self._prev_arm, self._prev_outcome = (
            t.index_select(0, rows) for t in (self._state, self._prev_arm, self._prev_outcome)
        )
        if self._taste is not None:
            self._taste.keep_rows(rows)

    @property
    def state(self) -> torch.Tensor:
        return self._state.clone()

    @torch.inference_mode()
    def open(self, features: np.ndarray, actions: np.ndarray, move: bool) -> None:
        """Open the visit of flat ``actions`` (one advance of the model); the GRU state moves
        past it if ``move`` (the next state does not depend on the visit's outcome)."""
        arm, coupon, offered = (torch.as_tensor(t.take(actions), device=self._device) for t in self._law.inputs)
        out, shared, state = self._fused.advance(
            torch.as_tensor(features, device=self._device), self._prev_arm, self._prev_outcome, arm, coupon, self._state
        )
        if move:
            self._state = state
        if self._taste is not None:
            out = torch.cat([self._taste.open(out[:, :N_TASTE_HEADS], arm), out[:, N_TASTE_HEADS:]], dim=1)
        self._visit = _TorchVisit(arm, coupon, offered, out, shared)

    def _heads(self) -> torch.Tensor:
        """The open visit's click, purchase after a click, purchase without one and redeemed probabilities ``(n, 4)``."""
        return torch.where(self._learned, torch.sigmoid(self._visit.out[:, :4]), self._rates)

    @torch.inference_mode()
    def draw(self, u: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Click, purchase, redeemed (0/1), spend and gap ``(5, n)`` of the open visit, sampled
        with uniforms ``u`` ``(4, n)`` and normals ``z`` ``(n,)`` (not recorded)."""
        uniform, normal = torch.as_tensor(u, device=self._device), torch.as_tensor(z, device=self._device)
        visit = self._visit
        out, p = visit.out, self._heads()
        click = uniform[0] < p[:, 0]
        purchase = uniform[1] < torch.where(click, p[:, 1], p[:, 2])
        redeemed = purchase & visit.offered & (uniform[2] < p[:, 3])
        if self._law.spend_learned:
            spend = torch.where(
                purchase, torch.exp(out[:, 4] + torch.exp(out[:, 5]) * normal), torch.zeros_like(normal)
            )
        else:
            spend = torch.zeros_like(normal)
        drawn = [click.float(), purchase.float(), redeemed.float(), spend]
        drawn.append(sample_gap_days(self._return_logits(drawn), uniform[3]))
        return torch.stack(drawn).cpu().numpy().astype(np.float64)

    @torch.inference_mode()
    def gaps(self, logged: np.ndarray, u: np.ndarray, after_day: np.ndarray) -> np.ndarray:
        """The open visit's gaps ``(n,)`` drawn given ``logged`` click, purchase, redeemed and spend
        ``(4, n)`` and later than ``after_day`` with uniforms ``u``."""
        drawn = list(torch.as_tensor(logged, device=self._device))
        logits = self._return_logits(drawn)
        uniform, after = (torch.as_tensor(a, device=self._device) for a in (u, after_day))
        return sample_gap_days(logits, uniform, after).cpu().numpy()

    @torch.inference_mode()
    def log_likelihood(self, logged: np.ndarray, gap: np.ndarray, after_day: np.ndarray, horizon: int) -> np.ndarray:
        """Log-likelihood ``(n,)`` of the open visit's logged click, purchase, redeemed and
        spend ``logged`` ``(4, n)`` and its ``gap`` (days; ``inf`` or past ``horizon``: churn;
        NaN: no return within ``after_day`` days, censored): the fit's own per-visit NLL
        (:func:`~retentionrl.simulators.learned.losses.visit_nll`, targets as
        :func:`~retentionrl.simulators.learned.visit_data.build_visit_data` makes them) over the
        heads the logs taught (the others are the same constant for every shopper)."""
        click, purchase, redeemed, spend = (torch.as_tensor(x, device=self._device) for x in logged)
        returned = np.isfinite(gap) & (gap <= horizon)
        index, event = survival_targets(np.where(returned, gap, np.nan), ~returned & ~np.isnan(gap), after_day, horizon)
        bought = purchase > 0
        targets = {
            "click": click,
            "purchase": purchase,
            "redeemed": redeemed,
            "log_spend": torch.log(torch.where(spend > 0, spend, torch.ones_like(spend))),
            "survival_index": torch.as_tensor(index, device=self._device),
            "event": torch.as_tensor(event, device=self._device),
            "click_mask": torch.ones_like(bought),
            "redeemed_mask": bought & self._visit.offered,
            "spend_mask": bought & (spend > 0),
        }
        outputs = torch.cat([self._visit.out, self._return_logits([click, purchase, redeemed, spend])], dim=1)
        learned = self._law.learned
        counted = {
            "click": learned[0],
            "purchase": learned[1] or learned[2],
            "redeemed": learned[3],
            "spend": self._law.spend_learned,
            "return": True,
        }
        nll = visit_nll(outputs, targets)
        total = sum(torch.where(mask, value, 0.0) for head, (value, mask) in nll.items() if counted[head])
        return -torch.as_tensor(total).double().cpu().numpy()

    @torch.inference_mode()
    def predict(self) -> np.ndarray:
        """:func:`_expected_responses` of the open visit, ``(n, 2)``."""
        p = self._heads()
        flags = (torch.zeros_like(p[:, 0]), torch.ones_like(p[:, 0]))
        spend = torch.exp(self._visit.out[:, 4]) if self._law.spend_learned else flags[0]

        def returns(click: int, purchase: int, redeemed: int) -> torch.Tensor:
            drawn = [flags[click], flags[purchase], flags[redeemed], spend if purchase else flags[0]]
            return self._return_logits(drawn).clone()  # the workspace's logits: the next call overwrites them

        return _expected_responses(p, self._visit.offered, returns).cpu().numpy()

    def _return_logits(self, drawn: list[torch.Tensor]) -> torch.Tensor:
        """Return logits of the open visit given its click, purchase, redeemed and spend ``drawn``."""
        click, purchase, redeemed, spend = drawn[:4]
        redeemed_spend = torch.stack([redeemed, torch.log1p(spend / self._law.spend_scale)], dim=1)
        return self._fused.return_logits(self._visit.shared, self._visit.arm, click, purchase, redeemed_spend)

    @torch.inference_mode()
    def record(self, drawn: np.ndarray) -> None:
        """Carry the open visit's arm, coupon and outcome ``drawn`` (click, purchase, redeemed,
        spend, ...: ``(>= 4, n)``) into the next visit's inputs."""
        click, purchase, redeemed, spend = torch.as_tensor(drawn[:4], dtype=torch.float32, device=self._device)
        if self._taste is not None:
            self._taste.record(click, purchase)
        self._prev_arm = self._visit.arm
        log_spend = torch.log1p(spend / self._law.spend_scale)
        self._prev_outcome = torch.stack([self._visit.coupon, click, purchase, redeemed, log_spend], dim=1)


def _taste_belief(model: ShopperSequenceModel, law: _Law, device: torch.device) -> TasteBelief | None:
    """The shoppers' arm-taste posteriors a path carries with a model of arm tastes
    (``ModelSpec.arm_taste``), on ``device``; ``None`` without. Only the heads the logs taught
    carry evidence (the others are constants)."""
    if not model.spec.arm_taste:
        return None
    return TasteBelief(
        model.taste_prior.to(device), model.taste_shift.to(device), law.learned[0], law.learned[1] or law.learned[2]
    )


def _sigmoid(x: float) -> float:
    """:math:`\\sigma(x)`, without overflow."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _exp(x: float) -> float:
    """:math:`e^x`, ``inf`` past the largest float (as torch's ``exp``)."""
    return math.exp(x) if x < 709.0 else math.inf


_OUTCOMES = ((0, 0, 0), (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 1, 0), (1, 1, 1))
"""The six outcomes (click, purchase, redeemed) of a visit that :meth:`LearnedSimulator.predict` sums over."""


def _expected_responses(
    p: torch.Tensor, offered: torch.Tensor, return_logits: Callable[[int, int, int], torch.Tensor]
) -> torch.Tensor:
    """:meth:`LearnedSimulator.predict`'s probabilities ``(n, 2)`` of purchase and of a return
    within :math:`H` (the formulas there).

    :param p: the click, purchase after a click, purchase without one and redeemed
        probabilities ``(n, 4)`` (:math:`p_c, p_{b|1}, p_{b|0}, p_r`).
    :param offered: a coupon is offered, bool ``(n,)``.
    :param return_logits: the visit's return logits ``(n, 1 + H)`` given a 0/1 click, purchase
        and redeemed (and the spend :math:`\\hat s` of a purchase), a tensor of its own.
    """
    click = p[:, 0]
    redeem = torch.where(offered, p[:, 3], torch.zeros_like(click))
    clicked = (1.0 - click, click)
    buy = (p[:, 2], p[:, 1])  # given no click, a click
    weights = torch.stack(
        [
            clicked[c] * (buy[c] if b else 1.0 - buy[c]) * ((redeem if r else 1.0 - redeem) if b else 1.0)
            for c, b, r in _OUTCOMES
        ]
    )
    churn = survival(torch.stack([return_logits(*outcome) for outcome in _OUTCOMES]))[..., -1]  # S(H), (6, n)
    returned = (weights * (1.0 - churn)).sum(dim=0)
    return torch.stack([click * p[:, 1] + (1.0 - click) * p[:, 2], returned], dim=1)


@dataclass(frozen=True)
class _NumpyVisit:
    """A visit opened on the numpy path: the model's inputs of its flat actions and its
    response outputs ``(n, 6)`` (the return law's input stays in the step's workspace)."""

    arm: list[int]
    coupon: list[float]
    offered: list[bool]
    out: np.ndarray


class _NumpyPath:
    """A batch of a few shoppers, stepped by :class:`~retentionrl.simulators.learned.numpy_step.NumpyStep`
    on the CPU, which carries their GRU state and previous visit; each shopper's inputs and
    draws are Python floats: :class:`_TorchPath`'s law, one shopper at a time."""

    def __init__(self, model: ShopperSequenceModel, law: _Law, device: torch.device) -> None:
        self._step, self._law, self._device = numpy_step.NumpyStep(model), law, device
        self._inputs = list(zip(*(t.tolist() for t in law.inputs)))
        self._taste = _taste_belief(model, law, torch.device("cpu"))

    def reset(self, n: int, initial: np.ndarray) -> None:
        self._step.reset(n, initial)
        if self._taste is not None:
            self._taste.reset(n)

    def replace(self, mask: np.ndarray, initial: np.ndarray) -> None:
        self._step.replace(mask, initial)
        if self._taste is not None:
            self._taste.replace(torch.from_numpy(np.flatnonzero(mask)))

    def keep_rows(self, mask: np.ndarray) -> None:
        self._step.keep_rows(mask)
        if self._taste is not None:
            self._taste.keep_rows(torch.from_numpy(np.flatnonzero(mask)))

    @property
    def state(self) -> torch.Tensor:
        return torch.from_numpy(self._step.state).to(self._device)

    def open(self, features: np.ndarray, actions: np.ndarray, move: bool) -> None:
        """:meth:`_TorchPath.open`."""
        rows = [self._inputs[a] for a in actions.tolist()]
        arm, coupon, offered = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
        out = self._step.advance(features, arm, coupon, move=move)
        if self._taste is not None:
            with torch.inference_mode():
                tasted = self._taste.open(torch.from_numpy(out[:, :N_TASTE_HEADS]), torch.tensor(arm))
            out[:, :N_TASTE_HEADS] = tasted.numpy()
        self._visit = _NumpyVisit(arm, coupon, offered, out)

    def _heads(self, out: list[float]) -> list[float]:
        """:meth:`_TorchPath._heads` of one shopper's response outputs."""
        return [_sigmoid(x) if learn else rate for x, learn, rate in zip(out, self._law.learned, self._law.rates)]

    def draw(self, u: np.ndarray, z: np.ndarray) -> np.ndarray:
        """:meth:`_TorchPath.draw`."""
        visit = self._visit
        u0, u1, u2, u3 = u.tolist()
        click, purchase, redeemed, spend = [], [], [], []
        for o, u0_k, u1_k, u2_k, z_k, offered_k in zip(visit.out.tolist(), u0, u1, u2, z.tolist(), visit.offered):
            p = self._heads(o)
            clicked = u0_k < p[0]
            bought = u1_k < (p[1] if clicked else p[2])
            click.append(float(clicked))
            purchase.append(float(bought))
            redeemed.append(float(bought and offered_k and u2_k < p[3]))
            spend.append(
                numpy_step.round_float32(_exp(o[4] + _exp(o[5]) * z_k)) if bought and self._law.spend_learned else 0.0
            )
        logits = self._step.return_logits(visit.arm, click, purchase, redeemed, self._log_spend(spend))
        return np.array([click, purchase, redeemed, spend, numpy_step.sample_gap_days(logits, u3)])

    def gaps(self, logged: np.ndarray, u: np.ndarray, after_day: np.ndarray) -> np.ndarray:
        """:meth:`_TorchPath.gaps`."""
        click, purchase, redeemed, spend = logged.tolist()
        logits = self._step.return_logits(self._visit.arm, click, purchase, redeemed, self._log_spend(spend))
        return np.array(numpy_step.sample_gap_days(logits, u.tolist(), after_day.tolist()))

    def predict(self) -> np.ndarray:
        """:meth:`_TorchPath.predict`."""
        visit = self._visit
        out = visit.out.tolist()
        n = len(out)
        p = torch.tensor([self._heads(o) for o in out])
        log_spend = self._log_spend([_exp(o[4]) if self._law.spend_learned else 0.0 for o in out])

        def returns(click: int, purchase: int, redeemed: int) -> torch.Tensor:
            spend = log_spend if purchase else [0.0] * n
            return torch.from_numpy(
                self._step.return_logits(visit.arm, [click] * n, [purchase] * n, [redeemed] * n, spend)
            )

        return _expected_responses(p, torch.tensor(visit.offered), returns).numpy()

    def record(self, drawn: np.ndarray) -> None:
        """:meth:`_TorchPath.record`."""
        click, purchase, redeemed, spend = drawn[:4].tolist()
        if self._taste is not None:
            with torch.inference_mode():
                self._taste.record(torch.tensor(click), torch.tensor(purchase))
        self._step.record(self._visit.arm, self._visit.coupon, click, purchase, redeemed, self._log_spend(spend))

    def _log_spend(self, spend: list[float]) -> list[float]:
        """:math:`\\log(1 + spend / S)` of each shopper's spend."""
        return [math.log1p(s / self._law.spend_scale) for s in spend]


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
        self._exposure = IgnoredShowings(self.action_space.n_arms) if card.spec.exposure_input else None
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
        with torch.inference_mode():
            empty = self.model.empty_state.detach().float().cpu().numpy()
            offsets = self.model.class_offset.detach().float().cpu().numpy() if card.spec.latent_classes > 1 else None
            log_prior = self.model.class_log_prior().detach().double().cpu().numpy()
        self._empty, self._class_offsets, self._class_log_prior = empty, offsets, log_prior
        self._classes, self._class_loglik = _Classes.DRAWN, np.zeros((0, 1))
        self._rng = np.random.default_rng(0)
        self.reset(0)

    def _initial_states(self, n: int, draw: bool = True) -> np.ndarray:
        """Empty-history states of ``n`` new shoppers ``(n, hidden)``: the learned one, or with
        latent classes and ``draw`` each shopper's class's, the class drawn from its share
        (one uniform per shopper from the simulator's generator; no draw without classes)."""
        if self._class_offsets is None or not draw:
            return np.repeat(self._empty[None], n, axis=0)
        return self._empty + self._class_offsets[self._draw_classes(self._class_log_prior, n)]

    def _draw_classes(self, log_weights: np.ndarray, n: int) -> np.ndarray:
        """One class per shopper with probabilities proportional to ``exp(log_weights)``
        (``(K,)`` shared or ``(n, K)`` per shopper), by inverse CDF on one uniform each."""
        w = np.exp(log_weights - np.max(log_weights, axis=-1, keepdims=True))
        cdf = np.cumsum(np.broadcast_to(w, (n, w.shape[-1])), axis=1)
        u = self._rng.random(n)[:, None] * cdf[:, -1:]
        return np.minimum((u >= cdf).sum(axis=1), w.shape[-1] - 1)

    def _resolve_classes(self) -> None:
        """Give every shopper of a pending batch its class before anything but :meth:`observe`
        reads the model: drawn from the shares, or after logged visits from the posterior
        :math:`P(z \\mid \\text{history}) \\propto \\pi_z\\, p(\\text{history} \\mid z)`, keeping that
        class's copy of each shopper (module docstring)."""
        if self._classes is _Classes.PENDING:
            n = self._days.shape[0]
            self._path.reset(n, self._initial_states(n))
        elif self._classes is _Classes.OBSERVING:
            self._keep_class(self._draw_classes(self._class_log_prior + self._class_loglik, self._days.shape[0]))
        self._classes = _Classes.DRAWN

    def _every_class(self, n: int) -> np.ndarray:
        """Start states of every class's copy of ``n`` shoppers, shopper-major ``(n * K, hidden)``."""
        assert self._class_offsets is not None, "only a model with latent classes has copies"
        k = self._class_offsets.shape[0]
        return self._empty + self._class_offsets[np.tile(np.arange(k), n)]

    def _copies(self) -> int:
        """Rows the path holds per shopper: every class's while logged visits are read, else 1."""
        return self._class_loglik.shape[1] if self._classes is _Classes.OBSERVING else 1

    def _keep_class(self, chosen: np.ndarray) -> None:
        """Keep each shopper's copy of class ``chosen`` ``(n,)`` (the path holds shopper-major copies)."""
        n, k = self._class_loglik.shape
        keep = np.zeros(n * k, dtype=bool)
        keep[np.arange(n) * k + chosen] = True
        self._path.keep_rows(keep)
        self._classes = _Classes.DRAWN

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
    def reactivation(self) -> ReactivationLaw:
        """The law by which churned (dormant) shoppers return (:mod:`retentionrl.simulators.learned.reactivation`);
        a card without one gives the law under which they never do."""
        return ReactivationLaw(**self.card.reactivation) if self.card.reactivation else NEVER_REACTIVATE

    @property
    def days(self) -> np.ndarray:
        """Day of each shopper's current visit since their first visit."""
        return self._days

    @property
    def state(self) -> torch.Tensor:
        """GRU state of each shopper slot, ``(n, hidden_size)`` (a copy, on the device)."""
        self._resolve_classes()
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
        # with latent classes the classes are drawn lazily: from their shares at the first
        # visit, or from their posterior given a logged history (observe)
        self._classes = _Classes.PENDING if self._class_offsets is not None else _Classes.DRAWN
        self._path.reset(n, self._initial_states(n, draw=False))
        self._open: OpenVisit | None = None
        self._days = np.zeros(n)
        self.history.reset(n)
        if self._exposure is not None:
            self._exposure.reset(n)
        self._obs = self.history.features()
        return self._obs

    def replace(self, mask: np.ndarray) -> np.ndarray:
        """New shoppers (empty history, day 0) in the slots where ``mask`` is true."""
        mask = self._row_mask(mask)
        self._open = None
        if self._classes is _Classes.OBSERVING:  # new shoppers whose logged visits are still to come
            k = self._copies()
            self._path.replace(np.repeat(mask, k), self._every_class(int(mask.sum())))
            self._class_loglik[mask] = 0.0
        else:
            self._resolve_classes()
            self._path.replace(mask, self._initial_states(int(mask.sum())))
        self._days[mask] = 0.0
        self.history.reset_rows(mask)
        if self._exposure is not None:
            self._exposure.reset_rows(mask)
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
        self._open = None
        self._resolve_classes()
        self._path.keep_rows(mask)
        self._days = self._days[mask]
        self.history.keep_rows(mask)
        if self._exposure is not None:
            self._exposure.keep_rows(mask)
        self._obs = self._obs[mask]
        return self._obs

    def _row_mask(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != self._days.shape:
            raise ValueError(f"mask must be a bool array of shape {self._days.shape}, got {mask.dtype} {mask.shape}")
        return mask

    def open_visit(self, actions: np.ndarray) -> OpenVisit:
        """The visit of every shopper under flat ``actions`` (ints, shape ``(n,)``), its
        response law computed and its outcome not yet drawn (:class:`OpenVisit`). The GRU
        state moves past the visit now (the next state does not depend on the outcome), so
        the visit must be closed before the simulator is used again."""
        actions = self.action_space.check(actions, self._days.shape[0])
        self._resolve_classes()
        self._path.open(self._model_features(), actions, move=True)
        self._open = OpenVisit(self, actions)
        return self._open

    def predict(self, actions: np.ndarray) -> np.ndarray:
        """The model's probabilities that each shopper buys and that they come back within
        the horizon :math:`H` at their current visit under flat ``actions``, ``(n, 2)``
        float32: nothing drawn, nothing moved.

        With the heads' probabilities of click :math:`p_c`, purchase after a click
        :math:`p_{b|1}` and without one :math:`p_{b|0}`, and redemption
        :math:`\\rho = p_r` where a coupon is offered (else 0), as :meth:`step` draws them:

        .. math::

            P(\\text{purchase}) = p_c\\, p_{b|1} + (1 - p_c)\\, p_{b|0}, \\qquad
            P(\\text{return within } H) = \\sum_{c, b, r} P(c, b, r)\\,
                \\big(1 - S(H \\mid c, b, r, \\hat s\\,b)\\big)

        with :math:`P(c, b, r) = p_c^c (1 - p_c)^{1 - c}\\, p_{b|c}^b (1 - p_{b|c})^{1 - b}\\,
        (\\rho^r (1 - \\rho)^{1 - r})^b` over the six outcomes (no redemption without a
        purchase) and :math:`S(H \\mid \\cdot)` the churn probability of the churn-or-return law
        given the outcome (:func:`retentionrl.simulators.learned.hazard.survival`): the
        expectation over click, purchase and redemption is exact, and a purchase's spend enters
        at its median :math:`\\hat s = e^{\\mu}` (0 where the spend head is not learned), not
        integrated over the log-normal.
        """
        actions = self.action_space.check(actions, self._days.shape[0])
        self._open = None  # the path's workspace holds this prediction now
        self._resolve_classes()
        self._path.open(self._model_features(), actions, move=False)
        return self._path.predict()

    def step(self, actions: np.ndarray, *, memory_gap: float | None = None) -> tuple[np.ndarray, VisitOutcome]:
        """One sampled visit of every shopper under flat ``actions`` (ints, shape ``(n,)``);
        ``memory_gap`` as in :meth:`OpenVisit.close`."""
        visit = self.open_visit(actions)
        return visit.close(visit.draw(), memory_gap=memory_gap)

    def observe(
        self,
        actions: np.ndarray,
        outcome: VisitOutcomeLike,
        gap_days: np.ndarray,
        min_gap_days: np.ndarray | None = None,
        *,
        memory_gap: float | None = None,
    ) -> tuple[np.ndarray, VisitOutcome]:
        """One *logged* visit of every shopper: the model state moves as in :meth:`step`, but
        the outcome is the given one (teacher forcing, to start shoppers from their history).

        :param outcome: ``click``, ``purchase``, ``redeemed``, ``spend`` arrays ``(n,)``; the
            returned outcome's coupon cost and cost of goods follow from them as in :meth:`step`.
        :param gap_days: days to the next visit; ``inf`` for churn; NaN where unknown: there
            the gap is sampled from the model's churn-or-return law given the outcome and
            that it exceeds ``min_gap_days`` (e.g. the days from the visit to the end of the log;
            default 0).
        :param memory_gap: as in :meth:`OpenVisit.close`.
        """
        actions = self.action_space.check(actions, self._days.shape[0])
        n = actions.shape[0]
        gap = np.asarray(gap_days, dtype=np.float64)
        if gap.shape != (n,):
            raise ValueError(f"gap_days must have shape ({n},), got {gap.shape}")
        floor = np.zeros(n) if min_gap_days is None else np.floor(np.maximum(np.asarray(min_gap_days, float), 0.0))
        logged = np.array([outcome.click, outcome.purchase, outcome.redeemed, outcome.spend], dtype=np.float32)
        if self._classes is _Classes.PENDING:  # a logged history starts: every class's copy of each shopper
            k = self._class_log_prior.size
            self._path = self._torch_path
            self._path.reset(n * k, self._every_class(n))
            self._class_loglik, self._classes = np.zeros((n, k)), _Classes.OBSERVING
        copies = self._copies()
        self._path.open(np.repeat(self._model_features(), copies, axis=0), np.repeat(actions, copies), move=True)
        unknown = np.isnan(gap)
        if copies > 1:
            self._class_loglik += self._torch_path.log_likelihood(  # observing is on the torch path
                np.repeat(logged, copies, axis=1), np.repeat(gap, copies), np.repeat(floor, copies), self.horizon_days
            ).reshape(n, copies)
        if unknown.any():  # an unknown gap ends what the log says: the classes are drawn first
            chosen = self._draw_classes(self._class_log_prior + self._class_loglik, n) if copies > 1 else None
            u = np.asarray(self._rng.random(n, dtype=np.float32))
            drawn_gaps = self._path.gaps(
                np.repeat(logged, copies, axis=1), np.repeat(u, copies), np.repeat(floor, copies)
            ).reshape(n, copies)
            gap = np.where(unknown, drawn_gaps[np.arange(n), 0 if chosen is None else chosen], gap)
        else:
            chosen = None
        drawn = np.concatenate([logged, gap[None].astype(np.float32)]).astype(np.float64)
        result = self._close(actions, drawn, memory_gap)
        if chosen is not None:
            self._keep_class(chosen)
        return result

    def _draw(self) -> np.ndarray:
        """:meth:`OpenVisit.draw`: uniforms ``(4, n)`` then normals ``(n,)`` from the generator."""
        n = self._days.shape[0]
        u = np.asarray(self._rng.random((4, n), dtype=np.float32))  # asarray: numpy's stubs say float
        z = np.asarray(self._rng.standard_normal(n, dtype=np.float32))
        return self._path.draw(u, z)

    def _close(
        self, actions: np.ndarray, drawn: np.ndarray, memory_gap: float | None = None
    ) -> tuple[np.ndarray, VisitOutcome]:
        """Record the open visit of flat ``actions`` with outcome ``drawn`` ``(5, n)`` (click,
        purchase, redeemed, spend, gap) and move on (``memory_gap``: :meth:`OpenVisit.close`)."""
        self._open = None
        self._path.record(np.repeat(drawn, self._copies(), axis=1))
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
        if memory_gap is None:
            remembered = gap
            self._days += np.where(churned, 0.0, gap)
        else:
            remembered = np.where(churned, float(memory_gap), gap)
            self._days += remembered
        self.history.record(arm, coupon_index, outcome, remembered)
        if self._exposure is not None:
            self._exposure.record(arm, click, purchase)
        self._obs = self.history.features()
        return self._obs, outcome

    def _model_features(self) -> np.ndarray:
        """The model's features :math:`x_k`: the observation, then the ignored showings where
        the model reads them (``ModelSpec.exposure_input``)."""
        if self._exposure is None:
            return self._obs
        return np.concatenate([self._obs, self._exposure.features()], axis=1)


class OpenVisit:
    """A visit of every shopper of a :class:`LearnedSimulator` whose response law is
    computed and whose outcome is not yet drawn nor recorded (:meth:`LearnedSimulator.open_visit`):
    :meth:`predict` and :meth:`draw` read it, :meth:`close` records an outcome, drawn by
    :meth:`draw` or given (an ensemble records every member's visit with the outcome one
    member drew: :class:`~retentionrl.simulators.learned.ensemble.SimulatorEnsemble`).
    :meth:`LearnedSimulator.step` is ``close(draw())``. Valid until it is closed or the
    simulator is used otherwise (``RuntimeError`` then).
    """

    def __init__(self, simulator: LearnedSimulator, actions: np.ndarray) -> None:
        self._simulator = simulator
        self.actions = actions
        """The visit's flat actions, checked."""

    def predict(self) -> np.ndarray:
        """:meth:`LearnedSimulator.predict` of this visit, ``(n, 2)``."""
        return self._live()._path.predict()

    def draw(self) -> np.ndarray:
        """Click, purchase, redeemed (0/1), spend and gap ``(5, n)`` sampled from the model
        (module docstring) with the simulator's generator; nothing recorded."""
        return self._live()._draw()

    def close(self, drawn: np.ndarray, *, memory_gap: float | None = None) -> tuple[np.ndarray, VisitOutcome]:
        """Record outcome ``drawn`` ``(5, n)`` (as :meth:`draw` returns it) and move every
        shopper to their next visit: the observations and the outcome, as
        :meth:`LearnedSimulator.step` returns them.

        :param memory_gap: where the visit ends in churn, the shopper's history (and day)
            records a gap of this many days instead of none, so that the shopper carries on
            with their memory when they come back (the holdout forecast enters a dormancy
            spell as :math:`H` days: :mod:`retentionrl.simulators.fidelity.holdout_forecast`); the
            outcome still reads churn. ``None``: a churned shopper's history is final.
        """
        return self._live()._close(self.actions, drawn, memory_gap)

    def _live(self) -> LearnedSimulator:
        """The simulator, while this visit is its open one."""
        if self._simulator._open is not self:
            raise RuntimeError("this visit is closed (or the simulator has been used since it was opened)")
        return self._simulator
