"""The shopper sequence model: a GRU over a trajectory's visits with fused outcome heads.

Why a GRU and not a Transformer: a simulator steps every shopper one visit at a time, for
as long as they live. A GRU carries a fixed-size hidden state, so a step costs the same
O(1) at the 1st and the 500th visit (one GRU cell on the batch,
:class:`retentionrl.simulators.learned.fused_step.FusedStep`); a Transformer
decoder needs a KV cache that grows with the history, O(k) memory and attention per step,
and batches of shoppers at different history lengths need ragged caches. Trajectories
here are short-to-medium sequences of coarse events (tens of visits), where attention's
long-range advantage is small, and the observable features
(:class:`~retentionrl.interactions.history.HistoryFeatures`) already summarise the whole history.

At visit :math:`k` of a trajectory (inputs of :class:`VisitInputs`):

.. math::

    z_k &= [x_k,\\ E(a_{k-1}),\\ R_c(a_{k-1})\\, click_{k-1},\\ R_b(a_{k-1})\\, buy_{k-1},\\ c_{k-1},
          \\ click_{k-1},\\ buy_{k-1},\\ red_{k-1},\\ \\log(1 + spend_{k-1}/S)] \\\\
    h_k &= \\mathrm{GRU}(z_k, h_{k-1}), \\qquad h_{-1} = h_\\varnothing \\text{ (learned:
          the state of an empty history)} \\\\
    g_k &= \\mathrm{ReLU}(W_1 [h_k,\\ x_k,\\ E(a_k),\\ c_k,\\ q_k] + b_1), \\qquad
    o_k = W_2\\, g_k + b_2\\ (+\\, b_{a_k}) \\\\
    \\bar g_k &= \\mathrm{ReLU}(W_1 [h_k,\\ x_k,\\ 0,\\ c_k,\\ q_k] + b_1) \\quad
          \\text{(the same layer blind to the arm's embedding)} \\\\
    \\theta_k &= W_4\\, \\mathrm{ReLU}(W_3 [\\bar g_k,\\ y_k,\\ R_c(a_k)\\, click_k,\\ R_b(a_k)\\, buy_k] + b_3) + b_4

(:math:`E(a_{k-1})` in :math:`z_k` only with ``ModelSpec.state_reads_arm``; zeros by
default: "the state and the arm" below), where :math:`b_{a_k}` is a learned intercept per arm (with ``ModelSpec.arm_bias``:
:mod:`retentionrl.simulators.learned.arm_bias`), :math:`x_k` are the observable features at
the visit, :math:`E` an arm embedding (row ``n_arms`` = no action: before the first visit, or not logged), :math:`R_c, R_b`
arm embeddings of the response to the previous visit (a click on a clickbait group can move
the state unlike a click on a favourite), :math:`c` the coupon fraction over the largest
level, and :math:`q_k` the *action-specific* inputs (:meth:`ShopperSequenceModel.action_features`),
gathered from :math:`x_k` for this visit's arm :math:`a_k` and coupon :math:`c_k`: the
shopper's engagement share of arm :math:`a_k`, :math:`\\log(1 + n_{a_k})` and
:math:`[n_{a_k} \\ge 1]` with :math:`n_{a_k}` their clicks plus purchases on it, and the
offer against their habit, :math:`(c_k - \\bar c)^+, (\\bar c - c_k)^+, (c_k - c_{k-1})^+,
(c_{k-1} - c_k)^+` (:math:`\\bar c` the mean coupon offered so far). An MLP over
:math:`[x_k, E(a_k)]` alone can hardly learn "this shopper likes this arm"; :math:`q_k`
states it. With ``ModelSpec.exposure_input``, :math:`x_k` ends with the shopper's ignored
showings of every arm (:mod:`retentionrl.simulators.learned.exposure`) and :math:`q_k` adds
the shown arm's, :math:`\\mathrm{ignored}_{a_k}` and :math:`[\\mathrm{ignored}_{a_k} > 0]`: "shown
this arm before and did not respond", which the engagement counts cannot tell from "never
shown it". :math:`o_k` are the response head outputs (:data:`HEAD_LAYOUT`), and
:math:`\\theta_k` the return hazard's coefficients, which also read :math:`y_k`, the visit's
own outcome :math:`y_k = [click_k, buy_k, red_k, \\log(1 + spend_k/S)]` and the response
embeddings of this visit's arm: when a shopper comes back depends on what happened at this
visit (a purchase satisfies, a click on a disappointing arm does not), so the simulator draws the response first and the gap given it (teacher-forced
with the logged outcome in training). Without :math:`y_k` the gap would be drawn
independently of the purchase it follows, and a policy's effect on retention *through*
purchases could only be learned from the action directly, from the logging policy's few
variations of it; with :math:`y_k` it is learned from every visit's purchase or not:

====================  =====================================================================
output                meaning
====================  =====================================================================
``click``             logit of :math:`P(click)`
``purchase_click``    logit of :math:`P(purchase \\mid click)`
``purchase_noclick``  logit of :math:`P(purchase \\mid no\\ click)` (logs without click
                      events model purchases here)
``redeemed``          logit of :math:`P(redeemed \\mid purchase, c > 0)`
``spend_mu``          :math:`\\mu`: :math:`\\log spend \\mid purchase \\sim N(\\mu, \\sigma^2)`
``spend_log_sigma``   :math:`\\log \\sigma`
``return``            the churn logit :math:`\\psi_k = \\theta_{k0}` (:math:`P` of leaving for good
                      after the visit), then :math:`H` logits of the daily return hazard
                      (:mod:`retentionrl.simulators.learned.hazard`):
                      :math:`\\ell_j = b_j + \\sum_m B_{jm} \theta_m`, a free per-day baseline
                      :math:`b` (initialised to the training log's Kaplan-Meier hazard) moved
                      per shopper and visit outcome by :math:`M` coefficients
                      :math:`\\theta_{k1..M}` on fixed "hat"
                      functions :math:`B` (piecewise linear in :math:`\\log j`, knots spread
                      evenly over :math:`[\\log 1, \\log H]`), so late days, with few returns
                      each, share their strength
====================  =====================================================================

**The return law and the arm.** The return hazard reads the shown arm only through the
shopper's response to it (:math:`R_c(a_k)\\, click_k`, :math:`R_b(a_k)\\, buy_k`) and the
shopper's own history with it (:math:`q_k`), not through :math:`E(a_k)` (:math:`\\bar g_k`): a
direct arm-to-return effect is learned from the logging policy's exposures of each arm
alone, a few thousand for a rare arm, and a fitted model carries that sampling noise into
every visit of a policy that keeps showing the arm. Measured on world v2 logs (16,000
shoppers, the quickstart's train split): with the direct path, two fits rated "always show
group 5" 0.5 return visits above the world (3.7 against 3.2) from a spurious +0.02 to
+0.04 in the probability of returning within 30 days at each visit, which the logs'
randomised first visits do not show. Without it the held-out return loss is lower
(3.1212 against 3.1237, seed 0) and the rank correlation of the 20 "always show group
g" policies' simulated and true return visits rises from 0.74 to 0.81; group 5 stays
overrated (3.6), through its response embeddings and the state. ``ModelSpec.return_reads_arm``
restores the direct path (:math:`\\bar g_k = g_k`).

**The state and the arm.** By default the GRU state reads the previous visit's arm only
through the shopper's response to it (:math:`R_c(a_{k-1})\\, click_{k-1}`,
:math:`R_b(a_{k-1})\\, buy_{k-1}`), not its embedding :math:`E(a_{k-1})`: what showing an arm
the shopper ignored does to them is learned from every ignored showing alike, not per arm from
the logging policy's few showings of a rare one, whose noise a policy that keeps showing that
arm would carry into every later state (as the direct arm path of the return law did, above).
Held-out joint NLL per visit, three bootstrap members on the quickstart's train split, without
the embedding against with it: 4.1182 / 4.1348 / 4.1028 against 4.1187 / 4.1366 / 4.1035; on
a second log (``seed: 1``) 4.1093 / 4.0872 / 4.1105 against 4.1106 / 4.0873 / 4.1095 (lower in 5
of 6 paired fits). The referee then agreed: the nine named policies' largest error of return
visits per shopper fell from 7.7% to 3.5% on the first log and from 12.0% to 8.5% on the second,
of profit from 16.4% to 12.6% and from 16.6% to 12.5%; on a third log profit fell again
(13.5% to 11.2%) but return visits rose (6.0% to 8.8%), and there an ensemble of ten v7
members met the 5% target in 11 of 18 cells against v6's 17 (README, "The state and the arm
(simulator v7)" and "How many members"). ``ModelSpec.state_reads_arm`` restores the
embedding (model version 6).

**Latent classes** (``ModelSpec.latent_classes`` = :math:`K > 1`; default 1: none). Shoppers
differ in ways their first visits do not show (how often they come, what they like), and a
GRU started from one empty-history state must learn to infer that from each history. With
classes, a shopper belongs for life to class :math:`z` with probability :math:`\\pi_z` (a
softmax of learned logits), and starts from :math:`h_{-1} = h_\\varnothing + u_z`; everything
else is shared. A window's likelihood is the mixture
:math:`\\sum_z \\pi_z \\prod_k p(y_k \\mid h^z_k)`; the fit weighs each class's losses by the
window's posterior over classes
(:func:`retentionrl.simulators.learned.losses.class_losses`) and stops early on the held-out
joint NLL with the class summed out (``valid/joint_nll``). A simulator draws a new shopper's
class from :math:`\\pi`, and a shopper replayed from logged visits from the posterior given them
(:meth:`retentionrl.simulators.learned.simulator.LearnedSimulator.observe`). Measured on
world v2 logs (the quickstart's 16,000-shopper train split): with three bootstrap members
(seeds 0-2), :math:`K = 8` lowered the held-out joint NLL per visit in 3 of 3 (4.099 / 4.120
/ 4.089 against 4.119 / 4.137 / 4.104); one fit on every shopper (seed 0) read 4.1138 /
4.0969 / 4.0959 / 4.0935 with :math:`K` = 1 / 2 / 4 / 16. The fit costs about :math:`K`
times as much (the GRU and heads run once per class). The classes are not the world's tastes: on a log of two planted
types the likelihood of a class mixture equals that of one GRU that infers the type from
the history (the chain rule), and the fit need not separate them (``tests/test_latent_classes.py``);
they pay where a GRU infers slowly from few visits: with 2 classes the spend head's loss,
weighted by each window's posterior, fell from 0.54 to 0.28 per purchase (a shopper's
spend level), the other heads' by 0.002-0.006.

**Arm tastes** (``ModelSpec.arm_taste``; default off). Each shopper favours each arm or not,
for life, and the click and purchase logits of a visit that shows a favoured arm are shifted;
the model carries each shopper's posterior of favouring each arm, updated by Bayes' rule from
their responses to it (:mod:`retentionrl.simulators.learned.taste`), so a shopper shown an arm
again and again without responding is inferred not to favour it, beyond the few repeats a
softmax logging policy leaves in the logs. The fit and the simulator read the same predictive
laws (``tests/test_arm_taste.py``). Measured on world v2 logs (the quickstart's train split,
three bootstrap members): held-out joint NLL per visit 4.1214 / 4.1339 / 4.1001 against
4.1187 / 4.1366 / 4.1035 without; the learned click shift 1.2-1.5 (the world's favourites
move the click logit by about 1.3). Under the profit PPO's policy (one group at every visit)
the purchase rate of shoppers who have not bought it yet is 0.224 against the world's 0.199
(0.263 without tastes), but shoppers who did buy a group buy it again less often than in the
world (0.33 and 0.39 against 0.37 and 0.45 under popularity), so popularity's profit reads
14% low (README, "Arm tastes").

Feature columns that never varied in the training logs carry no signal; the model replaces
them by their logged constant (buffer ``feature_fill``, NaN where the column varied), so a
policy that moves them in simulation cannot drive the model off its data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from retentionrl.core.checks import require_positive_ints
from retentionrl.interactions.history import SCALAR_FEATURES
from retentionrl.simulators.learned.config import ModelSize
from retentionrl.simulators.learned.taste import N_TASTE_HEADS

HEAD_LAYOUT: tuple[str, ...] = (
    "click",
    "purchase_click",
    "purchase_noclick",
    "redeemed",
    "spend_mu",
    "spend_log_sigma",
)
"""Names of the response head outputs :math:`o_k`, in column order; in the fused outputs
of :meth:`ShopperSequenceModel.heads` the ``H`` hazard logits follow."""
N_SCALAR_HEADS = len(HEAD_LAYOUT)
N_PREV_OUTCOMES = 5
"""Previous-visit scalars in :math:`z_k`: coupon, click, purchase, redeemed, log spend."""
N_RETURN_CHURN = 1
"""Return outputs before the daily hazard logits: the churn logit :math:`\\psi`."""
N_OUTCOMES = 4
"""This visit's outcome :math:`y_k` read by the return head: click, purchase, redeemed, log spend."""
N_ACTION_FEATURES = 7
"""Action-specific head inputs :math:`q_k` (:meth:`ShopperSequenceModel.action_features`) of every model."""
N_EXPOSURE_FEATURES = 2
"""More of them with ``ModelSpec.exposure_input``: the shown arm's ignored showings, and whether any."""
MODEL_VERSION = 7
"""Version of the model's equations and card; a checkpoint of another version does not load
(1: no action-specific inputs, no previous arm x response in the GRU input; 2: a return
hazard blind to the visit's own outcome and without a churn logit; 3: no gross margins,
so no cost of goods: world v1's net revenue; 4: the return hazard read the arm's
embedding directly; 5: the response heads had no intercept per arm, ``ModelSpec.arm_bias``;
6: the GRU state read the previous visit's arm embedding, ``ModelSpec.state_reads_arm``)."""
_COL = {name: i for i, name in enumerate(SCALAR_FEATURES)}


@dataclass(frozen=True)
class ModelSpec(ModelSize):
    """Sizes of a :class:`ShopperSequenceModel` (saved with every checkpoint): the layer sizes
    of :class:`~retentionrl.simulators.learned.config.ModelSize` (keyword arguments) and what
    the data fixes.

    :param n_features: length of the feature vector :math:`x_k`: the layout of
        :func:`retentionrl.interactions.history.history_feature_names`, ``11 + n_arms``, then
        with ``exposure_input`` the ``n_arms`` ignored-showing columns
        (:mod:`retentionrl.simulators.learned.exposure`).
    :param n_arms: recommendation arms, >= 1 (the embedding has one more row: no action).
    :param horizon_days: :math:`H`, days of the return hazard, >= 1.
    """

    n_features: int
    n_arms: int
    horizon_days: int

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive_ints(n_features=self.n_features, n_arms=self.n_arms, horizon_days=self.horizon_days)
        blocks = 2 if self.exposure_input else 1
        if self.n_features != len(SCALAR_FEATURES) + blocks * self.n_arms:
            raise ValueError(
                f"n_features must be {len(SCALAR_FEATURES)} + {blocks} x n_arms = "
                f"{len(SCALAR_FEATURES) + blocks * self.n_arms} (retentionrl.interactions.history's layout"
                f"{', then the ignored showings' if self.exposure_input else ''}), got {self.n_features}"
            )

    @property
    def n_action_features(self) -> int:
        """Action-specific head inputs :math:`q_k` (:meth:`ShopperSequenceModel.action_features`)."""
        return N_ACTION_FEATURES + (N_EXPOSURE_FEATURES if self.exposure_input else 0)

    @property
    def n_outputs(self) -> int:
        """Width of the fused head output: the response heads and the ``1 + H`` return logits."""
        return N_SCALAR_HEADS + N_RETURN_CHURN + self.horizon_days


def hat_basis(horizon_days: int, knots: int) -> torch.Tensor:
    r"""``(knots, H)`` piecewise-linear functions of :math:`\log j`, summing to 1 on every day."""
    log_day = torch.log(torch.arange(1, horizon_days + 1, dtype=torch.float64))
    centres = torch.linspace(0.0, float(log_day[-1]), knots, dtype=torch.float64)
    width = max(float(centres[1] - centres[0]), 1e-9)
    return torch.clamp(1.0 - (log_day[None, :] - centres[:, None]).abs() / width, min=0.0).float()


@dataclass
class VisitInputs:
    """Model inputs of visits, any leading shape ``(...)`` (a batch, or batch x time).

    :param features: observable features :math:`x_k`, float ``(..., n_features)``.
    :param prev_arm: previous visit's arm, long ``(...)``; ``n_arms`` = none.
    :param prev_outcome: previous visit's coupon, click, purchase, redeemed, log spend,
        float ``(..., 5)``; zeros before the first visit.
    :param arm: this visit's arm, long ``(...)``; ``n_arms`` = not logged.
    :param coupon: this visit's coupon fraction over the largest level, float ``(...)``.
    :param outcome: this visit's click, purchase, redeemed, log spend, float ``(..., 4)``:
        the return head's :math:`y_k`, logged in training; ``None`` where it is not known
        yet (a simulator step draws it from the response heads first).
    """

    features: torch.Tensor
    prev_arm: torch.Tensor
    prev_outcome: torch.Tensor
    arm: torch.Tensor
    coupon: torch.Tensor
    outcome: torch.Tensor | None = None

    def select(self, mask: torch.Tensor) -> VisitInputs:
        """The visits where the boolean ``mask`` (a leading shape) is true, flattened."""
        return VisitInputs(
            self.features[mask],
            self.prev_arm[mask],
            self.prev_outcome[mask],
            self.arm[mask],
            self.coupon[mask],
            None if self.outcome is None else self.outcome[mask],
        )


class ShopperSequenceModel(nn.Module):
    """GRU over visits with fused heads (see the module docstring for the equations)."""

    hazard_basis: torch.Tensor  # buffers, registered in __init__
    feature_fill: torch.Tensor

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.arm_embedding = nn.Embedding(spec.n_arms + 1, spec.arm_embedding)
        self.response_embedding = nn.Embedding(spec.n_arms + 1, 2 * spec.arm_embedding)
        with torch.no_grad():
            self.response_embedding.weight.mul_(0.1)
        self.gru = nn.GRU(
            spec.n_features + 3 * spec.arm_embedding + N_PREV_OUTCOMES, spec.hidden_size, batch_first=True
        )
        self.empty_state = nn.Parameter(torch.zeros(spec.hidden_size))
        if spec.latent_classes > 1:  # distinct start states, or every class would stay the same
            self.class_offset = nn.Parameter(0.5 * torch.randn(spec.latent_classes, spec.hidden_size))
            self.class_logit = nn.Parameter(torch.zeros(spec.latent_classes))
        self.head_in = nn.Linear(
            spec.hidden_size + spec.n_features + spec.arm_embedding + 1 + spec.n_action_features, spec.head_hidden
        )
        self.head_out = nn.Linear(spec.head_hidden, N_SCALAR_HEADS)
        self.hazard_in = nn.Linear(spec.head_hidden + N_OUTCOMES + 2 * spec.arm_embedding, spec.hazard_hidden)
        self.hazard_out = nn.Linear(spec.hazard_hidden, N_RETURN_CHURN + spec.hazard_knots)
        self.hazard_baseline = nn.Parameter(torch.full((spec.horizon_days,), -3.4))  # about 1/30 a day
        self.register_buffer("hazard_basis", hat_basis(spec.horizon_days, spec.hazard_knots))
        self.register_buffer("feature_fill", torch.full((spec.n_features,), float("nan")))
        if spec.arm_taste:  # l_a and delta of retentionrl.simulators.learned.taste
            self.taste_prior = nn.Parameter(torch.full((spec.n_arms,), -1.4))  # a favourite in 5
            self.taste_shift = nn.Parameter(torch.full((N_TASTE_HEADS,), 0.5))
        if spec.arm_bias:  # b_a of retentionrl.simulators.learned.arm_bias (no action: no intercept)
            self.arm_bias = nn.Parameter(torch.zeros(spec.n_arms, N_SCALAR_HEADS))
        with torch.no_grad():  # start near a spend of e^3 and a churn of 5% a visit
            self.head_out.bias[HEAD_LAYOUT.index("spend_mu")] = 3.0
            self.hazard_out.bias[0] = -3.0

    def arm_bias_table(self) -> torch.Tensor:
        """The per-arm intercepts ``(n_arms + 1, 6)`` with a row of zeros for "no action"
        (visits without a logged action keep the heads' pooled bias; a log without any
        trains no intercept at all)."""
        return nn.functional.pad(self.arm_bias, (0, 0, 0, 1))

    def _features(self, features: torch.Tensor) -> torch.Tensor:
        fill = self.feature_fill
        return torch.where(torch.isnan(fill), features, fill)

    def _responses(self, arm: torch.Tensor, click: torch.Tensor, purchase: torch.Tensor) -> list[torch.Tensor]:
        """:math:`R_c(a)\\, click` and :math:`R_b(a)\\, buy` of arms ``(...)`` and 0/1 outcomes ``(..., 1)``."""
        m = self.spec.arm_embedding
        response = self.response_embedding(arm)
        return [response[..., :m] * click, response[..., m:] * purchase]

    def _rnn_input(self, inputs: VisitInputs, features: torch.Tensor) -> torch.Tensor:
        prev = inputs.prev_outcome
        embed = self.arm_embedding(inputs.prev_arm)
        return torch.cat(
            [
                features,
                embed if self.spec.state_reads_arm else torch.zeros_like(embed),
                *self._responses(inputs.prev_arm, prev[..., 1:2], prev[..., 2:3]),
                prev,
            ],
            dim=-1,
        )

    def action_features(self, features: torch.Tensor, arm: torch.Tensor, coupon: torch.Tensor) -> torch.Tensor:
        """Action-specific inputs :math:`q_k` ``(..., spec.n_action_features)`` of the heads: what
        the history says about *this* arm and *this* coupon (module docstring)."""
        n_scalar, n_arms = len(SCALAR_FEATURES), self.spec.n_arms
        shown = arm < n_arms
        index = arm.clamp(max=n_arms - 1).unsqueeze(-1)

        def of_arm(block: torch.Tensor) -> torch.Tensor:  # the shown arm's column of a per-arm block, 0 if none
            value = block.gather(-1, index).squeeze(-1)
            return torch.where(shown, value, torch.zeros_like(value))

        share = of_arm(features[..., n_scalar : n_scalar + n_arms])
        visits = torch.expm1(features[..., _COL["log_visits"]])
        engaged = share * (features[..., _COL["click_rate"]] + features[..., _COL["purchase_rate"]]) * visits
        mean_c, last_c = features[..., _COL["mean_coupon"]], features[..., _COL["last_coupon"]]
        q = [
            share,
            torch.log1p(engaged),
            (engaged > 0.5).to(share.dtype),
            torch.relu(coupon - mean_c),
            torch.relu(mean_c - coupon),
            torch.relu(coupon - last_c),
            torch.relu(last_c - coupon),
        ]
        if self.spec.exposure_input:
            ignored = of_arm(features[..., n_scalar + n_arms :])
            q += [ignored, (ignored > 0).to(share.dtype)]
        return torch.stack(q, dim=-1)

    def heads(self, hidden: torch.Tensor, inputs: VisitInputs) -> torch.Tensor:
        """Fused outputs ``(..., n_outputs)`` of GRU states and the visits' inputs: the
        response heads, then the return logits given the visits' ``outcome``."""
        if inputs.outcome is None:
            raise ValueError("heads need the visits' outcome (VisitInputs.outcome) for the return logits")
        response, shared = self.response(hidden, self._features(inputs.features), inputs.arm, inputs.coupon)
        return torch.cat([response, self.return_logits(shared, inputs.arm, inputs.outcome)], dim=-1)

    def response(
        self, hidden: torch.Tensor, features: torch.Tensor, arm: torch.Tensor, coupon: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Response head outputs :math:`o_k` ``(..., 6)`` and the return law's input layer:
        :math:`\\bar g_k`, or :math:`g_k` when ``spec.return_reads_arm`` (``features``
        already filled by the logged constants)."""
        m, start = self.spec.arm_embedding, self.spec.hidden_size + self.spec.n_features
        embed = self.arm_embedding(arm)
        z = torch.cat(
            [
                hidden,
                features,
                torch.zeros_like(embed),
                coupon.unsqueeze(-1),
                self.action_features(features, arm, coupon),
            ],
            dim=-1,
        )
        blind = self.head_in(z)  # W_1 [h, x, 0, c, q] + b_1
        shared = torch.relu(blind + embed @ self.head_in.weight[:, start : start + m].T)
        out = self.head_out(shared)
        if self.spec.arm_bias:
            out = out + self.arm_bias_table()[arm]
        return out, (shared if self.spec.return_reads_arm else torch.relu(blind))

    def return_logits(self, shared: torch.Tensor, arm: torch.Tensor, outcome: torch.Tensor) -> torch.Tensor:
        """Return logits ``(..., 1 + H)`` (:mod:`retentionrl.simulators.learned.hazard`): the churn logit
        :math:`\\theta_{k0}` and the daily hazard logits :math:`b + B^\\top \\theta_{k1..M}`,
        given the visit's return input layer (:meth:`response`), arm :math:`a_k` and outcome
        :math:`y_k` ``(..., 4)``."""
        z = torch.cat([shared, outcome, *self._responses(arm, outcome[..., :1], outcome[..., 1:2])], dim=-1)
        theta = self.hazard_out(torch.relu(self.hazard_in(z)))
        hazard = self.hazard_baseline + theta[..., N_RETURN_CHURN:] @ self.hazard_basis
        return torch.cat([theta[..., :N_RETURN_CHURN], hazard], dim=-1)

    def initial_state(self, n: int, classes: torch.Tensor | None = None) -> torch.Tensor:
        """The state ``(n, hidden)`` of an empty history: :math:`h_\\varnothing`, plus the class's
        offset :math:`u_z` for shoppers of latent classes ``classes`` (long ``(n,)``; required
        when ``spec.latent_classes > 1``, not allowed otherwise)."""
        if self.spec.latent_classes == 1:
            if classes is not None:
                raise ValueError("this model has no latent classes: pass classes=None")
            return self.empty_state.expand(n, -1)
        if classes is None or classes.shape != (n,):
            raise ValueError(
                f"a model with {self.spec.latent_classes} latent classes needs each sequence's class, shape ({n},)"
            )
        return self.empty_state + self.class_offset[classes]

    def class_log_prior(self) -> torch.Tensor:
        """:math:`\\log \\pi_z` ``(K,)``, the classes' shares among new shoppers (``[0.]`` for one class)."""
        if self.spec.latent_classes == 1:
            return self.empty_state.new_zeros(1)
        return torch.log_softmax(self.class_logit, dim=0)

    def rnn(
        self,
        inputs: VisitInputs,
        state: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        classes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """GRU states ``(batch, time, hidden)`` over sequences from ``state`` (default: empty
        history, of ``classes`` with latent classes: :meth:`initial_state`).

        :param lengths: true length of each padded sequence (CPU ints); the GRU then skips
            the padding (a packed sequence) and the last state is each sequence's own.
        :returns: the states at every visit and the last state ``(batch, hidden)``.
        """
        z = self._rnn_input(inputs, self._features(inputs.features))
        if state is None:
            state = self.initial_state(z.shape[0], classes)
        state = state.unsqueeze(0).contiguous()
        if lengths is None:
            hidden, last = self.gru(z, state)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(z, lengths, batch_first=True, enforce_sorted=False)
            hidden, last = self.gru(packed, state)
            hidden = nn.utils.rnn.pad_packed_sequence(hidden, batch_first=True, total_length=z.shape[1])[0]
        return hidden, last.squeeze(0)

    def forward(self, inputs: VisitInputs, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run over sequences ``(batch, time, ...)`` from ``state`` (default: empty history).

        :returns: head outputs ``(batch, time, n_outputs)`` and the last state ``(batch, hidden)``.
        """
        hidden, last = self.rnn(inputs, state)
        return self.heads(hidden, inputs), last
