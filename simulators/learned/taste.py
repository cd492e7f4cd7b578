"""Arm tastes: a latent "favours this arm" per shopper and arm, inferred from their responses.

A shopper either favours arm :math:`a` (:math:`t_a = 1`) or not, for life, independently across
arms, with prior :math:`P(t_a = 1) = \\sigma(\\ell_a)` (a learned log-odds per arm). Favouring
moves the click and purchase logits of a visit that shows the arm by learned shifts
:math:`\\delta = (\\delta_c, \\delta_{pc}, \\delta_{pn})`:

.. math::

    P(click \\mid t) = \\sigma(o_c + \\delta_c t), \\qquad
    P(buy \\mid click, t) = \\sigma(o_{pc} + \\delta_{pc} t), \\qquad
    P(buy \\mid no\\ click, t) = \\sigma(o_{pn} + \\delta_{pn} t)

with :math:`o` the sequence model's head outputs. The model does not know :math:`t_a`; it
carries each shopper's posterior log-odds :math:`\\lambda_a`, which starts at :math:`\\ell_a` and
after every visit that showed :math:`a` and got click :math:`c` and purchase :math:`b` gains the
evidence (Bayes' rule)

.. math::

    \\lambda_a \\leftarrow \\lambda_a + \\log \\frac{p(c, b \\mid t_a = 1)}{p(c, b \\mid t_a = 0)}.

A visit's click and purchase are drawn from the predictive mixture: the click with
:math:`w = \\sigma(\\lambda_a)`, :math:`P(click) = w\\,\\sigma(o_c + \\delta_c) + (1 - w)\\,\\sigma(o_c)`, and
the purchase with the weight updated by the click. :func:`response_logits` returns those
predictive laws as logits, so everything that reads the heads (draws, predictions, the
per-visit NLL of :mod:`retentionrl.simulators.learned.losses`) reads the mixture unchanged, and
the product of the predictive laws over a history is exactly its likelihood with every
:math:`t_a` summed out.

Why: a shopper shown an arm again and again without buying reveals that they do not favour
it, and one who keeps buying it that they do. A GRU and per-arm counts must learn that from
the few logged histories that repeat an arm (a softmax logging policy rarely does); the
mixture states it, so it extrapolates to a policy that shows one arm at every visit (world v2,
`docs/agent_ablation.md`, seventh round: the simulators sold an arm to shoppers who had not
bought it yet at 0.26 per visit against the world's 0.20). It is the random-effects view of
repeated choice (a latent class per shopper and arm, as in latent-class choice models), with
the GRU carrying everything else. Off by default: on world v2 logs it brought that rate to
0.224, but under-read repurchases and did not lower the held-out NLL (README, "Arm tastes").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

N_TASTE_HEADS = 3
"""The head outputs a taste shifts: click, purchase after a click, purchase without one
(the first three of :data:`~retentionrl.simulators.learned.sequence_model.HEAD_LAYOUT`)."""


def _evidence(logit: torch.Tensor, shift: torch.Tensor, outcome: torch.Tensor) -> torch.Tensor:
    """:math:`\\log p(y \\mid t = 1) - \\log p(y \\mid t = 0)` of 0/1 ``outcome`` under Bernoulli logits
    ``logit + shift`` and ``logit``."""
    sign = 2.0 * outcome - 1.0
    return F.logsigmoid(sign * (logit + shift)) - F.logsigmoid(sign * logit)


def _mixed(logit: torch.Tensor, shift: torch.Tensor, logodds: torch.Tensor) -> torch.Tensor:
    """The logit of :math:`w\\,\\sigma(o + \\delta) + (1 - w)\\,\\sigma(o)`, :math:`w = \\sigma(\\lambda)`, in logs."""
    yes, no = F.logsigmoid(logodds), F.logsigmoid(-logodds)
    one = torch.logaddexp(yes + F.logsigmoid(logit + shift), no + F.logsigmoid(logit))
    zero = torch.logaddexp(yes + F.logsigmoid(-logit - shift), no + F.logsigmoid(-logit))
    return one - zero


def response_logits(
    raw: torch.Tensor, shift: torch.Tensor, logodds: torch.Tensor, click_known: bool | torch.Tensor
) -> torch.Tensor:
    """Predictive click, purchase-after-click and purchase-without logits ``(..., 3)`` of visits
    whose head outputs are ``raw`` ``(..., 3)`` and whose shown arm's posterior log-odds is
    ``logodds`` ``(...)``; the purchase's taste weight is updated by the click where
    ``click_known`` (logs without click events carry no evidence in a click)."""
    o_c, o_pc, o_pn = raw.unbind(-1)
    d_c, d_pc, d_pn = shift.unbind(-1)
    one, zero = torch.ones_like(o_c), torch.zeros_like(o_c)
    click_known = torch.as_tensor(click_known, device=raw.device)
    after_click = torch.where(click_known, logodds + _evidence(o_c, d_c, one), logodds)
    after_none = torch.where(click_known, logodds + _evidence(o_c, d_c, zero), logodds)
    return torch.stack(
        [_mixed(o_c, d_c, logodds), _mixed(o_pc, d_pc, after_click), _mixed(o_pn, d_pn, after_none)], dim=-1
    )


def visit_evidence(
    raw: torch.Tensor,
    shift: torch.Tensor,
    click: torch.Tensor,
    purchase: torch.Tensor,
    click_known: bool | torch.Tensor,
    purchase_known: bool | torch.Tensor,
) -> torch.Tensor:
    """:math:`\\log p(c, b \\mid t = 1) - \\log p(c, b \\mid t = 0)` ``(...)`` of visits with head
    outputs ``raw`` ``(..., 3)`` and 0/1 ``click`` and ``purchase``; the click (purchase) counts
    where ``click_known`` (``purchase_known``)."""
    o_c, o_pc, o_pn = raw.unbind(-1)
    d_c, d_pc, d_pn = shift.unbind(-1)
    clicked = click > 0
    zero = torch.zeros_like(o_c)
    click_known, purchase_known = (torch.as_tensor(k, device=raw.device) for k in (click_known, purchase_known))
    from_click = torch.where(click_known, _evidence(o_c, d_c, click), zero)
    buy = _evidence(torch.where(clicked, o_pc, o_pn), torch.where(clicked, d_pc, d_pn), purchase)
    return from_click + torch.where(purchase_known, buy, zero)


def window_outputs(
    outputs: torch.Tensor,
    arm: torch.Tensor,
    valid: torch.Tensor,
    prior: torch.Tensor,
    shift: torch.Tensor,
    click: torch.Tensor,
    purchase: torch.Tensor,
    click_known: torch.Tensor,
    purchase_known: bool,
) -> torch.Tensor:
    """Head outputs ``(..., n, n_outputs)`` of the ``n`` real visits of padded windows with their
    first three columns replaced by the predictive logits given each window's earlier visits.

    The posterior log-odds at visit :math:`k` of its arm :math:`a_k` is
    :math:`\\ell_{a_k} + \\sum_{j < k,\\ a_j = a_k} e_j` with :math:`e_j` the evidence of visit
    :math:`j` (:func:`visit_evidence`): an exclusive cumulative sum per arm over each window
    (a window starts from the prior, as its GRU starts from the empty-history state). Visits
    without a logged arm (``arm`` = ``n_arms``) keep their outputs and add no evidence.

    :param outputs: head outputs of the real visits, flattened in ``valid``'s order (a leading
        axis: the same visits under several latent classes).
    :param arm: the visits' arms, long ``(n,)``; ``valid`` the windows' bool mask ``(B, T)``.
    :param prior: :math:`\\ell` ``(n_arms,)``; ``shift`` :math:`\\delta` ``(3,)``.
    :param click: the visits' 0/1 click, ``purchase`` their 0/1 purchase, ``click_known`` where
        the log records clicks (each ``(n,)``); ``purchase_known`` whether the purchase head counts.
    """
    n_arms = prior.shape[0]
    shown = arm < n_arms
    index = arm.clamp(max=n_arms - 1)
    raw = outputs[..., :N_TASTE_HEADS]
    evidence = torch.where(shown, visit_evidence(raw, shift, click, purchase, click_known, purchase_known), 0.0)
    b, t = valid.shape
    where = torch.nonzero(valid.flatten())[:, 0]
    lead = evidence.shape[:-1]
    padded = evidence.new_zeros((*lead, b * t)).index_copy(-1, where, evidence).reshape(*lead, b, t)
    arms = torch.full((b * t,), n_arms, dtype=torch.long, device=arm.device).index_copy(0, where, arm)
    one_hot = F.one_hot(arms.reshape(b, t), n_arms + 1)[..., :n_arms].to(padded.dtype)  # (B, T, A)
    per_arm = padded.unsqueeze(-1) * one_hot
    earlier = per_arm.cumsum(dim=-2) - per_arm  # evidence of each arm before each visit
    seen = earlier.flatten(-3, -2)[..., where, :]  # (..., n, A)
    logodds = prior[index] + seen.gather(-1, index.expand(*lead, -1).unsqueeze(-1)).squeeze(-1)
    mixed = response_logits(raw, shift, logodds, click_known)
    return torch.cat([torch.where(shown.unsqueeze(-1), mixed, raw), outputs[..., N_TASTE_HEADS:]], dim=-1)


class TasteBelief:
    """Each carried shopper's posterior log-odds :math:`\\lambda` ``(n, n_arms)`` of favouring
    each arm, for a simulator: :meth:`open` turns a visit's head outputs into the predictive
    logits, :meth:`record` adds the visit's evidence. Rows follow the simulator's batch
    (:meth:`reset`, :meth:`replace`, :meth:`keep_rows`); tensors on the device of ``prior``."""

    def __init__(self, prior: torch.Tensor, shift: torch.Tensor, click_known: bool, purchase_known: bool) -> None:
        self._prior, self._shift = prior.detach().float(), shift.detach().float()
        self._click_known, self._purchase_known = click_known, purchase_known
        self.reset(0)

    def reset(self, n: int) -> None:
        """``n`` shoppers at the prior."""
        self.logodds = self._prior.expand(n, -1).clone()

    def replace(self, rows: torch.Tensor) -> None:
        """Shoppers ``rows`` (long) back at the prior."""
        self.logodds[rows] = self._prior

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Carry on only shoppers ``rows`` (long), in order."""
        self.logodds = self.logodds.index_select(0, rows)

    def open(self, raw: torch.Tensor, arm: torch.Tensor) -> torch.Tensor:
        """The predictive click and purchase logits ``(n, 3)`` of a visit of arms ``arm`` (long
        ``(n,)``, ``n_arms`` = none: ``raw`` kept) with head outputs ``raw`` ``(n, 3)``, kept
        for :meth:`record`."""
        n_arms = self._prior.shape[0]
        self._raw, self._arm = raw.clone(), arm
        logodds = self.logodds.gather(1, arm.clamp(max=n_arms - 1).unsqueeze(1)).squeeze(1)
        mixed = response_logits(raw, self._shift, logodds, self._click_known)
        return torch.where((arm < n_arms).unsqueeze(1), mixed, raw)

    def record(self, click: torch.Tensor, purchase: torch.Tensor) -> None:
        """Add the evidence of the opened visit's 0/1 ``click`` and ``purchase`` ``(n,)``."""
        n_arms = self._prior.shape[0]
        evidence = visit_evidence(
            self._raw, self._shift, click.float(), purchase.float(), self._click_known, self._purchase_known
        )
        shown = self._arm < n_arms
        self.logodds.scatter_add_(
            1, self._arm.clamp(max=n_arms - 1).unsqueeze(1), torch.where(shown, evidence, 0.0).unsqueeze(1)
        )
