"""The ``uplift`` baseline: coupon targeting as shops do it without RL.

A causal uplift model, fitted on the logged decisions, estimates for each coupon level
:math:`c > 0` how much offering it raises a shopper's chance of coming back within
:math:`w` days (default 30), and the coupon goes to the shoppers for whom that uplift pays
for the coupon. What is shown is the most purchased group, as in ``popularity``.

**Outcome.** For a logged visit at time :math:`t` of a log ending at :math:`T`,
:math:`y = [\\text{next visit} \\le t + w]`. It is known only when
:math:`T - t \\ge w`; every visit with :math:`T - t < w` is left out, whatever its outcome
(dropping only the censored non-returns would keep the late returns and bias :math:`y`
upward).

**Uplift.** With :math:`k` the logged coupon level (0 = none) and observation :math:`x`
(the history features), the conditional average treatment effect of level :math:`c`

.. math::  \\tau_c(x) = P(y = 1 \\mid x, k = c) - P(y = 1 \\mid x, k = 0)

is estimated by causalml's doubly robust DR-learner (``BaseDRRegressor``, Kennedy 2023)
with gradient-boosted trees (scikit-learn's ``HistGradientBoostingRegressor``) for the
outcome and effect models, cross-fitted on three folds. Its pseudo-outcome for level
:math:`c` on the visits with :math:`k \\in \\{0, c\\}`, :math:`W = [k = c]`, is

.. math::  \\frac{W - p_c(x)}{p_c(x)(1 - p_c(x))}\\,(y - \\hat\\mu_W(x)) + \\hat\\mu_c(x) - \\hat\\mu_0(x)

with :math:`p_c(x) = P(k = c \\mid x, k \\in \\{0, c\\}) = m_c(x) / (m_c(x) + m_0(x))`,
where :math:`m_j(x) = \\sum_g \\pi_0(g, j \\mid x)` is the logging policy's probability of
coupon level :math:`j`. A log records :math:`\\pi_0` only for the logged (group, coupon)
pair, not this marginal over groups, so :math:`\\pi_0` is the logging-policy clone
(:class:`retentionrl.agents.baselines.LoggingPolicyClone`; exact in family for a softmax logger);
:math:`p_c` is clipped to :math:`[0.01, 0.99]`.

**Decision rule.** With :math:`V` the mean profit of a visit in the log (the value of one
return visit) and :math:`\\bar S_c` the mean spend of the logged visits offered level
:math:`c` (0 for a visit without a purchase, so :math:`c \\bar S_c = c\\,P(\\text{buy}
\\mid c)\\,E[\\text{spend} \\mid \\text{buy}, c]` is the expected cost of an offer, a coupon
being paid on the purchase it discounts), the net value of offering :math:`c` is

.. math::  N_c(x) = V\\,\\hat\\tau_c(x) - c\\,\\bar S_c,

and the policy shows the popularity group :math:`g^*` with coupon
:math:`c^*(x) = \\arg\\max_{c > 0} N_c(x)` when :math:`N_{c^*}(x) > 0`, with no coupon
otherwise: :math:`\\pi(a \\mid x) = [a = (g^*, c^*(x))]`, a deterministic (one-hot) policy.
Levels offered at fewer than ``MIN_VISITS`` (50) of the visits with a known outcome
are never offered: too few to estimate their uplift. The value counts only the return's own
visit, not the visits after it, as a shop's one-period uplift targeting does.

The fit is seeded (the folds and the trees); the fitted models live in memory (baselines
are refitted from the logs, never saved). causalml is an optional extra:
``pip install 'retentionrl[uplift]'``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from retentionrl.agents.baselines import LoggingPolicyClone, PopularityPolicy, _logged_rows
from retentionrl.core.actions import ActionSpace
from retentionrl.core.checks import require_int
from retentionrl.core.policy import Policy
from retentionrl.interactions.decisions import LoggedDecisions

INSTALL_HINT = "pip install 'retentionrl[uplift]'"
PROPENSITY_CLIP = 0.01
MIN_VISITS = 50
"""Fewest visits with the outcome known, per coupon level (none included), to estimate an uplift."""


def _dr_learner(seed: int) -> Any:
    """causalml's DR-learner over seeded gradient-boosted trees; a one-line ``ImportError``
    naming the extra when causalml is not installed."""
    try:
        from causalml.inference.meta import BaseDRRegressor
        from sklearn.ensemble import HistGradientBoostingRegressor
    except ImportError as exc:
        raise ImportError(f"the uplift baseline needs the optional package causalml: {INSTALL_HINT}") from exc
    trees = HistGradientBoostingRegressor(
        learning_rate=0.05,
        max_iter=200,
        max_leaf_nodes=15,
        min_samples_leaf=100,
        l2_regularization=1.0,
        early_stopping=True,
        random_state=seed,
    )
    return BaseDRRegressor(learner=trees, control_name=0)


def _threads(num_threads: int) -> AbstractContextManager:
    """At most ``num_threads`` OpenMP threads for the trees inside the block (0: no limit)."""
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn, hence of causalml

    return threadpool_limits(limits=num_threads or None, user_api="openmp")


def _check_threads(num_threads: int) -> int:
    """``num_threads`` as an int, or a ``ValueError`` unless it is a non-negative integer."""
    require_int("num_threads", num_threads, 0)
    return int(num_threads)


def coupon_level_propensity(clone: Policy, obs: np.ndarray) -> np.ndarray:
    """:math:`m_j(x)`: the probability of each coupon level under ``clone``, ``(n, n_coupons)``."""
    space = clone.action_space
    return clone.action_probs(obs).reshape(len(obs), space.n_arms, space.n_coupons).sum(axis=1)


class UpliftPolicy(Policy):
    """The popularity group, with the coupon of largest positive net uplift value (see the
    module docstring for the rule).

    :param action_space: the action space.
    :param arm: the group shown, :math:`g^*`.
    :param learner: a fitted causalml meta-learner whose ``predict(X=...)`` returns
        :math:`\\hat\\tau_c(x)` for each level of ``levels``, shape ``(n, len(levels))``.
    :param levels: the coupon indices :math:`c > 0` the learner estimates, increasing.
    :param value_per_return: :math:`V`, the profit of one return visit.
    :param coupon_cost: :math:`c\\,\\bar S_c` for each level of ``levels``.
    :param num_threads: OpenMP threads of the trees' predictions (0: the library's default).
    """

    name = "uplift"

    def __init__(
        self,
        action_space: ActionSpace,
        arm: int,
        learner: Any,
        levels: np.ndarray,
        value_per_return: float,
        coupon_cost: np.ndarray,
        num_threads: int = 1,
    ) -> None:
        super().__init__(action_space)
        self.arm = int(arm)
        self.learner = learner
        self.levels = np.asarray(levels, dtype=np.int64)
        self.value_per_return = float(value_per_return)
        self.coupon_cost = np.asarray(coupon_cost, dtype=np.float64)
        if self.coupon_cost.shape != self.levels.shape:
            raise ValueError(f"coupon_cost has shape {self.coupon_cost.shape}, levels {self.levels.shape}")
        self.num_threads = _check_threads(num_threads)

    @classmethod
    def fit(
        cls, decisions: LoggedDecisions, *, window_days: float = 30.0, seed: int = 0, num_threads: int = 1
    ) -> UpliftPolicy:
        """Fit the uplift model and the economics of the module docstring on ``decisions``.

        :param window_days: :math:`w`, the return window of the outcome.
        :param seed: seeds the logging clone, the cross-fitting folds and the trees.
        :param num_threads: OpenMP threads of the trees, in the fit and in the policy's
            predictions (0: the library's default); threads oversubscribing busy cores make
            the trees many times slower.
        :raises ValueError: no logged action, or fewer than ``MIN_VISITS`` visits with
            ``window_days`` of log after them without a coupon, or with every coupon level.
        :raises ImportError: causalml is not installed (names the extra to install).
        """
        learner = _dr_learner(seed)
        _check_threads(num_threads)
        rows = _logged_rows(decisions, "uplift")
        space = rows.action_map.space
        arm, _ = space.decode(PopularityPolicy.fit(decisions).action)
        known = rows.take(rows.observed_days >= window_days)
        _, level = space.decode(known.action)
        count = np.bincount(level, minlength=space.n_coupons)
        levels = np.flatnonzero(count[1:] >= MIN_VISITS) + 1
        if count[0] < MIN_VISITS or levels.size == 0:
            raise ValueError(
                f"the uplift of a coupon needs {MIN_VISITS} logged visits with {window_days:g} days of "
                f"log after them without a coupon and {MIN_VISITS} with one; by coupon level the logs "
                f"hold {count.tolist()}"
            )
        used = np.isin(level, np.r_[0, levels])
        known, level = known.take(used), level[used]
        returned = np.nan_to_num(known.next_visit_days, nan=np.inf) <= window_days
        m = coupon_level_propensity(LoggingPolicyClone.fit(rows, seed=seed), known.obs)
        p = {int(c): np.clip(m[:, c] / (m[:, c] + m[:, 0]), PROPENSITY_CLIP, 1.0 - PROPENSITY_CLIP) for c in levels}
        with _threads(num_threads):
            learner.fit(X=known.obs, treatment=level, y=returned.astype(np.float64), p=p, seed=seed)
        _, logged_level = space.decode(rows.action)
        mean_spend = np.array([rows.spend[logged_level == c].mean() for c in levels])
        cost = space.coupon_fraction(levels) * mean_spend
        return cls(space, int(arm), learner, levels, float(decisions.profit.mean()), cost, num_threads)

    def uplift(self, obs: np.ndarray) -> np.ndarray:
        """:math:`\\hat\\tau_c(x)` for each level of ``levels``: ``(n, L)``, the mean of the
        DR-learner's cross-fitted effect models, as ``BaseDRRegressor.predict`` returns it.
        Called directly because that method also evaluates every outcome model, more than
        half of its time, for components it does not return."""
        x = np.asarray(obs, dtype=np.float32)
        with _threads(self.num_threads):
            return np.stack(
                [np.mean([model.predict(x) for model in self.learner.models_tau[c]], axis=0) for c in self.levels],
                axis=1,
            )

    def net_value(self, obs: np.ndarray) -> np.ndarray:
        """:math:`N_c(x) = V \\hat\\tau_c(x) - c \\bar S_c` for each level of ``levels``: ``(n, L)``."""
        return self.value_per_return * self.uplift(obs) - self.coupon_cost

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        """One-hot on (popularity group, the coupon of the module docstring's rule)."""
        n = len(obs)
        net = self.net_value(obs)
        best = net.argmax(axis=1)
        coupon = np.where(net[np.arange(n), best] > 0.0, self.levels[best], 0)
        probs = np.zeros((n, self.action_space.n_actions))
        probs[np.arange(n), self.action_space.encode(self.arm, coupon)] = 1.0
        return probs
