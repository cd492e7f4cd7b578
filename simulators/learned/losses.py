"""Masked negative log-likelihoods of the sequence model's heads.

For head outputs :math:`o` (:data:`~retentionrl.simulators.learned.sequence_model.HEAD_LAYOUT`) and a padded
batch of visits, each head's loss is a sum over the visits its mask selects
(:mod:`retentionrl.simulators.learned.visit_data`; padding already dropped), returned with the count so that means are exact over any
number of batches:

==========  =====================================================================================
head        negative log-likelihood of one visit
==========  =====================================================================================
click       :math:`-[y \\log \\sigma(o_c) + (1 - y) \\log \\sigma(-o_c)]` (binary cross-entropy)
purchase    the same on ``purchased`` with :math:`o_{pc}` after a click, :math:`o_{pn}` otherwise
redeemed    the same on ``redeemed`` with :math:`o_r`
spend       :math:`\\tfrac12 ((\\log s - \\mu)/\\sigma)^2 + \\log \\sigma + \\tfrac12 \\log 2\\pi`
            (Gaussian on :math:`\\log s`; the log-normal's extra :math:`\\log s` does not depend
            on the model and is left out)
return      :math:`-(\\log S(s) + e \\log h_{s+1})` (:func:`retentionrl.simulators.learned.hazard.log_likelihood`)
==========  =====================================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from retentionrl.simulators.learned.hazard import log_likelihood
from retentionrl.simulators.learned.sequence_model import HEAD_LAYOUT, N_SCALAR_HEADS

_COL = {name: i for i, name in enumerate(HEAD_LAYOUT)}
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def visit_nll(outputs: torch.Tensor, targets: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{head: (NLL of each visit (..., n), the bool mask of visits the head counts (n,))}``.

    :param outputs: fused head outputs ``(..., n, n_outputs)`` of ``n`` visits (a leading
        axis: the same visits under several latent classes).
    :param targets: those visits' targets and masks (:data:`retentionrl.simulators.learned.visit_data.TARGETS`).
    """

    def col(name: str) -> torch.Tensor:
        return outputs[..., _COL[name]]

    clicked = targets["click"] > 0
    purchase_logit = torch.where(clicked, col("purchase_click"), col("purchase_noclick"))
    log_sigma = col("spend_log_sigma")
    z = (targets["log_spend"] - col("spend_mu")) * torch.exp(-log_sigma)
    every = torch.ones_like(clicked)

    def bce(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logit, target.expand_as(logit), reduction="none")

    return {
        "click": (bce(col("click"), targets["click"]), targets["click_mask"]),
        "purchase": (bce(purchase_logit, targets["purchase"]), every),
        "redeemed": (bce(col("redeemed"), targets["redeemed"]), targets["redeemed_mask"]),
        "spend": (0.5 * z * z + log_sigma + HALF_LOG_2PI, targets["spend_mask"]),
        "return": (
            -log_likelihood(
                outputs[..., N_SCALAR_HEADS:],
                targets["survival_index"].expand(outputs.shape[:-1]),
                targets["event"].expand(outputs.shape[:-1]),
            ),
            every,
        ),
    }


def head_losses(
    outputs: torch.Tensor, targets: dict[str, torch.Tensor]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{head: (sum of NLL over masked visits, number of masked visits)}``.

    :param outputs: fused head outputs ``(n, n_outputs)`` of ``n`` visits.
    :param targets: those visits' targets and masks (:data:`retentionrl.simulators.learned.visit_data.TARGETS`).
    """
    return {
        head: (torch.where(mask, nll, torch.zeros_like(nll)).sum(), mask.sum())
        for head, (nll, mask) in visit_nll(outputs, targets).items()
    }


def total_loss(losses: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Sum over heads of each head's mean NLL (heads with no visits in the batch add 0)."""
    return torch.stack([total / count.clamp(min=1) for total, count in losses.values()]).sum()


@dataclass(frozen=True)
class ClassLosses:
    """The losses of windows under a mixture of latent classes (:func:`class_losses`)."""

    heads: dict[str, tuple[torch.Tensor, torch.Tensor]]
    """``{head: (responsibility-weighted sum of NLL over masked visits, number of masked visits)}``"""
    prior: torch.Tensor
    """:math:`-\\frac1W \\sum_w \\sum_z r_{wz} \\log \\pi_z`, the loss of the class shares"""
    marginal_nll: torch.Tensor
    """:math:`-\\sum_w \\log \\sum_z \\pi_z e^{-J_{wz}}`, the windows' joint NLL with the class summed out"""
    responsibility: torch.Tensor
    """:math:`r_{wz}` ``(K, W)``, each window's posterior over classes (no gradient)"""


def class_losses(
    outputs: torch.Tensor,
    targets: dict[str, torch.Tensor],
    window: torch.Tensor,
    n_windows: int,
    log_prior: torch.Tensor,
    learned: list[str],
) -> ClassLosses:
    """Losses of ``n_windows`` windows of a shopper each, under ``K`` latent classes.

    With :math:`J_{wz}` the joint NLL of window :math:`w`'s visits (every learned head) had
    the shopper class :math:`z`, the window's likelihood is :math:`\\sum_z \\pi_z e^{-J_{wz}}`.
    Its gradient is :math:`\\sum_z r_{wz} \\nabla J_{wz}` with the posterior
    :math:`r_{wz} \\propto \\pi_z e^{-J_{wz}}` held fixed (the EM identity), so each head's
    loss is its NLL weighted by :math:`r` (then normalised per head as :func:`total_loss`
    does for one class) and the shares :math:`\\pi` get :math:`-\\sum_z r_{wz} \\log \\pi_z`.

    :param outputs: head outputs ``(K, n, n_outputs)``: the same ``n`` visits under each class.
    :param window: the window of each visit, long ``(n,)`` in ``[0, n_windows)``.
    :param log_prior: :math:`\\log \\pi` ``(K,)``.
    :param learned: the heads that count.
    """
    nll = {h: v for h, v in visit_nll(outputs, targets).items() if h in learned}
    masked = {h: torch.where(mask, value, torch.zeros_like(value)) for h, (value, mask) in nll.items()}
    joint = outputs.new_zeros((outputs.shape[0], n_windows))
    for value in masked.values():
        joint = joint.index_add(1, window, value)
    log_joint = log_prior[:, None] - joint
    r = torch.softmax(log_joint, dim=0).detach()
    per_visit = r[:, window]
    return ClassLosses(
        heads={h: ((per_visit * masked[h]).sum(), mask.sum()) for h, (_, mask) in nll.items()},
        prior=-(r * log_prior[:, None]).sum() / max(n_windows, 1),
        marginal_nll=-torch.logsumexp(log_joint, dim=0).sum(),
        responsibility=r,
    )
