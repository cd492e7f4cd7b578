"""The ground-truth shopper world (v2): known dynamics with long-term trade-offs, batched.

One :meth:`GroundTruthWorld.step` advances every shopper of a batch by one visit in a
few dozen numpy operations (no loop over shoppers); a batch of one runs the same laws on
numpy scalars, which cost a fraction of what one-element arrays do per operation. Arms
are the catalog's item groups; an action is a flat (group, coupon level) index of
:class:`retentionrl.core.actions.ActionSpace`.

Laws at a visit of shopper :math:`i` shown group :math:`g` with coupon fraction :math:`c`
(:math:`\\sigma` the logistic function, :math:`x^+ = \\max(x, 0)`; shopper traits from
:mod:`retentionrl.simulators.world.population`, group and item traits from :mod:`retentionrl.simulators.world.catalog`,
weights and their sources in :class:`~retentionrl.simulators.world.config.WorldConfig`):

==============  ==========================================================================  ==========================
outcome         law                                                                         grounded in
==============  ==========================================================================  ==========================
item shown      item :math:`j` of group :math:`g` by its Zipf popularity; list price         Brynjolfsson et al. 2003
                :math:`p_j`, effective price :math:`\\tilde p = p_j (1 - c)`
relevance       :math:`r = r_{ig}` (1 for a favourite group, small otherwise)
click           :math:`P = \\sigma(\\alpha_0 + \\alpha_a a_g + \\alpha_r r + \\alpha_s s)`        clickbait wins clicks
                -- clickbait groups (large :math:`a_g`) win clicks from everyone
reference       :math:`R = p_j (1 - e)`: the item's list price less the discount the shopper  Kalyanaram & Winer 1995;
price           expects; :math:`x = \\log(R / \\tilde p) = \\log\\frac{1 - e}{1 - c}`                  Briesch et al. 1997
gain / loss     :math:`D = \\frac{(x - \\theta)^+}{1 + (x - \\theta)^+ / g_{max}} - \\lambda (-x - \\theta)^+`: Gupta & Cooper 1992 (S-
                no response inside the threshold :math:`\\theta`, gains saturate, losses      shaped deal effect);
                weigh :math:`\\lambda \\approx 2` times more                                    Kahneman & Tversky 1979
satiety         :math:`Z = z_i [g = g^{last}_i]`: units recently bought of the shown group    McAlister 1982 (variety
                                                                                            seeking, satiation)
purchase        only after a click; :math:`P = \\sigma(b + \\beta_r r + \\beta_q q_g + \\beta_s s  Bijmolt et al. 2005 (mean
                - \\beta_i [\\log(\\tilde p / \\bar p_g) + \\nu \\log(\\bar p_g / P_0)] + \\kappa_i D      elasticity -2.6); Bell,
                - \\zeta Z)`: the price against the group's typical price :math:`\\bar p_g`     Chiang & Padmanabhan 1999
                counts fully, the group's price level against :math:`P_0` with weight      (brand choice ~3/4 of
                :math:`\\nu`: shoppers compare prices inside a category more than across     the elasticity)
units           :math:`1 + \\mathrm{Binomial}(K, \\min(1, \\pi_0 + \\phi c))`: a deal makes         Gupta 1988; Bell et al.
                shoppers stock up                                                            1999 (stockpiling)
money           spend = :math:`p_j` x units (list price) if bought; coupon cost = :math:`c` x
                spend if redeemed (= bought with :math:`c > 0`); cost of goods
                = :math:`(1 - m_g)` x spend; profit = spend - coupon cost - cost of goods
satisfaction    :math:`s' = \\mathrm{clip}(\\rho s + \\omega_r (r - r_0) + \\omega_q q_g\\,click       Dodson, Tybout &
                + (w - \\delta\\,redeemed\\,w^+)\\,purchase - \\omega_d L + d,                       Sternthal 1978; Gedenk &
                \\pm s_{max})`, :math:`w = \\omega_p (1 + q_g)`, :math:`L = \\lambda (\\log\\frac{1-c}{1-e}  Neslin 1999 (deal
                - \\theta)^+` the loss
                of an offer below the expected discount: a purchase of a good group          purchases build less
                pleases, less so on a deal; clickbait bought or clicked displeases           loyalty)
expectation     :math:`e' = e + \\alpha_i (c - e)`: smoothed symmetrically over offers at      Kalyanaram & Winer 1995
                the shopper's own rate                                                       (smoothed reference)
satiety update  bought :math:`u` units of :math:`g`: :math:`z \\leftarrow z [g = g^{last}] + u`,
                :math:`g^{last} \\leftarrow g`; then :math:`z \\leftarrow z e^{-G / \\tau}` over the gap
dropout         after the visit with :math:`P = \\sigma(c_i - \\gamma_c s')`                     BG/NBD (Fader et al.
                (:math:`\\sigma(c_i)` = the shopper's Beta-drawn dropout), or when the drawn     2005)
                gap exceeds the horizon :math:`H` (no return within :math:`H` is churn)
return gap      :math:`G = \\max(1, \\lceil \\mu_i e^{-\\gamma_g s'} (1 + \\psi (u - 1)) X \\rceil)`  NBD (gamma rates);
                days, :math:`X \\sim \\mathrm{Exp}(1)`, :math:`u` the units bought (1 without a     van Heerde et al. 2003
                purchase): stock bought on a deal delays the next visit                     (post-promotion dip)
==============  ==========================================================================  ==========================

Trade-offs this creates: a coupon lifts the purchase probability now but costs margin,
pulls purchases forward (more units, a longer next gap), builds less satisfaction than a
full-price purchase and raises :math:`e`, so later full-price offers look like losses
(:math:`\\lambda \\approx 2`) and disappoint; clickbait wins the click now and erodes
:math:`s`, which lengthens gaps and raises dropout; showing the same group again meets a
satiated shopper; a dearer group sells less (price elasticity), so showing the dearest
groups does not pay. Values over 365 days (``evaluate(..., days=365)``) show effects that
90 days cut off.

Observation: :class:`retentionrl.interactions.history.HistoryFeatures` of each shopper's visits so far
(never the latent state). Termination: ``churned`` in the outcome; truncation at the
horizon is the caller's business (``days`` tells each shopper's day).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from retentionrl.core.checks import require_int
from retentionrl.core.policy import Policy
from retentionrl.interactions.history import HistoryFeatures
from retentionrl.simulators.interface import ShopperSimulator, VisitOutcome
from retentionrl.simulators.rollout import PolicyValue, evaluate_policy
from retentionrl.simulators.world.catalog import Catalog
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.population import ShopperState


class _After(NamedTuple):
    """What a visit leaves besides its outcome (arrays, or numpy scalars of one shopper): the
    shown item and units bought, the true P(click) and P(purchase | click), and the shoppers'
    new satisfaction, expectation, satiety and satiety group."""

    item: np.ndarray
    units: np.ndarray
    p_click: np.ndarray
    p_buy: np.ndarray
    satisfaction: np.ndarray
    expectation: np.ndarray
    satiety: np.ndarray
    satiety_group: np.ndarray


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
        self._log_discount = np.log1p(-self._levels)
        self._click_base = cfg.click_logit + cfg.click_appeal * cat.appeal
        self._purchase_quality = cfg.purchase_quality * cat.quality
        self._satisfaction_quality = cfg.satisfaction_quality * cat.quality
        self._purchase_pleasure = cfg.satisfaction_purchase * (1.0 + cat.quality)
        self._log_item_price = np.log(cat.item_price)
        # the price term's anchor: log p~ - log p_g + nu (log p_g - log P0) = log p~ - (1 - nu) log p_g - nu log P0
        log_group = np.log(cat.group_price)
        self._log_price_level = (
            1.0 - cfg.cross_group_price_weight
        ) * log_group + cfg.cross_group_price_weight * np.log(cfg.price_reference)
        self._cost_share = 1.0 - cat.margin
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

    @property
    def last_units(self) -> np.ndarray:
        """Units bought at each shopper's last step (0 without a purchase)."""
        return _read_only(self._last_units)

    @property
    def last_probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """The true ``(P(click), P(purchase | click))`` each shopper's last step drew from
        (given the item actually shown): the best any model of the responses can do."""
        return _read_only(self._last_probs[0]), _read_only(self._last_probs[1])

    def reset(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """Draw ``n`` >= 0 fresh shoppers at day 0; a ``seed`` restarts the world's generator."""
        require_int("n", n, 0)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._state = ShopperState.draw(self.config, self.catalog, int(n), self._rng)
        self._days = np.zeros(int(n))
        self._last_item = np.full(int(n), -1, dtype=np.int64)
        self._last_units = np.zeros(int(n))
        self._last_probs = (np.zeros(int(n)), np.zeros(int(n)))
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
        self._last_units = self._last_units[mask]
        self._last_probs = (self._last_probs[0][mask], self._last_probs[1][mask])
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
        u = self._rng.random((_N_UNIFORMS + self.config.max_extra_units, n), dtype=np.float32)
        # One shopper goes through the laws as numpy scalars (its row of the batch): the same
        # code and numbers, at a fraction of the per-call cost of one-element arrays.
        at = 0 if n == 1 else slice(None)
        drawn, after = self._visit(_shoppers(self._state, at), arm[at], coupon_index[at], u[:, at])
        if n == 1:
            drawn = tuple(np.array([value]) for value in drawn)
            after = _After(*(np.array([value]) for value in after))
        click, purchase, redeemed, spend, coupon_cost, cogs, gap, churned = drawn
        gap_days = np.where(churned, np.inf, gap)
        outcome = VisitOutcome(click, purchase, redeemed, spend, coupon_cost, cogs, gap_days, churned)
        st = self._state
        st.satisfaction, st.expectation = after.satisfaction, after.expectation
        st.satiety, st.satiety_group = after.satiety, after.satiety_group
        self._days += np.where(churned, 0.0, gap)
        self._last_item, self._last_units, self._last_probs = after.item, after.units, (after.p_click, after.p_buy)
        self.history.record(arm, coupon_index, outcome, gap_days)
        return self.history.features(), outcome

    def response_probabilities(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The true ``(P(click), P(purchase | click))`` of each current shopper under ``actions``,
        before the item is drawn: :math:`P(purchase \\mid click)` is averaged over the items of
        the shown group by their Zipf weights (an oracle quantity; :attr:`last_probabilities`
        gives it for the item actually shown)."""
        arm, coupon_index = self.action_space.decode(np.asarray(actions))
        st, cat = self._state, self.catalog
        lo, size = cat.offsets[arm], np.diff(cat.offsets)[arm]
        p_click: np.ndarray | float = 0.0
        p_buy: np.ndarray | float = 0.0
        for k in range(int(size.max(initial=0))):
            inside = k < size
            item = np.where(inside, lo + k, lo)
            weight = np.where(inside, cat.item_weight[item], 0.0)
            p_click, p = self._response(st, arm, item, coupon_index)[:2]
            p_buy = p_buy + weight * p
        return np.asarray(p_click), np.asarray(p_buy)

    def _visit(
        self, st: ShopperState, arm: np.ndarray, coupon_index: np.ndarray, u: np.ndarray
    ) -> tuple[tuple[np.ndarray, ...], _After]:
        """The laws of the module docstring at one visit of shoppers ``st`` (arrays, or numpy
        scalars of one shopper) shown ``arm`` with coupon ``coupon_index``, from uniforms ``u``
        (float32, one row per draw): the outcome's values in :class:`VisitOutcome`'s order
        but with the drawn gap (finite for a churned shopper too) in place of ``gap_days``,
        and what else the visit leaves. Plain tuples, so one shopper's scalars are wrapped
        into arrays once."""
        cfg, cat = self.config, self.catalog
        item = cat.draw_items(arm, u[2])
        p_click, p_buy, r, coupon_loss = self._response(st, arm, item, coupon_index)
        c = self._levels[coupon_index]

        click = u[0] < p_click
        purchase = click & (u[1] < p_buy)
        extra_p = np.minimum(cfg.extra_unit_base + cfg.extra_unit_discount * c, 1.0)
        units = (1.0 + (u[_N_UNIFORMS:] < extra_p).sum(axis=0)) * purchase
        spend = cat.item_price[item] * units
        redeemed = purchase & (c > 0)
        coupon_cost = c * spend * redeemed  # c x spend if redeemed, else +0 (both >= 0)
        cogs = self._cost_share[arm] * spend

        s, e = self._transition(st, arm, c, r, coupon_loss, click, purchase, redeemed)
        gap_scale, p_churn = self._return_law(st, s, units)
        gap = np.maximum(1.0, np.ceil(gap_scale * -np.log1p(-u[4])))
        # no return within the horizon is churn, by definition (as in the logs' trajectories)
        churned = (u[3] < p_churn) | (gap > self.horizon_days)
        satiety, satiety_group = self._satiate(st, arm, units, gap)
        drawn = (click, purchase, redeemed, spend, coupon_cost, cogs, gap, churned)
        return drawn, _After(item, units, p_click, p_buy, s, e, satiety, satiety_group)

    def _response(
        self, st: ShopperState, arm: np.ndarray, item: np.ndarray, coupon_index: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """Click and purchase-after-click probabilities, relevance and the loss :math:`L` of
        the offer against the expected discount, for shoppers ``st`` (arrays, or numpy
        scalars of one shopper) shown ``item`` of group ``arm`` with coupon ``coupon_index``."""
        cfg = self.config
        r = st.relevance[arm] if st.relevance.ndim == 1 else st.relevance[np.arange(arm.shape[0]), arm]
        s = st.satisfaction
        log_discount = self._log_discount[coupon_index]
        log_price = self._log_item_price[item] + log_discount  # log of the effective price
        log_keep = np.log1p(-st.expectation)  # log(1 - e)
        x = log_keep - log_discount  # log(R / p~), R = p (1 - e)
        threshold = cfg.price_threshold
        over = np.maximum(x - threshold, 0.0)
        gain = over / (1.0 + over / cfg.gain_saturation)  # rises with slope 1, saturates at g_max
        deal = gain - cfg.loss_aversion * np.maximum(-x - threshold, 0.0)
        satiety = st.satiety * (arm == st.satiety_group)
        p_click = _sigmoid(self._click_base[arm] + cfg.click_relevance * r + cfg.click_satisfaction * s)
        buy_logit = (
            st.purchase_logit
            + cfg.purchase_relevance * r
            + self._purchase_quality[arm]
            + cfg.purchase_satisfaction * s
            - st.price_sensitivity * (log_price - self._log_price_level[arm])
            + st.deal_sensitivity * deal
            - cfg.satiation * satiety
        )
        coupon_loss = cfg.loss_aversion * np.maximum(-x - threshold, 0.0)
        return p_click, _sigmoid(buy_logit), r, coupon_loss

    def _transition(
        self,
        st: ShopperState,
        arm: np.ndarray,
        c: np.ndarray,
        r: np.ndarray,
        coupon_loss: np.ndarray,
        click: np.ndarray,
        purchase: np.ndarray,
        redeemed: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The new satisfaction :math:`s'` and expectation :math:`e'` of shoppers ``st`` after a
        visit shown ``arm`` with coupon fraction ``c`` (relevance ``r``, offer loss
        ``coupon_loss``) and outcomes ``click``, ``purchase``, ``redeemed`` (the laws of the
        module docstring; deterministic given the outcomes)."""
        cfg = self.config
        pleasure = self._purchase_pleasure[arm]  # negative for a bought clickbait group: the deal spares none of it
        pleasure = (pleasure - cfg.deal_purchase_discount * redeemed * np.maximum(pleasure, 0.0)) * purchase
        s = (
            cfg.satisfaction_persistence * st.satisfaction
            + cfg.satisfaction_relevance * (r - cfg.relevance_reference)
            + self._satisfaction_quality[arm] * click
            + pleasure
            - cfg.satisfaction_disappointment * coupon_loss
            + st.drift
        )
        s = np.minimum(np.maximum(s, -cfg.satisfaction_clip), cfg.satisfaction_clip)
        e = st.expectation + st.smoothing * (c - st.expectation)
        return s, e

    def _return_law(self, st: ShopperState, s: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """After a visit that left shoppers ``st`` at satisfaction ``s`` (:math:`s'`) having
        bought ``units`` (0 without a purchase): the gap scale
        :math:`m = \\mu e^{-\\gamma_g s'} (1 + \\psi (u - 1)^+)` (gap
        :math:`= \\max(1, \\lceil m X \\rceil)`, :math:`X \\sim \\mathrm{Exp}(1)`) and the dropout
        probability :math:`\\sigma(c - \\gamma_c s')`."""
        cfg = self.config
        stock = 1.0 + cfg.gap_per_unit * np.maximum(units - 1.0, 0.0)
        return (
            st.mean_gap * np.exp(-cfg.gap_satisfaction * s) * stock,
            _sigmoid(st.churn_logit - cfg.churn_satisfaction * s),
        )

    def _satiate(
        self, st: ShopperState, arm: np.ndarray, units: np.ndarray, gap: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Satiety after a visit that bought ``units`` of group ``arm``, decayed over ``gap`` days."""
        bought = units > 0
        kept = np.where(bought & (arm != st.satiety_group), 0.0, st.satiety)
        group = np.where(bought, arm, st.satiety_group)
        return (kept + units) * np.exp(-gap / self.config.satiation_days), group

    def evaluate(
        self, policy: Policy, n_users: int, seed: int, *, days: int | None = None, progress: bool = False
    ) -> PolicyValue:
        """The true value of ``policy``: on-policy rollouts of ``n_users`` fresh shoppers
        until day ``days`` (default the horizon) in a new world of the same config (this
        batch is left untouched); see :func:`retentionrl.simulators.rollout.evaluate_policy`."""
        return evaluate_policy(GroundTruthWorld(self.config), policy, n_users, seed, days=days, progress=progress)

    def _check_mask(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        n = self._days.shape[0]
        if mask.dtype != bool or mask.shape != (n,):
            raise ValueError(f"mask must be a bool array of shape ({n},), got {mask.dtype} {mask.shape}")
        return mask


_N_UNIFORMS = 5
"""Uniform draws per visit before the extra-unit coins: click, purchase, item, dropout, gap."""


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
