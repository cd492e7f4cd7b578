"""The Bayes-optimal response predictions for a world log (world v2): the posterior
predictive given only what the log shows.

The world's true probabilities (:mod:`retentionrl.simulators.world.probabilities`) read the latent state
(traits, relevance of every group, satisfaction :math:`s`, expected discount :math:`e`,
satiety :math:`z`), which no model of the log can know. The best a model can do at visit
:math:`k` of a shopper is the posterior predictive given the observable history :math:`h_k`
(the groups and items shown, coupons, clicks, purchases, redemptions, units bought and
return gaps of visits :math:`0..k-1`) and what the visit shows, :math:`x_k` = (group, coupon,
item):

.. math::

    P(click_k \\mid h_k, x_k) = \\int p_{click}(\\theta, x_k)\\, dP(\\theta \\mid h_k),

:math:`\\theta` the shopper's state at visit :math:`k`. Ranking visits by it maximises the
AUC among all functions of :math:`(h_k, x_k)` (it is the likelihood-ratio ordering). The
item enters through its price (the purchase law), so the predictions are for the item
actually shown, as are the world's true probabilities of a log
(:func:`~retentionrl.simulators.world.probabilities.write_world_logs_with_truth`). Purchase is
:math:`E[p_{click}\\, p_{buy}]` (the mean of the product), purchase after a click is
:math:`E[p_{click}\\, p_{buy}] / E[p_{click}]` (the click itself is evidence).

Importance sampling over the world's own prior: :math:`M` particles per shopper drawn by
:meth:`~retentionrl.simulators.world.population.ShopperState.draw` (the first visit at :math:`s = 0`, no
satiety, :math:`e` from its prior), walked through the logged visits with the world's own
laws (:meth:`GroundTruthWorld._response`, ``_transition``, ``_return_law`` and
``_satiate``). The updates are deterministic given a particle's traits and the log:
:math:`s', e'` given the shown group, item and coupon and the logged click, purchase and
redemption; the satiety :math:`z` given the logged purchase, units :math:`u` and gap
:math:`G` (the world decays it over the gap it draws, which is the logged gap to the next
visit; after a shopper's last logged visit it is never read). After visit :math:`k` each
particle's log-weight gains the log-likelihood of what was logged:

* click: :math:`\\log p_{click}` or :math:`\\log(1 - p_{click})`; after a click,
  :math:`\\log p_{buy}` or :math:`\\log(1 - p_{buy})`, for the item shown;
* the return (:func:`return_log_likelihood`), with gap scale
  :math:`m = \\mu e^{-\\gamma_g s'} (1 + \\psi (u - 1)^+)` (:math:`u` the logged units, 0
  without a purchase) and churn probability :math:`p = \\sigma(c - \\gamma_c s')` read at the
  updated :math:`s'`. The world draws gap :math:`G = \\max(1, \\lceil m X \\rceil)`,
  :math:`X \\sim \\mathrm{Exp}(1)`, so :math:`P(G > d) = e^{-d/m}` for integers :math:`d \\ge 0`
  and :math:`P(G = g) = e^{-(g-1)/m}(1 - e^{-1/m})`; it churns with a coin of probability
  :math:`p` or when :math:`G > H`. A world log (:mod:`retentionrl.simulators.world.logs`) records the
  next visit iff the shopper did not churn and it falls on a day before the window's end
  (visit day + :math:`G` < ``days``). So a logged next visit :math:`g` days later has
  likelihood :math:`(1 - p) P(G = g)` (:math:`g \\le H`), and no logged next visit has
  :math:`p + (1 - p) P(G > \\min(H, R))` with :math:`R` = ``days`` - 1 - visit day, the
  days after the visit on which a return would still have been logged.

Every logged visit but a shopper's last is followed by a logged return, so predictions use
only the first kind; the second completes the posterior after the last visit (and
``log_evidence``). What else the log holds carries no information on the latent state: the
item shown is drawn from its group's Zipf popularity (:meth:`Catalog.draw_items
<retentionrl.simulators.world.catalog.Catalog.draw_items>`), the units of a purchase are
:math:`1 + \\mathrm{Binomial}(K, \\min(1, \\pi_0 + \\phi c))` and a purchase with a coupon is
redeemed, whatever the state: their likelihood is the same under every particle (it cancels
in the weights and is left out of ``log_evidence``), though the item and the units enter
the laws that follow and are conditioned on. Times of day are the shopper's own habit and
the arrival day is uniform; the logging policy (:mod:`retentionrl.simulators.world.logging_policies`) draws
actions from the observable history features with its own generator. Weights are kept in
logs and normalised after every visit; the effective sample size
:math:`1 / \\sum_j w_j^2` of the weights a prediction used is reported with it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from retentionrl.simulators.world.population import ShopperState
from retentionrl.simulators.world.simulator import GroundTruthWorld

DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class LoggedTrajectories:
    """Logged visits of ``n`` shoppers, padded to ``K`` visits: row ``i`` holds its first
    ``n_visits[i]`` entries (the rest are padding, never read).

    :param arm: item group shown, ints, ``(n, K)``.
    :param item: item shown (the impression's ``item_id``), ints, ``(n, K)``.
    :param coupon: coupon fraction offered, ``(n, K)``.
    :param click: clicked, bool ``(n, K)``.
    :param purchase: bought (implies ``click``), bool ``(n, K)``.
    :param redeemed: the coupon was redeemed (implies ``purchase``), bool ``(n, K)``.
    :param units: units bought, whole >= 1 after a purchase, 0 without, ``(n, K)``.
    :param gap: whole days to the next logged visit, >= 1; NaN at each shopper's last visit.
    :param n_visits: logged visits of each shopper, >= 1, ``(n,)``.
    :param remaining: days after the last visit on which a return would still have been
        logged (``days`` - 1 - its day), >= 0, ``(n,)``.
    """

    arm: np.ndarray
    item: np.ndarray
    coupon: np.ndarray
    click: np.ndarray
    purchase: np.ndarray
    redeemed: np.ndarray
    units: np.ndarray
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
        whole_units = (self.units >= 1) & (self.units % 1 == 0)
        bad = {
            "gap must be whole days >= 1 before a shopper's last visit and NaN at it": valid
            & np.where(before_last, ~whole_days, ~np.isnan(self.gap)),
            "purchase needs a click": valid & self.purchase & ~self.click,
            "redeemed needs a purchase": valid & self.redeemed & ~self.purchase,
            "units must be whole >= 1 after a purchase and 0 without": valid
            & np.where(self.purchase, ~whole_units, self.units != 0),
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
    def from_visits(
        cls, visits: pd.DataFrame, day0: pd.Timestamp, window_days: int, item_price: np.ndarray
    ) -> LoggedTrajectories:
        """The trajectories of a world log's visit table (:func:`retentionrl.interactions.visits.build_visits`).

        The visit table has no units column; a world visit buys at most one line, of the
        item shown, so its units are ``spend`` over that item's list price.

        :param visits: one row per visit, grouped by ``user_id`` in time order, with
            ``start``, ``rec_group``, ``rec_item``, ``rec_coupon``, ``clicked``,
            ``purchased``, ``redeemed``, ``spend``; shopper ``i`` of the result is the
            ``i``-th in order of appearance, and :meth:`per_visit` returns values in the
            table's row order.
        :param day0: midnight of the log's day 0 (``retentionrl.start`` of the log).
        :param window_days: the log's window ``days`` (``retentionrl.days``).
        :param item_price: list price of each item id: the catalog of the log's world
            (``world.catalog.item_price``).
        :raises ValueError: visits out of order, an item id outside ``item_price``, or a
            spend that is not whole units of the shown item's price (another catalog).
        """
        user, _ = pd.factorize(visits["user_id"], sort=False)
        day = (visits["start"].to_numpy().astype("datetime64[ns]").view("int64") - pd.Timestamp(day0).value) // DAY_NS
        first = np.r_[True, user[1:] != user[:-1]]
        if (np.diff(user) < 0).any() or (np.diff(day)[~first[1:]] < 1).any():
            raise ValueError("visits must be grouped by user_id, one visit a day at most, in time order")
        item = visits["rec_item"].to_numpy(dtype=np.int64)
        if item.size and not 0 <= item.min() <= item.max() < len(item_price):
            raise ValueError(f"rec_item must lie in [0, {len(item_price)}) (the items of item_price)")
        purchased = visits["purchased"].to_numpy(dtype=bool)
        units = np.where(purchased, visits["spend"].to_numpy(dtype=np.float64) / np.asarray(item_price)[item], 0.0)
        if (np.abs(units - np.round(units)) > 1e-6).any():
            raise ValueError(
                "spend must be whole units of the shown item's list price: is item_price the log's catalog?"
            )
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
            item=padded(item, 0),
            coupon=padded(visits["rec_coupon"].to_numpy(dtype=np.float64), 0.0),
            click=padded(visits["clicked"].to_numpy(dtype=bool), False),
            purchase=padded(purchased, False),
            redeemed=padded(visits["redeemed"].to_numpy(dtype=bool), False),
            units=padded(np.round(units), 0.0),
            gap=padded(np.where(last, np.nan, np.r_[np.diff(day), 0]).astype(np.float64), np.nan),
            n_visits=n_visits,
            remaining=(int(window_days) - 1 - day[last]).astype(np.float64),
        )


@dataclass(frozen=True)
class PosteriorPredictive:
    """Predictions at every logged visit, ``(n, K)`` arrays as the trajectories (NaN padding).

    :param p_click: :math:`P(click_k \\mid h_k, x_k)`.
    :param p_buy_click: :math:`P(purchase_k \\mid click_k, h_k, x_k)`.
    :param p_purchase: :math:`P(purchase_k \\mid h_k, x_k)`.
    :param ess: effective sample size of the weights behind each prediction, in [1, M].
    :param log_evidence: log-likelihood of each shopper's whole logged trajectory (responses
        and returns, the end of the log included) given what it was shown and the units it
        bought (their own likelihood is left out: the same under every state), ``(n,)``.
    :param n_particles: :math:`M`, particles per shopper.
    """

    p_click: np.ndarray
    p_buy_click: np.ndarray
    p_purchase: np.ndarray
    ess: np.ndarray
    log_evidence: np.ndarray
    n_particles: int


def return_log_likelihood(
    gap_scale: np.ndarray, p_churn: np.ndarray, gap: np.ndarray, remaining: np.ndarray, horizon_days: int
) -> np.ndarray:
    """Log-likelihood of what a world log shows after a visit (module docstring), elementwise.

    :param gap_scale: :math:`m`, from the updated satisfaction and the units bought.
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


def posterior_predictive(
    world: GroundTruthWorld,
    trajectories: LoggedTrajectories,
    n_particles: int,
    seed: int,
    *,
    max_batch_particles: int = 2**19,
) -> PosteriorPredictive:
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
    :raises ValueError: ``n_particles`` not an integer >= 1, or a logged visit the world
        cannot produce: a group outside the world's, an item not of the shown group, a
        coupon off the world's ladder, ``redeemed`` other than "bought with a coupon", more
        than ``1 + max_extra_units`` units.
    """
    if isinstance(n_particles, bool) or int(n_particles) != n_particles or n_particles < 1:
        raise ValueError(f"n_particles must be an integer >= 1, got {n_particles!r}")
    traj, m = trajectories, int(n_particles)
    coupon_index = _coupon_index(world, traj)
    shape = traj.arm.shape
    out = {name: np.full(shape, np.nan) for name in ("p_click", "p_buy_click", "p_purchase", "ess")}
    log_evidence = np.zeros(shape[0])
    order = np.argsort(traj.n_visits, kind="stable")  # similar lengths together: little padding
    step = max(1, int(max_batch_particles) // m)
    for lo in range(0, order.size, step):
        rows = order[lo : lo + step]
        log_evidence[rows] = _walk(world, traj, coupon_index, rows, m, seed, out)
    return PosteriorPredictive(**out, log_evidence=log_evidence, n_particles=m)


def _coupon_index(world: GroundTruthWorld, traj: LoggedTrajectories) -> np.ndarray:
    """The coupon index of every entry of ``traj`` (0 in the padding), once its logged visits
    are checked against what ``world`` can produce (:func:`posterior_predictive`)."""
    cfg, cat, valid = world.config, world.catalog, traj.valid
    arm = traj.arm[valid]
    if arm.size and not 0 <= arm.min() <= arm.max() < cfg.n_groups:
        raise ValueError(f"arm must lie in [0, {cfg.n_groups}) (the world's groups)")
    item = traj.item[valid]
    if ((item < cat.offsets[arm]) | (item >= cat.offsets[arm + 1])).any():
        raise ValueError("item must be an item of the shown group (arm) in the world's catalog")
    coupon_index = world.action_space.coupon_index(np.where(valid, traj.coupon, 0.0))
    if (valid & (traj.redeemed != (traj.purchase & (traj.coupon > 0)))).any():
        raise ValueError("redeemed must be true exactly at purchases with a coupon (the world's law)")
    if (valid & (traj.units > 1 + cfg.max_extra_units)).any():
        raise ValueError(f"units must be at most {1 + cfg.max_extra_units} (1 + the world's max_extra_units)")
    return coupon_index


def _walk(
    world: GroundTruthWorld,
    traj: LoggedTrajectories,
    coupon_index: np.ndarray,
    rows: np.ndarray,
    m: int,
    seed: int,
    out: dict[str, np.ndarray],
) -> np.ndarray:
    """Walk the particles of shoppers ``rows`` through their visits, writing predictions
    into ``out``; returns their log-evidence."""
    st = _draw_particles(world, rows, m, seed)
    n_visits, n = traj.n_visits[rows], rows.size
    # the padding walks as a neutral visit (group 0's first item, no coupon, no units)
    # whose values are never kept; no gap follows a shopper's last visit (satiety is not read)
    valid = traj.valid[rows]
    arm, item = np.where(valid, traj.arm[rows], 0), np.where(valid, traj.item[rows], 0)
    units = np.where(valid, traj.units[rows], 0.0)
    gap_after = np.where(np.arange(valid.shape[1]) < n_visits[:, None] - 1, traj.gap[rows], 0.0)
    levels = np.asarray(world.config.coupon_levels)
    log_w = np.full((n, m), -np.log(m))  # normalised: logsumexp over particles = 0
    log_evidence = np.zeros(n)
    for k in range(int(n_visits.max())):
        active = n_visits > k
        g, j, ci = np.repeat(arm[:, k], m), np.repeat(item[:, k], m), np.repeat(coupon_index[rows, k], m)
        click, purchase = traj.click[rows, k][:, None], traj.purchase[rows, k][:, None]
        p_click, p_buy, r, coupon_loss = world._response(st, g, j, ci)
        p_click, p_buy = p_click.reshape(n, m), p_buy.reshape(n, m)
        w = np.exp(log_w)
        pc, pp = (w * p_click).sum(axis=1), (w * (p_click * p_buy)).sum(axis=1)
        at = rows[active]
        out["p_click"][at, k], out["p_purchase"][at, k] = pc[active], pp[active]
        out["p_buy_click"][at, k] = pp[active] / pc[active]
        out["ess"][at, k] = 1.0 / (w[active] ** 2).sum(axis=1)

        log_lik = _log_bernoulli(p_click, click) + np.where(click, _log_bernoulli(p_buy, purchase), 0.0)
        u = np.repeat(units[:, k], m)
        s, e = world._transition(
            st,
            g,
            levels[ci],
            r,
            coupon_loss,
            np.repeat(click, m),
            np.repeat(purchase, m),
            np.repeat(traj.redeemed[rows, k], m),
        )
        gap_scale, p_churn = world._return_law(st, s, u)
        log_lik += return_log_likelihood(
            gap_scale.reshape(n, m),
            p_churn.reshape(n, m),
            traj.gap[rows, k][:, None],
            traj.remaining[rows][:, None],
            world.horizon_days,
        )
        st.satiety, st.satiety_group = world._satiate(st, g, u, np.repeat(gap_after[:, k], m))
        st.satisfaction, st.expectation = s, e
        log_w += np.where(active[:, None], log_lik, 0.0)
        norm = np.where(active, _logsumexp(log_w), 0.0)  # a finished shopper's weights stay as they are
        log_w -= norm[:, None]
        log_evidence += norm
    return log_evidence


def _draw_particles(world: GroundTruthWorld, rows: np.ndarray, m: int, seed: int) -> ShopperState:
    """``m`` prior draws for each shopper of ``rows`` (shopper by shopper), each from the
    generator seeded by ``(seed, shopper)``."""
    parts = [
        ShopperState.draw(
            world.config, world.catalog, m, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(i),)))
        )
        for i in rows
    ]
    return ShopperState(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(ShopperState)})


def _log_bernoulli(p: np.ndarray, outcome: np.ndarray) -> np.ndarray:
    """:math:`\\log p` where ``outcome``, else :math:`\\log(1 - p)`."""
    with np.errstate(divide="ignore"):
        return np.log(np.where(outcome, p, 1.0 - p))


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """:math:`\\log \\sum_j e^{x_j}` over the last axis, stably."""
    top = x.max(axis=-1)
    return top + np.log(np.exp(x - top[..., None]).sum(axis=-1))
