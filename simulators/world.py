"""The ground-truth shopper world: known dynamics with long-term trade-offs, batched.

One :meth:`GroundTruthWorld.step` advances every shopper of a batch by one visit in a
few dozen numpy operations (no loop over shoppers); a batch of one runs the same laws on
numpy scalars, which cost a fraction of what one-element arrays do per operation. Arms
are the catalog's item groups; an action is a flat (group, coupon level) index of
:class:`interactions.actions.ActionSpace`.

Dynamics at a visit of shopper :math:`i` shown group :math:`g` with coupon fraction
:math:`c` (:math:`\\sigma` the logistic function, :math:`x^+ = \\max(x, 0)`; shopper traits
from :mod:`simulators.population`, group traits from :mod:`simulators.catalog`, weights
from :class:`~simulators.world_config.WorldConfig`):

==============  ==============================================================================
outcome         law
==============  ==============================================================================
relevance       :math:`r = r_{ig}` (1 for a favourite group, small otherwise)
click           :math:`P = \\sigma(\\alpha_0 + \\alpha_a a_g + \\alpha_r r + \\alpha_s s)`
                -- clickbait groups (large :math:`a_g`) win clicks from everyone
coupon utility  :math:`u = (c - e)^+ - \\lambda (e - c)^+` -- relative to the expectation
                :math:`e`, with loss aversion :math:`\\lambda \\ge 1`
purchase        only after a click; :math:`P = \\sigma(b + \\beta_r r + \\beta_q q_g + \\beta_s s + \\kappa u)`
item, spend     the shown item is uniform within group :math:`g`; quantity is
                :math:`1 + \\mathrm{Bernoulli}(p_2)`; spend = price x quantity if bought, else 0
redeemed, cost  redeemed = purchase and :math:`c > 0`; coupon cost = :math:`c` x spend if redeemed
satisfaction    :math:`s' = \\mathrm{clip}(\\rho s + \\omega_r (r - r_0) + \\omega_q q_g\\,click
                + \\omega_p\\,purchase + \\omega_d \\min(u, 0) + d,\\ \\pm s_{max})`
                -- relevant groups raise it, a clicked clickbait group (:math:`q_g < 0`) lowers
                it, an offer below the expected coupon disappoints
habituation     :math:`e' = e + \\eta (c - e)^+ - \\eta_{down} (e - c)^+` -- coupons received
                raise the expectation quickly, it fades slowly; a high :math:`e` lowers
                full-price purchasing through :math:`u`
churn           after the visit, with :math:`P = \\sigma(c_i - \\gamma_c s')`, or when the drawn
                gap exceeds the horizon :math:`H` (no return within :math:`H` is churn)
return gap      :math:`\\max(1, \\lceil \\mu_i e^{-\\gamma_g s'} X \\rceil)` days,
                :math:`X \\sim \\mathrm{Exp}(1)`; ``inf`` when churned
==============  ==============================================================================

Trade-offs this creates: a coupon lifts the purchase probability now but costs margin and
raises :math:`e`, so later full-price offers sell less and disappoint; clickbait wins the
click now and erodes :math:`s`, which lengthens gaps and raises churn; relevant groups do the
opposite.

Observation: :class:`interactions.history.HistoryFeatures` of each shopper's visits so far
(never the latent state). Termination: ``churned`` in the outcome; truncation at the
horizon is the caller's business (``days`` tells each shopper's day).
"""

from __future__ import annotations

import numpy as np

from interactions.history import HistoryFeatures
from simulators.catalog import Catalog
from simulators.interface import ShopperSimulator, VisitOutcome
from simulators.policy import Policy
from simulators.population import ShopperState
from simulators.rollout import PolicyValue, evaluate_policy
from simulators.world_config import WorldConfig


class GroundTruthWorld(ShopperSimulator):
    """A batch of shoppers living in a world of known dynamics (see the module docstring).

    :param config: all parameters of the world; the catalog is drawn from
        ``config.catalog_seed``, shoppers from the ``seed`` of :meth:`reset`.
    """

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = config if config is not None else WorldConfig()
        self.catalog = Catalog.draw(self.config)
        self.action_space = self.config.action_space
        self.horizon_days = self.config.horizon_days
        self.history = HistoryFeatures(self.action_space, self.horizon_days)
        self.observation_names = self.history.names
        cfg, cat = self.config, self.catalog
        self._levels = np.asarray(cfg.coupon_levels)
        self._click_base = cfg.click_logit + cfg.click_appeal * cat.appeal
        self._purchase_quality = cfg.purchase_quality * cat.quality
        self._satisfaction_quality = cfg.satisfaction_quality * cat.quality
        self._group_size = cat.group_size.astype(np.float64)
        self._rng = np.random.default_rng()
        self.reset(0)

    @property
    def days(self) -> np.ndarray:
        """Day of each shopper's current visit since their first visit (read-only view)."""
        return _read_only(self._days)

    @property
    def state(self) -> ShopperState:
        """The latent state (read-only views): for oracle heuristics and tests only."""
        return ShopperState(**{k: _read_only(v) for k, v in vars(self._state).items()})

    @property
    def last_item(self) -> np.ndarray:
        """The item shown (and bought, if a purchase happened) at each shopper's last step."""
        return _read_only(self._last_item)

    def reset(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """Draw ``n`` >= 0 fresh shoppers at day 0; a ``seed`` restarts the world's generator."""
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._state = ShopperState.draw(self.config, self.catalog, int(n), self._rng)
        self._days = np.zeros(int(n))
        self._last_item = np.full(int(n), -1, dtype=np.int64)
        self.history.reset(int(n))
        return self.history.features()

    def replace(self, mask: np.ndarray) -> np.ndarray:
        """Draw fresh shoppers (day 0, empty history) into the slots where ``mask`` is true."""
        mask = self._check_mask(mask)
        self._state.put(mask, ShopperState.draw(self.config, self.catalog, int(mask.sum()), self._rng))
        self._days[mask] = 0.0
        self.history.reset_rows(mask)
        return self.history.features()

    def keep_rows(self, mask: np.ndarray) -> np.ndarray:
        """Drop the shoppers where ``mask`` is false (the batch shrinks); their observations."""
        mask = self._check_mask(mask)
        self._state = self._state.take(mask)
        self._days = self._days[mask]
        self._last_item = self._last_item[mask]
        self.history.keep_rows(mask)
        return self.history.features()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, VisitOutcome]:
        """One visit of every shopper under flat ``actions`` (ints, shape ``(n,)``).

        A churned shopper stepped again gets meaningless values until it is replaced.

        :raises ValueError: actions of the wrong shape or dtype, or outside the action
            space (:meth:`ActionSpace.check`); the world is left as it was.
        """
        n = self._days.shape[0]
        arm, coupon_index = self.action_space.decode(self.action_space.check(actions, n), check=False)
        u = self._rng.random((6, n), dtype=np.float32)
        # One shopper goes through the laws as numpy scalars (its row of the batch): the same
        # code and numbers, at a fraction of the per-call cost of one-element arrays.
        at = 0 if n == 1 else slice(None)
        visit = self._visit(_shoppers(self._state, at), arm[at], self._levels[coupon_index[at]], u[:, at])
        if n == 1:
            visit = [np.array([value]) for value in visit]
        click, purchase, redeemed, spend, coupon_cost, gap, churned, satisfaction, expectation, item = visit
        self._state.satisfaction, self._state.expectation = satisfaction, expectation
        gap_days = np.where(churned, np.inf, gap)
        self._days += np.where(churned, 0.0, gap)
        self._last_item = item

        outcome = VisitOutcome(click=click, purchase=purchase, redeemed=redeemed, spend=spend,
                               coupon_cost=coupon_cost, gap_days=gap_days, churned=churned)
        self.history.record(arm, coupon_index, outcome, gap_days)
        return self.history.features(), outcome

    def response_probabilities(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The true ``(P(click), P(purchase | click))`` of each current shopper under ``actions``.

        The laws of the module docstring, from the latent state: what :meth:`step` draws
        from, and the best any model of the responses can do (an oracle quantity).
        """
        arm, coupon_index = self.action_space.decode(np.asarray(actions))
        _, _, _, p_click, p_buy, _ = self._response(self._state, arm, self._levels[coupon_index])
        return p_click, p_buy

    def _visit(self, st: ShopperState, arm: np.ndarray, c: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, ...]:
        """The laws of the module docstring at one visit of shoppers ``st`` (arrays, or numpy
        scalars of one shopper) shown ``arm`` with coupon fraction ``c``, from uniforms ``u``
        (float32, one row per draw): click, purchase, redeemed, spend, coupon cost, gap,
        churned, the new satisfaction and expectation, and the item shown."""
        cfg = self.config
        response = self._response(st, arm, c)
        p_click, p_buy = response[3], response[4]

        click = u[0] < p_click
        purchase = click & (u[1] < p_buy)
        item = self.catalog.offsets[arm] + (u[2] * self._group_size[arm]).astype(np.int64)
        spend = self.catalog.item_price[item] * purchase * (1.0 + (u[3] < cfg.extra_unit_prob))
        redeemed = purchase & (c > 0)
        coupon_cost = c * spend * redeemed  # c x spend if redeemed, else +0 (both >= 0)

        s, e = self._transition(st, arm, response, click, purchase)
        gap_scale, p_churn = self._return_law(st, s)
        gap = np.maximum(1.0, np.ceil(gap_scale * -np.log1p(-u[5])))
        # no return within the horizon is churn, by definition (as in the logs' trajectories)
        churned = (u[4] < p_churn) | (gap > self.horizon_days)
        return click, purchase, redeemed, spend, coupon_cost, gap, churned, s, e, item

    def _transition(self, st: ShopperState, arm: np.ndarray, response: tuple[np.ndarray, ...],
                    click: np.ndarray, purchase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The new satisfaction :math:`s'` and expectation :math:`e'` of shoppers ``st`` after a
        visit shown ``arm`` with :meth:`_response` ``response`` and outcomes ``click``,
        ``purchase`` (the laws of the module docstring; deterministic given the outcomes)."""
        cfg = self.config
        r, above, below, _, _, utility = response
        s = (cfg.satisfaction_persistence * st.satisfaction + cfg.satisfaction_relevance * (r - cfg.relevance_reference)
             + self._satisfaction_quality[arm] * click + cfg.satisfaction_purchase * purchase
             + cfg.satisfaction_disappointment * np.minimum(utility, 0.0) + st.drift)
        s = np.minimum(np.maximum(s, -cfg.satisfaction_clip), cfg.satisfaction_clip)
        e = st.expectation + st.habituation * above - cfg.expectation_decay * below
        return s, e

    def _return_law(self, st: ShopperState, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """After a visit that left shoppers ``st`` at satisfaction ``s`` (:math:`s'`): the gap
        scale :math:`m = \\mu e^{-\\gamma_g s'}` (gap :math:`= \\max(1, \\lceil m X \\rceil)`,
        :math:`X \\sim \\mathrm{Exp}(1)`) and the churn probability :math:`\\sigma(c - \\gamma_c s')`."""
        cfg = self.config
        return st.mean_gap * np.exp(-cfg.gap_satisfaction * s), _sigmoid(st.churn_logit - cfg.churn_satisfaction * s)

    def _response(self, st: ShopperState, arm: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, ...]:
        """Relevance, how far the coupon lies above and below the expectation, click and
        purchase-after-click probabilities and coupon utility of shoppers ``st`` (arrays, or
        numpy scalars of one shopper) shown ``arm`` with coupon fraction ``c``."""
        cfg = self.config
        r = st.relevance[arm] if st.relevance.ndim == 1 else st.relevance[np.arange(arm.shape[0]), arm]
        s, e = st.satisfaction, st.expectation
        above, below = np.maximum(c - e, 0.0), np.maximum(e - c, 0.0)
        utility = above - cfg.loss_aversion * below
        p_click = _sigmoid(self._click_base[arm] + cfg.click_relevance * r + cfg.click_satisfaction * s)
        buy_logit = (st.purchase_logit + cfg.purchase_relevance * r + self._purchase_quality[arm]
                     + cfg.purchase_satisfaction * s + st.coupon_sensitivity * utility)
        return r, above, below, p_click, _sigmoid(buy_logit), utility

    def evaluate(self, policy: Policy, n_users: int, seed: int, *, progress: bool = False) -> PolicyValue:
        """The true value of ``policy``: on-policy rollouts of ``n_users`` fresh shoppers
        over the horizon in a new world of the same config (this batch is left untouched);
        see :func:`simulators.rollout.evaluate_policy`."""
        return evaluate_policy(GroundTruthWorld(self.config), policy, n_users, seed, progress=progress)

    def _check_mask(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        n = self._days.shape[0]
        if mask.dtype != bool or mask.shape != (n,):
            raise ValueError(f"mask must be a bool array of shape ({n},), got {mask.dtype} {mask.shape}")
        return mask


def _shoppers(state: ShopperState, at: int | slice) -> ShopperState:
    """Shoppers ``at`` of a batch: views of it (a slice), or one shopper's numpy scalars and
    relevance row (an index)."""
    return ShopperState(**{name: value[at] for name, value in vars(state).items()})


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view
