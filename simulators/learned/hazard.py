"""Return gap after a visit: churn or a discrete-time hazard, censoring-aware, and sampling.

Time after a visit is cut into days :math:`j = 1, \\dots, H` (:math:`H` the horizon); day
:math:`j` holds gaps in :math:`(j - 1, j]`. The model gives, per visit, *return logits*
``(..., 1 + H)``: :math:`\\psi` then :math:`\\ell_1, \\dots, \\ell_H`. The shopper leaves for
good after the visit with probability :math:`\\pi = \\sigma(\\psi)` (a *cure* fraction, the
BG/NBD dropout after a purchase); otherwise they return on day :math:`j` with hazard
:math:`h_j = \\sigma(\\ell_j)` having not returned before (and a gap past :math:`H` is churn
too). So

.. math::

    S_r(j) = \\prod_{i \\le j} (1 - h_i), \\qquad S(j) = \\pi + (1 - \\pi) S_r(j), \\qquad
    P(\\text{gap day} = j) = (1 - \\pi) S_r(j - 1)\\, h_j,
    \\qquad P(\\text{no return within } H) = S(H) \\quad (\\text{churn}).

A direct churn probability states what a retention simulator must get right: a per-visit
churn bias of half a point compounds over a lifetime's visits into points of 90-day
retention, and as :math:`1 - \\prod_j (1 - h_j)` alone it hangs on ninety small tail hazards.

A visit contributes to the log-likelihood, by what the log says after it:

================================  ===========================================================
returned on day :math:`d`         :math:`\\log(1 - \\pi) + \\log S_r(d - 1) + \\log h_d`
no return within :math:`H`        :math:`\\log S(H)` (churned)
censored after :math:`c` days     :math:`\\log S(\\lfloor c \\rfloor)`, :math:`c < H` the days
                                  observed between the visit and the end of the log
================================  ===========================================================

with :math:`\\log h = \\log\\sigma(\\ell)`, :math:`\\log(1 - h) = \\log\\sigma(-\\ell)` and
:math:`\\log S = \\mathrm{logaddexp}(\\log \\pi, \\log(1 - \\pi) + \\log S_r)` computed stably.
The cases need a *survival index* :math:`s` (:math:`d - 1`, :math:`H` or
:math:`\\lfloor c \\rfloor`) and an event flag :math:`e`, which :func:`survival_targets`
derives from a visit table once.

Sampling (:func:`sample_gap_days`) is by inverse CDF: with :math:`F(j) = 1 - S(j)` and
:math:`u \\sim U(0, 1)`, the gap is the first day :math:`j` with :math:`F(j) \\ge u`, and
churn when :math:`u > F(H)`; one ``cumsum`` and one ``searchsorted`` per batch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def gap_day_index(gap_days: np.ndarray) -> np.ndarray:
    """Day :math:`d = \\lceil g \\rceil` (at least 1) of each finite gap :math:`g \\ge 0`: a gap of 0
    (two visits at one timestamp, e.g. two baskets paid one after the other) is a return on day 1."""
    return np.maximum(np.ceil(np.asarray(gap_days, dtype=np.float64) - 1e-9), 1.0)


def survival_targets(
    gap_days: np.ndarray, churned: np.ndarray, observed_days: np.ndarray, horizon_days: int
) -> tuple[np.ndarray, np.ndarray]:
    """Survival index :math:`s` and event flag :math:`e` of each visit (module docstring).

    :param gap_days: days to the next visit (0 allowed: day 1), NaN where none followed within
        the horizon.
    :param churned: the visit ended its trajectory with churn.
    :param observed_days: days from the visit to the end of the log (read where neither a
        return nor churn was observed: censored).
    :param horizon_days: :math:`H`, >= 1.
    :returns: ``(s, e)``: int64 in ``[0, H]`` and bool, shape ``(n,)``.
    """
    if int(horizon_days) != horizon_days or horizon_days < 1:
        raise ValueError(f"horizon_days must be a positive integer, got {horizon_days!r}")
    gap = np.asarray(gap_days, dtype=np.float64)
    event = np.isfinite(gap)
    if np.any(gap[event] < 0) or np.any(gap[event] > horizon_days):
        bad = gap[event & ((gap < 0) | (gap > horizon_days))][:3]
        raise ValueError(f"return gaps must lie in [0, {horizon_days}] days, got {bad.tolist()}")
    censored_days = np.floor(np.clip(np.nan_to_num(observed_days, nan=0.0), 0.0, horizon_days))
    index = np.where(
        event, gap_day_index(np.where(event, gap, 1.0)) - 1, np.where(churned, horizon_days, censored_days)
    )
    return index.astype(np.int64), event


def empirical_hazard(survival_index: np.ndarray, event: np.ndarray, horizon_days: int) -> np.ndarray:
    r"""Population hazard :math:`\hat h_j = d_j / n_j` of day :math:`j = 1..H` (Kaplan-Meier's).

    :math:`d_j`: returns on day :math:`j`; :math:`n_j`: visits at risk on day :math:`j`
    (returned on day :math:`j` or later, or censored after :math:`j` days or more). Clipped
    to :math:`[10^{-4}, 1 - 10^{-4}]` so its logit is finite (it initialises the model).
    """
    s = np.asarray(survival_index, dtype=np.int64)
    e = np.asarray(event, dtype=bool)
    last_day_at_risk = np.where(e, s + 1, s)  # at risk on days 1..last
    at_risk = len(s) - np.cumsum(np.bincount(last_day_at_risk, minlength=horizon_days + 1))[:horizon_days]
    returns = np.bincount(s[e] + 1, minlength=horizon_days + 1)[1 : horizon_days + 1]
    return np.clip(returns / np.maximum(at_risk, 1), 1e-4, 1 - 1e-4)


def log_likelihood(logits: torch.Tensor, survival_index: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Per-visit log-likelihood (the module docstring's table).

    :param logits: return logits :math:`\\psi, \\ell_1..\\ell_H`, shape ``(..., 1 + H)``.
    :param survival_index: :math:`s` in ``[0, H]`` (``[0, H - 1]`` where ``event``), ``(...)``.
    :param event: a return was observed on day :math:`s + 1`, bool ``(...)``.
    """
    churn, hazard = logits[..., 0], logits[..., 1:]
    log_survive = torch.cumsum(F.logsigmoid(-hazard), dim=-1)
    log_survive = torch.cat([torch.zeros_like(log_survive[..., :1]), log_survive], dim=-1)  # S_r(0) = 1
    s = survival_index.unsqueeze(-1)
    log_stay = F.logsigmoid(-churn)
    log_returner = log_stay + log_survive.gather(-1, s).squeeze(-1)
    log_hazard = F.logsigmoid(hazard).gather(-1, s.clamp(max=hazard.shape[-1] - 1)).squeeze(-1)
    return torch.where(event, log_returner + log_hazard, torch.logaddexp(F.logsigmoid(churn), log_returner))


def survival(logits: torch.Tensor) -> torch.Tensor:
    """:math:`S(1), \\dots, S(H)` of return logits ``(..., 1 + H)``: no return by day :math:`j`."""
    churn = torch.sigmoid(logits[..., :1])
    return churn + (1.0 - churn) * torch.cumprod(torch.sigmoid(-logits[..., 1:]), dim=-1)


def sample_gap_days(logits: torch.Tensor, uniform: torch.Tensor, after_day: torch.Tensor | None = None) -> torch.Tensor:
    r"""Gap in days (``inf`` for churn) for each row of return logits ``(n, 1 + H)`` given ``u`` ``(n,)``.

    The first day :math:`j` with :math:`F(j) = (1 - \pi)(1 - S_r(j)) \ge u`, i.e. with
    :math:`S_r(j) \le t = 1 - u / (1 - \pi)` (one ``searchsorted`` on :math:`-S_r`, which
    rises with :math:`j`); churn when there is none within :math:`H`. With ``after_day``
    :math:`m` (whole days, ``(n,)``), the gap is drawn given that it is later than day
    :math:`m`: :math:`u` is mapped to :math:`F(m) + u\,(1 - F(m))`.
    """
    stay = torch.sigmoid(-logits[:, 0])  # 1 - pi
    rising = logits[:, 1:].neg().sigmoid_().cumprod(dim=-1).neg_()  # -S_r(1..H)
    horizon = rising.shape[-1]
    if after_day is not None:
        m = after_day.to(torch.long).clamp(min=0)
        before = rising.gather(-1, (m - 1).clamp(min=0, max=horizon - 1).unsqueeze(-1)).squeeze(-1)
        start = torch.where(m > 0, stay * (1.0 + before), torch.zeros_like(uniform))
        uniform = torch.where(m >= horizon, torch.full_like(uniform, 2.0), start + uniform * (1.0 - start))
    day = torch.searchsorted(rising, (uniform / stay - 1.0).unsqueeze(-1)).squeeze(-1)  # first -S_r(j) >= -t
    gap = (day + 1).to(logits.dtype)
    return torch.where(day >= horizon, torch.full_like(gap, float("inf")), gap)
