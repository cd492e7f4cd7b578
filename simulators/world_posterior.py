"""The Bayes-optimal response predictions for a world log: the posterior predictive given
only what the log shows.

The world's true probabilities (:mod:`simulators.world_probabilities`) read the latent state
(traits, relevance of every group, satisfaction :math:`s`, coupon expectation :math:`e`),
which no model of the log can know. The best a model can do at visit :math:`k` of a shopper
is the posterior predictive given the observable history :math:`h_k` (the actions, clicks,
purchases and return gaps of visits :math:`0..k-1`) and the action :math:`a_k`:

.. math::

    P(click_k \\mid h_k, a_k) = \\int p_{click}(\\theta, a_k)\\, dP(\\theta \\mid h_k),

:math:`\\theta` the shopper's state at visit :math:`k`. Ranking visits by it maximises the
AUC among all functions of :math:`(h_k, a_k)` (it is the likelihood-ratio ordering). Purchase
is :math:`E[p_{click}\\, p_{buy}]` (the mean of the product), purchase after a click is
:math:`E[p_{click}\\, p_{buy}] / E[p_{click}]` (the click itself is evidence).

Importance sampling over the world's own prior: :math:`M` particles per shopper drawn by
:meth:`~simulators.population.ShopperState.draw` (the shopper's first visit is at
:math:`s = e = 0`), walked through the logged visits with the world's own laws
(:meth:`GroundTruthWorld._response`, ``_transition`` and ``_return_law``; :math:`s', e'` are
deterministic given a particle's traits and the logged click, purchase and coupon). After
visit :math:`k` each particle's log-weight gains the log-likelihood of what was logged:

* click: :math:`\\log p_{click}` or :math:`\\log(1 - p_{click})`; after a click,
  :math:`\\log p_{buy}` or :math:`\\log(1 - p_{buy})`;
* the return (:func:`return_log_likelihood`), with gap scale :math:`m = \\mu e^{-\\gamma_g s'}`
  and churn probability :math:`p = \\sigma(c - \\gamma_c s')` read at the updated :math:`s'`.
  The world draws gap :math:`G = \\max(1, \\lceil m X \\rceil)`, :math:`X \\sim \\mathrm{Exp}(1)`, so
  :math:`P(G > d) = e^{-d/m}` for integers :math:`d \\ge 0` and
  :math:`P(G = g) = e^{-(g-1)/m}(1 - e^{-1/m})`; it churns with a coin of probability
  :math:`p` or when :math:`G > H`. A world log (:mod:`simulators.world_logs`) records the next
  visit iff the shopper did not churn and it falls on a day before the window's end
  (visit day + :math:`G` < ``days``). So a logged next visit :math:`g` days later has
  likelihood :math:`(1 - p) P(G = g)` (:math:`g \\le H`), and no logged next visit has
  :math:`p + (1 - p) P(G > \\min(H, R))` with :math:`R` = ``days`` - 1 - visit day, the
  days after the visit on which a return would still have been logged.

Every logged visit but a shopper's last is followed by a logged return, so predictions use
only the first kind; the second completes the posterior after the last visit (and
``log_evidence``). What else the log holds carries no information on the latent state: the
item is uniform within the shown group and the quantity is an independent coin (their
likelihood is the same under every particle); the arrival day is uniform; the logging
policy (:mod:`simulators.logging_policies`) draws actions from the observable history
features with its own generator. Weights are kept in logs and normalised after every visit;
the effective sample size :math:`1 / \\sum_j w_j^2` of the weights a prediction used is
reported with it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from simulators.population import ShopperState
from simulators.world import GroundTruthWorld

DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class LoggedTrajectories:
    """Logged visits of ``n`` shoppers, padded to ``K`` visits: row ``i`` holds its first
    ``n_visits[i]`` entries (the rest are padding, never read).

    :param arm: item group shown, ints, ``(n, K)``.
    :param coupon: coupon fraction offered, ``(n, K)``.
    :param click: clicked, bool ``(n, K)``.
    :param purchase: bought (implies ``click``), bool ``(n, K)``.
    :param gap: whole days to the next logged visit, >= 1; NaN at each shopper's last visit.
    :param n_visits: logged visits of each shopper, >= 1, ``(n,)``.
    :param remaining: days after the last visit on which a return would still have been
        logged (``days`` - 1 - its day), >= 0, ``(n,)``.
    """

    arm: np.ndarray
    coupon: np.ndarray
    click: np.ndarray
    purchase: np.ndarray
    gap: np.ndarray
    n_visits: np.ndarray
    remaining: np.ndarray

    def __post_init__(self) -> None:
        n, k = np.shape(self.arm)
        for f in fields(self):
            shape = (n,) if f.name in ("n_visits", "remaining") else (n, k)
            if np.shape(getattr(self, f.name)) != shape:
                raise ValueError(f"{f.name} must have shape {shape} (as arm), got {np.shape(getattr(self, f.name))}")
        if n and (self.n_visits.min() < 1 or self.n_visits.max() > k):
            raise ValueError(f"n_visits must lie in [1, {k}], got {self.n_visits.min()}..{self.n_visits.max()}")
        valid = self.valid
        before_last = np.arange(k) < self.n_visits[:, None] - 1
        whole_days = (self.gap >= 1) & (self.gap % 1 == 0)
        bad = {
            "gap must be whole days >= 1 before a shopper's last visit and NaN at it": valid & np.where(
                before_last, ~whole_days, ~np.isnan(self.gap)),
            "purchase needs a click": valid & self.purchase & ~self.click,
            "remaining must be >= 0": ~(self.remaining >= 0)[:, None],
        }
        for what, mask in bad.items():
            if mask.any():
                i, j = np.argwhere(mask)[0]
                raise ValueError(f"{what}: shopper {i}, visit {j} ({int(mask.sum())} such entries)")

    @property
    def valid(self) -> np.ndarray:
        """Bool ``(n, K)``: the entry is a logged visit."""
        return np.arange(self.arm.shape[1]) < self.n_visits[:, None]

    def per_visit(self, values: np.ndarray) -> np.ndarray:
        """An ``(n, K)`` array at the logged visits, shopper by shopper in visit order (1-D)."""
        return values[self.valid]

    @classmethod
    def from_visits(cls, visits: pd.DataFrame, day0: pd.Timestamp, window_days: int) -> LoggedTrajectories:
        """The trajectories of a world log's visit table (:func:`interactions.visits.build_visits`).

        :param visits: one row per visit, grouped by ``user_id`` in time order, with
            ``start``, ``rec_group``, ``rec_coupon``, ``clicked``, ``purchased``; shopper
            ``i`` of the result is the ``i``-th in order of appearance, and
            :meth:`per_visit` returns values in the table's row order.
        :param day0: midnight of the log's day 0 (``retentionrl.start`` of the log).
        :param window_days: the log's window ``days`` (``retentionrl.days``).
        """
        user, _ = pd.factorize(visits["user_id"], sort=False)
        day = (visits["start"].to_numpy().astype("datetime64[ns]").view("int64") - pd.Timestamp(day0).value) // DAY_NS
        first = np.r_[True, user[1:] != user[:-1]]
        if (np.diff(user) < 0).any() or (np.diff(day)[~first[1:]] < 1).any():
            raise ValueError("visits must be grouped by user_id, one visit a day at most, in time order")
        n_visits = np.bincount(user)
        pos = np.arange(user.size) - np.flatnonzero(first)[user]
        last = np.r_[first[1:], True]  # the shopper's last visit
        shape = (n_visits.size, int(n_visits.max()) if n_visits.size else 0)

        def padded(values: np.ndarray, fill: float) -> np.ndarray:
            out = np.full(shape, fill, dtype=np.asarray(values).dtype)
            out[user, pos] = values
            return out

        return cls(
            arm=padded(visits["rec_group"].to_numpy(dtype=np.int64), 0),
            coupon=padded(visits["rec_coupon"].to_numpy(dtype=np.float64), 0.0),
            click=padded(visits["clicked"].to_numpy(dtype=bool), False),
            purchase=padded(visits["purchased"].to_numpy(dtype=bool), False),
            gap=padded(np.where(last, np.nan, np.r_[np.diff(day), 0]).astype(np.float64), np.nan),
            n_visits=n_visits,
            remaining=(int(window_days) - 1 - day[last]).astype(np.float64),
        )


@dataclass(frozen=True)
class PosteriorPredictive:
    """Predictions at every logged visit, ``(n, K)`` arrays as the trajectories (NaN padding).

    :param p_click: :math:`P(click_k \\mid h_k, a_k)`.
    :param p_buy_click: :math:`P(purchase_k \\mid click_k, h_k, a_k)`.
    :param p_purchase: :math:`P(purchase_k \\mid h_k, a_k)`.
    :param ess: effective sample size of the weights behind each prediction, in [1, M].
    :param log_evidence: log-likelihood of each shopper's whole logged trajectory (responses
        and returns, the end of the log included) given its actions, ``(n,)``.
    :param n_particles: :math:`M`, particles per shopper.
    """

    p_click: np.ndarray
    p_buy_click: np.ndarray
    p_purchase: np.ndarray
    ess: np.ndarray
    log_evidence: np.ndarray
    n_particles: int


def return_log_likelihood(gap_scale: np.ndarray, p_churn: np.ndarray, gap: np.ndarray, remaining: np.ndarray,
                          horizon_days: int) -> np.ndarray:
    """Log-likelihood of what a world log shows after a visit (module docstring), elementwise.

    :param gap_scale: :math:`m`, from the updated satisfaction.
    :param p_churn: :math:`p`, from the updated satisfaction.
    :param gap: days to the logged next visit; NaN where none was logged.
    :param remaining: :math:`R`, read only where ``gap`` is NaN.
    :param horizon_days: :math:`H`.
    :returns: :math:`\\log[(1 - p) e^{-(g-1)/m}(1 - e^{-1/m})]` for :math:`1 \\le g \\le H`
        (:math:`-\\infty` past :math:`H`); :math:`\\log[p + (1 - p) e^{-\\min(H, R)/m}]` where no
        return was logged.
    """
    returned = ~np.isnan(gap)
    g = np.where(returned, gap, 1.0)
    log_gap = np.where(g <= horizon_days, -(g - 1.0) / gap_scale + np.log(-np.expm1(-1.0 / gap_scale)), -np.inf)
    d = np.minimum(horizon_days, np.where(returned, 0.0, remaining))
    log_none = np.log(p_churn + (1.0 - p_churn) * np.exp(-d / gap_scale))
    return np.where(returned, np.log1p(-p_churn) + log_gap, log_none)


def posterior_predictive(world: GroundTruthWorld, trajectories: LoggedTrajectories, n_particles: int, seed: int,
                         *, max_batch_particles: int = 2**19) -> PosteriorPredictive:
    """The posterior predictive at every logged visit (module docstring).

    Shopper ``i`` draws its particles from its own generator, seeded by ``(seed, i)``, so its
    predictions do not depend on the other shoppers or on ``max_batch_particles``.

    :param world: the world the log came from (its config and catalog; its own shoppers
        and generator are not touched).
    :param trajectories: the logged visits.
    :param n_particles: :math:`M` >= 1, prior draws per shopper.
    :param seed: seeds the particles.
    :param max_batch_particles: shoppers are walked in batches of at most this many
        particles (at least one shopper), which bounds memory (~0.5 kB a particle).
    """
    if isinstance(n_particles, bool) or int(n_particles) != n_particles or n_particles < 1:
        raise ValueError(f"n_particles must be an integer >= 1, got {n_particles!r}")
    traj, m = trajectories, int(n_particles)
    if traj.valid.any() and not 0 <= traj.arm[traj.valid].min() <= traj.arm[traj.valid].max() < world.config.n_groups:
        raise ValueError(f"arm must lie in [0, {world.config.n_groups}) (the world's groups)")
    shape = traj.arm.shape
    out = {name: np.full(shape, np.nan) for name in ("p_click", "p_buy_click", "p_purchase", "ess")}
    log_evidence = np.zeros(shape[0])
    order = np.argsort(traj.n_visits, kind="stable")  # similar lengths together: little padding
    step = max(1, int(max_batch_particles) // m)
    for lo in range(0, order.size, step):
        rows = order[lo: lo + step]
        log_evidence[rows] = _walk(world, traj, rows, m, seed, out)
    return PosteriorPredictive(**out, log_evidence=log_evidence, n_particles=m)


def _walk(world: GroundTruthWorld, traj: LoggedTrajectories, rows: np.ndarray, m: int, seed: int,
          out: dict[str, np.ndarray]) -> np.ndarray:
    """Walk the particles of shoppers ``rows`` through their visits, writing predictions
    into ``out``; returns their log-evidence."""
    st = _draw_particles(world, rows, m, seed)
    n_visits, n = traj.n_visits[rows], rows.size
    log_w = np.full((n, m), -np.log(m))  # normalised: logsumexp over particles = 0
    log_evidence = np.zeros(n)
    for k in range(int(n_visits.max())):
        active = n_visits > k
        arm, coupon = np.repeat(traj.arm[rows, k], m), np.repeat(traj.coupon[rows, k], m)
        click, purchase = traj.click[rows, k][:, None], traj.purchase[rows, k][:, None]
        response = world._response(st, arm, coupon)
        p_click, p_buy = response[3].reshape(n, m), response[4].reshape(n, m)
        w = np.exp(log_w)
        pc, pp = (w * p_click).sum(axis=1), (w * (p_click * p_buy)).sum(axis=1)
        at = rows[active]
        out["p_click"][at, k], out["p_purchase"][at, k] = pc[active], pp[active]
        out["p_buy_click"][at, k] = pp[active] / pc[active]
        out["ess"][at, k] = 1.0 / (w[active] ** 2).sum(axis=1)

        log_lik = _log_bernoulli(p_click, click) + np.where(click, _log_bernoulli(p_buy, purchase), 0.0)
        s, e = world._transition(st, arm, response, np.repeat(click, m), np.repeat(purchase, m))
        gap_scale, p_churn = world._return_law(st, s)
        log_lik += return_log_likelihood(gap_scale.reshape(n, m), p_churn.reshape(n, m), traj.gap[rows, k][:, None],
                                         traj.remaining[rows][:, None], world.horizon_days)
        st.satisfaction, st.expectation = s, e
        log_w += np.where(active[:, None], log_lik, 0.0)
        norm = _logsumexp(log_w)
        log_w -= norm[:, None]
        log_evidence += norm
    return log_evidence


def _draw_particles(world: GroundTruthWorld, rows: np.ndarray, m: int, seed: int) -> ShopperState:
    """``m`` prior draws for each shopper of ``rows`` (shopper by shopper), each from the
    generator seeded by ``(seed, shopper)``."""
    parts = [ShopperState.draw(world.config, world.catalog, m,
                               np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(i),))))
             for i in rows]
    return ShopperState(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(ShopperState)})


def _log_bernoulli(p: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """:math:`\\log p` where ``outcome``, else :math:`\\log(1 - p)`."""
    with np.errstate(divide="ignore"):
        return np.log(np.where(outcome, p, 1.0 - p))


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """:math:`\\log \\sum_j e^{x_j}` over the last axis, stably."""
    top = x.max(axis=-1)
    return top + np.log(np.exp(x - top[..., None]).sum(axis=-1))
