"""Logged visits -> the sequence model's inputs and targets, and padded windows of them.

:func:`build_visit_data` turns a visit table with trajectory columns into flat per-visit
arrays (trajectories contiguous, in order): the inputs of
:class:`~retentionrl.simulators.learned.sequence_model.VisitInputs` and the targets and masks of every head.

=================  ===================================================  =======================
head               target                                               trained on visits with
=================  ===================================================  =======================
click              ``clicked``                                          any click in the log
purchase           ``purchased`` (logit chosen by ``clicked``)          all
redeemed           ``redeemed``                                         a purchase and a coupon
spend              :math:`\\log` ``spend``                               a purchase, spend > 0
return             survival index and event (:mod:`retentionrl.simulators.learned.hazard`)  all
=================  ===================================================  =======================

Training cuts each trajectory into windows of at most ``window`` visits; every window
starts from the empty-history state, while the observable features carry what came before.

:func:`gross_margins` estimates the gross margin of each arm from the logged spend and cost
of goods: what the simulator charges as cost of goods on the spend it draws.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch

from retentionrl.interactions.action_map import ActionMap
from retentionrl.interactions.replay import history_features_from_visits
from retentionrl.simulators.learned.exposure import ignored_showings_from_visits
from retentionrl.simulators.learned.hazard import survival_targets
from retentionrl.simulators.learned.sequence_model import VisitInputs

DAY_NS = 86_400 * 10**9
HEADS: tuple[str, ...] = ("click", "purchase", "redeemed", "spend", "return")
TARGETS: tuple[str, ...] = (
    "click",
    "purchase",
    "redeemed",
    "log_spend",
    "survival_index",
    "event",
    "click_mask",
    "redeemed_mask",
    "spend_mask",
)
"""Fields of :class:`VisitData` the losses read."""


@dataclass
class VisitData:
    """Per-visit arrays, shape ``(n_visits, ...)``; see the module docstring."""

    features: np.ndarray
    prev_arm: np.ndarray
    prev_outcome: np.ndarray
    arm: np.ndarray
    coupon: np.ndarray
    outcome: np.ndarray
    click: np.ndarray
    purchase: np.ndarray
    redeemed: np.ndarray
    log_spend: np.ndarray
    survival_index: np.ndarray
    event: np.ndarray
    click_mask: np.ndarray
    redeemed_mask: np.ndarray
    spend_mask: np.ndarray

    def __len__(self) -> int:
        return self.arm.shape[0]

    def take(self, rows: np.ndarray) -> VisitData:
        """The visits at ``rows`` (whole trajectories, in order, to keep them contiguous)."""
        return VisitData(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def to_tensors(self, device: torch.device) -> dict[str, torch.Tensor]:
        """Every array as a tensor on ``device``."""
        return {f.name: torch.as_tensor(getattr(self, f.name), device=device) for f in fields(self)}

    def support(self) -> dict[str, int]:
        """Training examples of each head (see the module docstring)."""
        return {
            "click": int(self.click_mask.sum()),
            "purchase": len(self),
            "redeemed": int(self.redeemed_mask.sum()),
            "spend": int(self.spend_mask.sum()),
            "return": len(self),
        }


def build_visit_data(
    visits: pd.DataFrame,
    action_map: ActionMap,
    log_end: pd.Timestamp,
    horizon_days: int,
    spend_scale: float,
    *,
    exposure: bool = False,
) -> VisitData:
    """Inputs and targets of every visit of ``visits`` (with trajectory columns); with
    ``exposure`` the features end with the ignored showings of every arm
    (:mod:`retentionrl.simulators.learned.exposure`, ``ModelSpec.exposure_input``)."""
    n_arms = action_map.space.n_arms
    levels = np.asarray(action_map.space.coupon_levels)
    coupon_scale = levels[-1] if levels[-1] > 0 else 1.0
    action, logged = action_map.encode(visits)
    arm, coupon_index = action_map.space.decode(action)
    arm = np.where(logged, arm, n_arms)
    coupon = np.where(logged, levels[coupon_index] / coupon_scale, 0.0).astype(np.float32)
    click = visits["clicked"].to_numpy(dtype=np.float32)
    purchase = visits["purchased"].to_numpy(dtype=np.float32)
    redeemed = visits["redeemed"].to_numpy(dtype=np.float32)
    spend = visits["spend"].to_numpy(dtype=np.float64)
    first = visits["visit_index"].to_numpy() == 0
    outcome = np.stack([coupon, click, purchase, redeemed, np.log1p(spend / spend_scale)], axis=1).astype(np.float32)
    prev_outcome = np.roll(outcome, 1, axis=0)
    prev_outcome[first] = 0.0
    prev_arm = np.where(first, n_arms, np.roll(arm, 1))
    observed = (pd.Timestamp(log_end).value - visits["start"].to_numpy().view("int64")) / DAY_NS
    survival_index, event = survival_targets(
        visits["gap_days"].to_numpy(dtype=np.float64), visits["churned"].to_numpy(dtype=bool), observed, horizon_days
    )
    bought = purchase > 0
    features = history_features_from_visits(visits, action_map, horizon_days, spend_scale)
    if exposure:
        ignored = ignored_showings_from_visits(arm, (click <= 0) & ~bought, first, n_arms)
        features = np.concatenate([features, ignored], axis=1)
    return VisitData(
        features=features,
        prev_arm=prev_arm.astype(np.int64),
        prev_outcome=prev_outcome,
        arm=arm.astype(np.int64),
        coupon=coupon,
        outcome=outcome[:, 1:],
        click=click,
        purchase=purchase,
        redeemed=redeemed,
        log_spend=np.log(np.where(spend > 0, spend, 1.0)).astype(np.float32),
        survival_index=survival_index,
        event=event,
        click_mask=np.full(len(visits), bool(click.any())),
        redeemed_mask=bought & (coupon > 0),
        spend_mask=bought & (spend > 0),
    )


def gross_margins(visits: pd.DataFrame, action_map: ActionMap) -> np.ndarray:
    """Gross margin :math:`m_a` of each arm :math:`a`, float64 ``(n_arms,)``:

    .. math:: m_a = \\frac{\\sum_{v \\in V_a} (\\text{spend}_v - \\text{cogs}_v)}
                         {\\sum_{v \\in V_a} \\text{spend}_v}

    over the visits :math:`V_a` whose logged action recommended arm :math:`a` (a visit
    without a purchase adds 0 to both sums, so these are sums over purchases). An arm with
    no spend gets the pooled margin, the same ratio over every visit (with or without a
    logged action); with no spend in the log at all, or no cost of goods recorded (``cogs``
    all 0: :attr:`retentionrl.interactions.io.EventLog.records_cogs` is False), every margin is 1.
    """
    n_arms = action_map.space.n_arms
    spend = visits["spend"].to_numpy(dtype=np.float64)
    gross = spend - visits["cogs"].to_numpy(dtype=np.float64)
    total = spend.sum()
    pooled = gross.sum() / total if total > 0 else 1.0
    action, logged = action_map.encode(visits)
    arm, _ = action_map.space.decode(action)
    arm_spend = np.bincount(arm[logged], spend[logged], n_arms)
    arm_gross = np.bincount(arm[logged], gross[logged], n_arms)
    return np.divide(arm_gross, arm_spend, out=np.full(n_arms, float(pooled)), where=arm_spend > 0)


def trajectory_bounds(visits: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """First row and length of each trajectory of a visit table (contiguous trajectories)."""
    trajectory = visits["trajectory_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, trajectory[1:] != trajectory[:-1]]) if len(trajectory) else np.array([], int)
    return starts, np.diff(np.r_[starts, len(trajectory)])


def windows(starts: np.ndarray, lengths: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut trajectories (first row, length) into windows of at most ``window`` visits."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    pieces = -(-lengths // window)
    owner = np.repeat(np.arange(len(starts)), pieces)
    offset = (np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces)) * window
    return starts[owner] + offset, np.minimum(lengths[owner] - offset, window)


def batch_order(n_windows: int, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
    """Window ids in shuffled batches (by ``generator``, so a seed fixes them).

    Batches are uniformly random: grouping windows of similar length would save padding
    but bias each batch, since a trajectory's length says how it ended (churn).
    """
    perm = torch.randperm(n_windows, generator=generator).numpy()
    return [perm[i : i + batch_size] for i in range(0, n_windows, batch_size)]


def gather_batch(
    data: dict[str, torch.Tensor], win_start: np.ndarray, win_len: np.ndarray
) -> tuple[VisitInputs, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Inputs of windows padded to ``(batch, time)``, their lengths, the mask of real visits,
    and the targets of the real visits, flattened in the mask's order."""
    device = data["arm"].device
    steps = np.arange(int(win_len.max()))
    valid = steps[None, :] < win_len[:, None]
    rows = torch.as_tensor(np.where(valid, win_start[:, None] + steps[None, :], win_start[:, None]), device=device)
    inputs = VisitInputs(*(data[f][rows] for f in ("features", "prev_arm", "prev_outcome", "arm", "coupon", "outcome")))
    valid_t = torch.as_tensor(valid, device=device)
    flat_rows = rows[valid_t]
    targets = {name: tensor[flat_rows] for name, tensor in data.items() if name in TARGETS}
    return inputs, torch.as_tensor(win_len, dtype=torch.int64), valid_t, targets
