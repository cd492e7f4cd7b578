r"""Dormancy and reactivation: the return law after a lifetime ends with churn.

The sequence model's return law covers gaps of :math:`1..H` days; a shopper who does not
return within :math:`H` churns and the lifetime ends (:mod:`retentionrl.interactions.trajectories`).
Purchase logs show that many of them come back later (on Online Retail, a third of the
customers quiet for half a year buy again within the next quarter), and a forecast that
writes them off misses those visits. Here a churned shopper becomes **dormant** at day
:math:`H` after their last visit, and **reactivates** (starts a new lifetime) :math:`D`
days later, with a Lomax (Pareto II) proportional-hazards law

.. math::

    h(d \mid n) = \frac{k_n}{\beta + d}, \qquad
    S(d \mid n) = \Bigl(1 + \frac{d}{\beta}\Bigr)^{-k_n}, \qquad
    k_n = s\, e^{\gamma \log(1 + n)},

:math:`n` the visits of the lifetime that ended. The Lomax is the gamma mixture of
exponential waiting times (dormant shoppers differ in their reactivation rate), so its
hazard falls with the time spent dormant, as the data's does: the longer quiet, the less
likely back. :math:`\gamma` lets shoppers with longer lifetimes come back sooner.

**Fit** (:func:`fit_reactivation`): by maximum likelihood on the *dormancy spells* of a log
(:func:`dormancy_spells`): every lifetime that ended with churn gives one spell starting
:math:`H` days after its last visit, which ends with the shopper's next lifetime (an event
at :math:`d`) or is right-censored at the end of the log (:math:`c`):

.. math::

    \ell(s, \beta, \gamma) = \sum_{\text{events}} \bigl[\log k_{n_i} - \log(\beta + d_i)\bigr]
    - \sum_{\text{all}} k_{n_i} \log\Bigl(1 + \frac{d_i}{\beta}\Bigr)

(:math:`d_i = c_i` for a censored spell), maximised over :math:`(\log s, \log \beta, \gamma)`.
A log with no reactivation gives :math:`s = 0`: dormant shoppers never return, the
behaviour before dormancy existed.

**Sampling** (:meth:`ReactivationLaw.sample`) is by inversion, conditional on a spell
already :math:`c` days long: :math:`S(d)/S(c) = u` gives
:math:`d = (\beta + c)\, u^{-1/k_n} - \beta`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from retentionrl.interactions.trajectories import DAY_NS


@dataclass(frozen=True)
class ReactivationLaw:
    """The fitted law of the module docstring, with what it was fitted on.

    :param shape: :math:`s \\ge 0` (0: dormant shoppers never return).
    :param scale: :math:`\\beta > 0`, days.
    :param coef: :math:`\\gamma`, on :math:`\\log(1 + n)`.
    :param spells: dormancy spells in the fit.
    :param reactivations: spells that ended with a return.
    :param exposure_days: total days the spells were observed.
    """

    shape: float
    scale: float
    coef: float
    spells: int = 0
    reactivations: int = 0
    exposure_days: float = 0.0

    def rate_factor(self, visits: np.ndarray) -> np.ndarray:
        """:math:`k_n` for lifetimes of ``visits`` visits."""
        return self.shape * np.exp(self.coef * np.log1p(np.asarray(visits, dtype=np.float64)))

    def survival(self, days: np.ndarray, visits: np.ndarray) -> np.ndarray:
        """:math:`S(d \\mid n)`: still dormant ``days`` after dormancy began."""
        return (1.0 + np.asarray(days, dtype=np.float64) / self.scale) ** -self.rate_factor(visits)

    def sample(
        self, visits: np.ndarray, rng: np.random.Generator, dormant_days: np.ndarray | float = 0.0
    ) -> np.ndarray:
        """Days from the start of dormancy to reactivation, one per shopper, given that the
        shopper has already been dormant ``dormant_days`` (``inf``: never, where
        :math:`k_n = 0`)."""
        k = self.rate_factor(visits)
        c = np.broadcast_to(np.asarray(dormant_days, dtype=np.float64), k.shape)
        u = rng.random(k.shape)
        with np.errstate(divide="ignore", over="ignore"):
            days = (self.scale + c) * np.exp(-np.log(u) / k) - self.scale
        return np.where(k > 0, np.maximum(days, c), np.inf)

    def to_dict(self) -> dict:
        """JSON-ready parameters (inverse: ``ReactivationLaw(**d)``)."""
        return {key: float(value) if isinstance(value, float) else int(value) for key, value in asdict(self).items()}


NEVER_REACTIVATE = ReactivationLaw(shape=0.0, scale=1.0, coef=0.0)
"""The law of a log without reactivations (and of simulators fitted before this law existed)."""


def dormancy_spells(visits: pd.DataFrame, log_end: pd.Timestamp, horizon_days: float) -> pd.DataFrame:
    """One row per lifetime that ended with churn: ``visits`` (:math:`n`), ``days`` (to the
    reactivation, or observed until ``log_end``) and ``event`` (reactivated).

    :param visits: a visit table with :func:`~retentionrl.interactions.trajectories.add_trajectories`
        columns, sorted by ``(user_id, start)``.
    """
    churned = visits["churned"].to_numpy()
    start = visits["start"].to_numpy().astype("datetime64[ns]").view("int64")
    users = visits["user_id"].to_numpy()
    same_user_next = np.r_[users[1:] == users[:-1], False]
    next_start = np.r_[start[1:], 0]
    dormant_from = start + horizon_days * DAY_NS
    event = churned & same_user_next
    end = np.where(event, next_start, pd.Timestamp(log_end).value)
    rows = np.flatnonzero(churned)
    return pd.DataFrame(
        {
            "visits": visits["visit_index"].to_numpy()[rows] + 1,
            "days": np.maximum(end[rows] - dormant_from[rows], 0) / DAY_NS,
            "event": event[rows],
        }
    )


def fit_reactivation(spells: pd.DataFrame) -> ReactivationLaw:
    """Maximum-likelihood :class:`ReactivationLaw` on ``spells`` (:func:`dormancy_spells`)."""
    from scipy.optimize import minimize

    n = spells["visits"].to_numpy(np.float64)
    d = spells["days"].to_numpy(np.float64)
    e = spells["event"].to_numpy(bool)
    spells_n, events_n, exposure = int(len(spells)), int(e.sum()), float(d.sum())
    if not e.any():  # NEVER_REACTIVATE, with the counts
        return ReactivationLaw(0.0, 1.0, 0.0, spells=spells_n, reactivations=events_n, exposure_days=exposure)
    z = np.log1p(n)
    z_mean = float(z.mean())  # centred: a better-conditioned optimisation

    def negative_log_likelihood(theta: np.ndarray) -> tuple[float, np.ndarray]:
        log_s, log_b, g = theta
        b = np.exp(log_b)
        k = np.exp(log_s + g * (z - z_mean))
        log_term = np.log1p(d / b)
        value = -(np.sum(np.log(k[e]) - np.log(b + d[e])) - np.sum(k * log_term))
        dk = k * log_term  # d/dlog_s of sum k log(1 + d/b); times (z - zm) for g
        d_logb = np.sum(b / (b + d[e])) - np.sum(k * d / (b + d))
        grad = np.array(
            [dk.sum() - e.sum(), d_logb, np.sum(dk * (z - z_mean)) - np.sum(z[e] - z_mean)],
            dtype=np.float64,
        )
        return float(value), grad

    rate = e.sum() / max(d.sum(), 1e-9)
    start = np.array([0.0, np.log(1.0 / rate), 0.0])
    result = minimize(
        negative_log_likelihood, start, jac=True, method="L-BFGS-B", bounds=[(-20, 20), (-10, 20), (-10, 10)]
    )
    log_s, log_b, g = result.x
    return ReactivationLaw(
        shape=float(np.exp(log_s - g * z_mean)),
        scale=float(np.exp(log_b)),
        coef=float(g),
        spells=spells_n,
        reactivations=events_n,
        exposure_days=exposure,
    )
