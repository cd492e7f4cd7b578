"""The fused simulator step in numpy, for a batch of a few shoppers.

:class:`~retentionrl.simulators.learned.fused_step.FusedStep` pays torch's dispatch of each
of its ~25 operations (microseconds each, whatever the batch): at one shopper a step is
almost all dispatch. :class:`NumpyStep` computes the same functions from the same folded
weights (:func:`~retentionrl.simulators.learned.fused_step.fold`, copied to float32 arrays
once) with as few numpy calls as the algebra allows: the inputs that take few values enter
the products as one-hot columns, so every table lookup and bias rides in a product; the
per-shopper scalars (table rows, the action-specific inputs :math:`q`) are Python floats;
and each product writes where the next one reads, in a workspace of the batch that also
carries each shopper's GRU state and previous visit. With :math:`e_i` the one-hot row of
:math:`i`, :math:`p` the previous visit's 5 scalars and :math:`a', c', b'` its arm, click
and purchase:

.. math::

    [\\gamma^{ru},\\ \\gamma^{x}_n,\\ \\gamma^{h}_n] &= [p,\\ e_{4a' + 2c' + b'},\\ x,\\ h]
        \\begin{bmatrix} W_p^{ru} & W_p^{n} & 0 \\\\ T_{gru}^{ru} & T_{gru}^{n} & b_{hn} \\\\
                         W_x^{ru} & W_x^{n} & 0 \\\\ W_{hh}^{ru} & 0 & W_{hh}^{n} \\end{bmatrix} \\\\
    r, u &= \\sigma(\\gamma^{ru}), \\qquad n = \\tanh(\\gamma^{x}_n + r \\odot \\gamma^{h}_n),
        \\qquad h' = n + u \\odot (h - n) \\\\
    [\\mathrm{relu}(\\beta),\\ g,\\ 1] &= \\mathrm{relu}\\Big([x,\\ h',\\ c,\\ q,\\ 1,\\ e_a]
        \\begin{bmatrix} W_1 & W_1 & 0 \\\\ b_1 & b_1 & 1 \\\\ 0 & T_{head} & 0 \\end{bmatrix}\\Big),
        \\qquad o = [g,\\ 1] \\begin{bmatrix} W_{out} \\\\ b_{out} \\end{bmatrix} \\ (+\\, b_a) \\\\
    [\\psi,\\ \\ell] &= \\mathrm{relu}\\Big([\\bar g,\\ \\log(1 + spend / S),\\ e_{8a + 4 click + 2 buy + red}]
        \\begin{bmatrix} W_g & 0 \\\\ w_s & 0 \\\\ T_{ret}' & 1 \\end{bmatrix}\\Big)
        \\begin{bmatrix} W_{out}' \\\\ b_{out}' \\end{bmatrix}

(:math:`W_1` the shared head layer's columns of :math:`[x, h, c, q]`; :math:`\\bar g` the
return law's input, :math:`\\mathrm{relu}(\\beta)`, or :math:`g` where the spec says the
return reads the arm; :math:`T_{ret}'` is :math:`T_{ret}` with the redeemed column
:math:`w_r` added to its redeemed rows, and its column of ones carries :math:`b_{out}'`; the
module docstring of :mod:`~retentionrl.simulators.learned.fused_step` states the tables
and folds). :math:`q` is :meth:`ShopperSequenceModel.action_features
<retentionrl.simulators.learned.sequence_model.ShopperSequenceModel.action_features>` and
:func:`sample_gap_days` is :func:`retentionrl.simulators.learned.hazard.sample_gap_days`, one
bisection per shopper, both in Python floats.

**Contract.** Given the same inputs, previous visits and states, :meth:`NumpyStep.advance`
and :meth:`NumpyStep.return_logits` return :class:`FusedStep`'s outputs up to float32
rounding (other summation orders: about 1e-6 relative) and :attr:`NumpyStep.state` its
state; :func:`sample_gap_days` draws the day torch's draws from the same logits and uniform,
with the same float32 operations, unless a last-bit difference of the logistic function
moves a day's edge across the uniform. ``tests/test_small_batch_step.py`` checks every
output against the torch step. Arrays are float32, per-shopper inputs sequences (Python
lists in the simulator); :meth:`NumpyStep.advance` returns a new array and leaves the
layer that the next :meth:`NumpyStep.return_logits` reads in the workspace. Built from the
weights at construction: a model changed afterwards needs a new :class:`NumpyStep`.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_left
from collections.abc import Sequence
from operator import neg

import numpy as np
import torch
from scipy.special import expit

from retentionrl.interactions.history import SCALAR_FEATURES
from retentionrl.simulators.learned.fused_step import fold
from retentionrl.simulators.learned.sequence_model import N_PREV_OUTCOMES, ShopperSequenceModel

_COL = {name: i for i, name in enumerate(SCALAR_FEATURES)}
_FLOAT32 = struct.Struct("f")


def round_float32(value: float) -> float:
    """``value`` rounded to float32 (a float32 operation is the float64 one rounded so)."""
    return _FLOAT32.unpack(_FLOAT32.pack(value))[0]


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


class _Workspace:
    """The arrays of a batch of ``n`` shoppers and their views, made once and reused from
    visit to visit: each product and elementwise step writes where the next one reads, and
    numpy allocates nothing but the response outputs."""

    def __init__(
        self,
        n: int,
        n_prev: int,
        n_features: int,
        hidden: int,
        n_extra: int,
        n_layers: int,
        n_return: int,
        head_width: int,
        n_out: int,
    ) -> None:
        inputs = np.zeros((n, n_prev + n_features + hidden + n_extra), np.float32)  # prev | x | h | extra
        self.prev = inputs[:, :n_prev]
        self.features = inputs[:, n_prev : n_prev + n_features]
        self.state = inputs[:, n_prev + n_features : n_prev + n_features + hidden]
        self.extra = inputs[:, n_prev + n_features + hidden :]
        self.gru_in, self.head_in = inputs[:, : n_prev + n_features + hidden], inputs[:, n_prev:]
        gates = np.zeros((n, 4 * hidden), np.float32)  # ru | n input | n recurrent
        self.gates, self.gates_ru = gates, gates[:, : 2 * hidden]
        self.gates_n_input, self.gates_n_recurrent = gates[:, 2 * hidden : 3 * hidden], gates[:, 3 * hidden :]
        self.reset_update = np.zeros((n, 2 * hidden), np.float32)
        self.reset, self.update = self.reset_update[:, :hidden], self.reset_update[:, hidden:]
        self.scratch, self.new = np.zeros((n, hidden), np.float32), np.zeros((n, hidden), np.float32)
        self.layers = np.zeros((n, n_layers), np.float32)  # blind | shared | 1 | log spend | one-hot
        self.head, self.shared = self.layers[:, :head_width], self.layers[:, head_width - n_out : head_width]
        self.outcome = self.layers[:, head_width:]
        self.pre = np.zeros((n, n_return), np.float32)


class NumpyStep:
    """The frozen ``model``'s :class:`~retentionrl.simulators.learned.fused_step.FusedStep`
    in numpy (module docstring), for a batch that it carries: each shopper's GRU state and
    previous visit live in its workspace between visits. A visit is :meth:`advance`, then
    :meth:`return_logits` given its outcome if needed, then :meth:`record` of that outcome.

    :param model: a :class:`ShopperSequenceModel`; its folded weights are copied to the CPU once.
    """

    def __init__(self, model: ShopperSequenceModel) -> None:
        spec = model.spec
        w = fold(model)
        hidden, head, n_arms = spec.hidden_size, spec.head_hidden, spec.n_arms
        self._n_arms, self._n_scalar = n_arms, len(SCALAR_FEATURES)
        self._exposure, self._n_action = spec.exposure_input, spec.n_action_features
        self._fill = None if w.fill is None else (np.isnan(_numpy(w.fill)), _numpy(w.fill))

        # GRU rows: p | one-hot row of T_gru' | x | h; columns: ru (input + recurrent) | n input | n recurrent
        w_xp, w_hh, t_gru = _numpy(w.w_xp), _numpy(w.w_hh), _numpy(w.t_gru)
        w_x, w_p = w_xp[: spec.n_features], w_xp[spec.n_features :]
        self._w_gru = np.block(
            [
                [w_p, np.zeros((N_PREV_OUTCOMES, hidden), np.float32)],
                [t_gru, np.broadcast_to(_numpy(w.b_hn), (t_gru.shape[0], hidden))],
                [w_x, np.zeros((spec.n_features, hidden), np.float32)],
                [w_hh[:, : 2 * hidden], np.zeros((hidden, hidden), np.float32), w_hh[:, 2 * hidden :]],
            ]
        )
        # a new shopper: no previous visit (arm n_arms, no click, no buy) and the empty-history state
        self._empty = (
            np.eye(1, N_PREV_OUTCOMES + t_gru.shape[0], N_PREV_OUTCOMES + 4 * n_arms, np.float32)[0],
            _numpy(model.empty_state),
        )

        # head rows: x | h | c | q | 1 | one-hot arm; columns: blind | shared | 1
        w_1 = np.concatenate([_numpy(w.w_xh), _numpy(w.w_h), _numpy(w.w_c)[None], _numpy(w.w_q)])
        b_head, t_head = _numpy(w.b_head)[None], _numpy(w.t_head)
        self._w_head = np.block(
            [
                [w_1, w_1, np.zeros((w_1.shape[0], 1), np.float32)],
                [b_head, b_head, np.ones((1, 1), np.float32)],
                [np.zeros_like(t_head), t_head, np.zeros((n_arms + 1, 1), np.float32)],
            ]
        )
        self._w_out = np.concatenate([_numpy(w.w_out), _numpy(w.b_out)[None]])
        self._arm_bias = None if w.arm_bias is None else _numpy(w.arm_bias)

        # return rows: blind | shared | 1 | log spend | one-hot of 2 (4 a + 2 click + buy) + redeemed
        # (the return input is one of the first two); the last column is 1 (one one-hot entry)
        # and carries the output bias
        w_rs, t_ret = _numpy(w.w_rs), _numpy(w.t_ret)
        table = np.stack([t_ret, t_ret + w_rs[0]], axis=1).reshape(-1, t_ret.shape[1])
        ignored = np.zeros((head, t_ret.shape[1]), np.float32)
        reads = [ignored, _numpy(w.w_g)] if w.reads_arm else [_numpy(w.w_g), ignored]
        self._w_ret = np.block(
            [
                [
                    np.concatenate([*reads, np.zeros((1, t_ret.shape[1]), np.float32), w_rs[1:]]),
                    np.zeros((2 * head + 2, 1), np.float32),
                ],
                [table, np.ones((table.shape[0], 1), np.float32)],
            ]
        )
        self._w_logits = np.concatenate([_numpy(w.w_ret), _numpy(w.b_ret)[None]])
        self._sizes = (
            N_PREV_OUTCOMES + t_gru.shape[0],
            spec.n_features,
            hidden,
            2 + spec.n_action_features + n_arms + 1,
            self._w_ret.shape[0],
            self._w_ret.shape[1],
            2 * head + 1,
            self._w_out.shape[0],
        )
        self.reset(0)

    def reset(self, n: int, initial: np.ndarray | None = None) -> None:
        """Carry ``n`` new shoppers: no previous visit, the states ``initial`` ``(n, hidden)``
        (default: the model's empty-history state)."""
        self._ws = _Workspace(n, *self._sizes)
        self._ws.prev[:], self._ws.state[:] = self._empty[0], self._empty[1] if initial is None else initial

    def replace(self, mask: np.ndarray, initial: np.ndarray | None = None) -> None:
        """New shoppers where the bool ``mask`` ``(n,)`` is true, from the states ``initial``
        ``(mask.sum(), hidden)`` (default: the empty-history state)."""
        self._ws.prev[mask], self._ws.state[mask] = self._empty[0], self._empty[1] if initial is None else initial

    def keep_rows(self, mask: np.ndarray) -> None:
        """Carry on only the shoppers where the bool ``mask`` ``(n,)`` is true."""
        prev, state = self._ws.prev[mask], self._ws.state[mask]
        self._ws = _Workspace(prev.shape[0], *self._sizes)
        self._ws.prev[:], self._ws.state[:] = prev, state

    @property
    def state(self) -> np.ndarray:
        """Each shopper's GRU state ``(n, hidden)`` (a copy)."""
        return self._ws.state.copy()

    def advance(
        self, features: np.ndarray, arm: Sequence[int], coupon: Sequence[float], move: bool = True
    ) -> np.ndarray:
        """:meth:`FusedStep.advance` of the carried state and previous visit: the response
        outputs ``(n, 6)`` of a visit of the ``n`` shoppers, whose state moves past it (stays
        where it was without ``move``: a prediction)."""
        ws = self._ws
        kept = None if move else ws.state.copy()
        ws.features[:] = features if self._fill is None else np.where(self._fill[0], features, self._fill[1])
        np.matmul(ws.gru_in, self._w_gru, out=ws.gates)
        expit(ws.gates_ru, out=ws.reset_update)
        np.multiply(ws.reset, ws.gates_n_recurrent, out=ws.scratch)
        np.tanh(np.add(ws.scratch, ws.gates_n_input, out=ws.scratch), out=ws.new)
        np.multiply(ws.update, np.subtract(ws.state, ws.new, out=ws.scratch), out=ws.scratch)
        np.add(ws.new, ws.scratch, out=ws.state)

        for k, (x, a, c) in enumerate(zip(ws.features.tolist(), arm, coupon)):
            ws.extra[k] = self._head_extra(x, a, c)
        np.maximum(np.matmul(ws.head_in, self._w_head, out=ws.head), 0.0, out=ws.head)
        if kept is not None:
            ws.state[:] = kept
        out = ws.shared @ self._w_out
        if self._arm_bias is not None:
            out += self._arm_bias[np.asarray(arm, dtype=np.int64)]
        return out

    def _head_extra(self, x: list[float], arm: int, coupon: float) -> list[float]:
        """The head inputs after :math:`[x, h]` of one shopper: :math:`c`, :math:`q` (the
        model's action features, in the order of its ``action_features``), 1 and the arm's one-hot."""
        share = x[self._n_scalar + arm] if arm < self._n_arms else 0.0
        engaged = share * (x[_COL["click_rate"]] + x[_COL["purchase_rate"]]) * math.expm1(x[_COL["log_visits"]])
        mean, last = x[_COL["mean_coupon"]], x[_COL["last_coupon"]]
        extra = [
            coupon,
            share,
            math.log1p(engaged),
            float(engaged > 0.5),
            max(coupon - mean, 0.0),
            max(mean - coupon, 0.0),
            max(coupon - last, 0.0),
            max(last - coupon, 0.0),
            1.0,
        ]
        if self._exposure:
            ignored = x[self._n_scalar + self._n_arms + arm] if arm < self._n_arms else 0.0
            extra[-1:-1] = [ignored, float(ignored > 0.0)]
        extra += [0.0] * (self._n_arms + 1)
        extra[2 + self._n_action + arm] = 1.0
        return extra

    def return_logits(
        self,
        arm: Sequence[int],
        click: Sequence[float],
        purchase: Sequence[float],
        redeemed: Sequence[float],
        log_spend: Sequence[float],
    ) -> np.ndarray:
        """:meth:`FusedStep.return_logits` of the last :meth:`advance`, given the visit's 0/1
        click, purchase and redeemed and :math:`\\log(1 + spend / S)`: return logits ``(n, 1 + H)``."""
        ws = self._ws
        ws.outcome.fill(0.0)
        for k, (a, c, b, r, s) in enumerate(zip(arm, click, purchase, redeemed, log_spend)):
            ws.outcome[k, 0] = s
            ws.outcome[k, 1 + 8 * a + 4 * int(c) + 2 * int(b) + int(r)] = 1.0
        np.maximum(np.matmul(ws.layers, self._w_ret, out=ws.pre), 0.0, out=ws.pre)
        return ws.pre @ self._w_logits

    def record(
        self,
        arm: Sequence[int],
        coupon: Sequence[float],
        click: Sequence[float],
        purchase: Sequence[float],
        redeemed: Sequence[float],
        log_spend: Sequence[float],
    ) -> None:
        """Carry a visit into the next one's inputs: its arm and coupon inputs and 0/1 click,
        purchase and redeemed and :math:`\\log(1 + spend / S)` (``VisitInputs.prev_arm`` and
        ``prev_outcome`` of the next visit)."""
        prev = self._ws.prev
        prev.fill(0.0)
        for k, values in enumerate(zip(coupon, click, purchase, redeemed, log_spend)):
            prev[k, :N_PREV_OUTCOMES] = values
            prev[k, N_PREV_OUTCOMES + 4 * arm[k] + 2 * int(values[1]) + int(values[2])] = 1.0


def sample_gap_days(
    logits: np.ndarray, uniform: Sequence[float], after_day: Sequence[float] | None = None
) -> list[float]:
    """:func:`retentionrl.simulators.learned.hazard.sample_gap_days` of float32 return logits
    ``(n, 1 + H)`` and float32 uniforms, later than whole days ``after_day`` if given: each
    shopper's gap in days, ``inf`` for churn. Torch's ``searchsorted`` of
    :math:`t = u / (1 - \\pi) - 1` in :math:`-S_r` is here a bisection of :math:`S_r` for the
    first day with :math:`-S_r(j) \\ge t`, :math:`t` computed in float32 as torch computes it."""
    complement = expit(-logits)  # 1 - pi, then 1 - h_j
    stay = complement[:, 0].tolist()
    complement[:, 0] = 1.0
    survive = complement.cumprod(axis=1).tolist()  # S_r(0..H), S_r(0) = 1
    horizon = logits.shape[1] - 1
    gaps = []
    for k, (u, s, curve) in enumerate(zip(uniform, stay, survive)):
        if after_day is not None:
            m = max(int(after_day[k]), 0)
            start = round_float32(s * round_float32(1.0 - curve[min(m, horizon)])) if m > 0 else 0.0
            u = 2.0 if m >= horizon else round_float32(start + round_float32(u * round_float32(1.0 - start)))
        threshold = round_float32(round_float32(u / s) - 1.0) if s > 0.0 else math.inf  # 1 - pi = 0: churn
        day = bisect_left(curve, threshold, lo=1, key=neg)  # the first day j >= 1 with -S_r(j) >= t
        gaps.append(float(day) if day <= horizon else math.inf)
    return gaps
