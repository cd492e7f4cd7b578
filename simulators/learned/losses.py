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

import torch
import torch.nn.functional as F

from retentionrl.simulators.learned.hazard import log_likelihood
from retentionrl.simulators.learned.sequence_model import HEAD_LAYOUT, N_SCALAR_HEADS

_COL = {name: i for i, name in enumerate(HEAD_LAYOUT)}
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def head_losses(
    outputs: torch.Tensor, targets: dict[str, torch.Tensor]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{head: (sum of NLL over masked visits, number of masked visits)}``.

    :param outputs: fused head outputs ``(n, n_outputs)`` of ``n`` visits.
    :param targets: those visits' targets and masks (:data:`retentionrl.simulators.learned.visit_data.TARGETS`).
    """

    def col(name: str) -> torch.Tensor:
        return outputs[..., _COL[name]]

    def masked(nll: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if mask is None:
            return nll.sum(), torch.tensor(nll.numel(), device=nll.device)
        return torch.where(mask, nll, torch.zeros_like(nll)).sum(), mask.sum()

    clicked = targets["click"] > 0
    purchase_logit = torch.where(clicked, col("purchase_click"), col("purchase_noclick"))
    log_sigma = col("spend_log_sigma")
    z = (targets["log_spend"] - col("spend_mu")) * torch.exp(-log_sigma)
    return {
        "click": masked(
            F.binary_cross_entropy_with_logits(col("click"), targets["click"], reduction="none"), targets["click_mask"]
        ),
        "purchase": masked(F.binary_cross_entropy_with_logits(purchase_logit, targets["purchase"], reduction="none")),
        "redeemed": masked(
            F.binary_cross_entropy_with_logits(col("redeemed"), targets["redeemed"], reduction="none"),
            targets["redeemed_mask"],
        ),
        "spend": masked(0.5 * z * z + log_sigma + HALF_LOG_2PI, targets["spend_mask"]),
        "return": masked(-log_likelihood(outputs[..., N_SCALAR_HEADS:], targets["survival_index"], targets["event"])),
    }


def total_loss(losses: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Sum over heads of each head's mean NLL (heads with no visits in the batch add 0)."""
    return torch.stack([total / count.clamp(min=1) for total, count in losses.values()]).sum()
