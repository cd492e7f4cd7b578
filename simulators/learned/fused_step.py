"""One simulator step of a fitted sequence model, with its linear maps folded for speed.

:class:`~retentionrl.simulators.learned.sequence_model.ShopperSequenceModel` states the model as training
needs it: embeddings, concatenations and layers. A simulator steps the *frozen* model a
visit at a time, where each of those ~40 small operations costs more in dispatch than in
arithmetic at a batch of a thousand shoppers. :class:`FusedStep` computes the same
functions with the inputs that take few values folded into lookup tables, built once from
the weights (:math:`W_{\\cdot}` the columns of a layer's weight that read the named input):

* **GRU input.** The input :math:`z_k` of the module docstring of
  :mod:`retentionrl.simulators.learned.sequence_model` enters the gates as
  :math:`W_x x_k + W_p\\, p_{k-1} + T_{gru}[a_{k-1}, click_{k-1}, buy_{k-1}]` with
  :math:`T_{gru}[a, c, b] = W_E E(a) + c\\, W_{R_c} R_c(a) + b\\, W_{R_b} R_b(a)` over the
  :math:`(A + 1) \\times 2 \\times 2` values of the previous arm and its 0/1 response
  (:math:`p` the previous visit's 5 scalars). The gates then follow ``torch.gru_cell``:
  :math:`r, u = \\sigma(\\cdot)`, :math:`n = \\tanh(g^{x}_n + r \\odot g^{h}_n)`,
  :math:`h' = n + u \\odot (h - n)`.
* **Shared head layer.** :math:`g_k = \\mathrm{relu}(\\beta_k + T_{head}[a_k])` with
  :math:`\\beta_k = W_h h' + W_x x_k + w_c c_k + W_q q_k + b` and
  :math:`T_{head}[a] = W_E E(a)`; the return law's :math:`\\bar g_k = \\mathrm{relu}(\\beta_k)`
  (or :math:`g_k` where the spec says the return reads the arm). The response outputs
  :math:`o_k = W_{out} g_k + b_{out}`, plus the arm's row :math:`b_{a_k}` where the spec has
  per-arm intercepts (:mod:`retentionrl.simulators.learned.arm_bias`).
* **Return logits.** The hazard layer's input :math:`[\\bar g_k, y_k, R_c(a) click, R_b(a) buy]`
  becomes :math:`W_g g_k + w_r\\, redeemed + w_s \\log spend + T_{ret}[a_k, click, buy]`,
  and the hazard output layer is composed with the fixed day basis:
  :math:`[\\psi, \\ell] = W_{out}' \\mathrm{relu}(\\cdot) + b_{out}'` with
  :math:`W_{out}' = [W_{out,0};\\ B^\\top W_{out,1..M}]` and
  :math:`b_{out}' = [b_{out,0};\\ b + B^\\top b_{out,1..M}]`, one product instead of two.

Every output equals the model's own up to float32 rounding (``tests/test_fused_step.py``
compares them with :meth:`ShopperSequenceModel.forward` on every input), so sampled
outcomes follow the same law. Built from the weights at construction (:func:`fold`, which
:class:`~retentionrl.simulators.learned.numpy_step.NumpyStep` reads too, for small batches):
a model changed afterwards needs a new :class:`FusedStep`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from retentionrl.simulators.learned.sequence_model import (
    N_OUTCOMES,
    N_PREV_OUTCOMES,
    N_RETURN_CHURN,
    ShopperSequenceModel,
)


class _Workspace:
    """Per-step tensors of a batch of ``n`` shoppers, reused from step to step: a fresh
    ~1 MB tensor every step costs the kernel's page faults, which at ``n = 1024`` took
    as long as the arithmetic."""

    def __init__(
        self,
        n: int,
        hidden: int,
        head_hidden: int,
        return_hidden: int,
        n_outputs: int,
        n_returns: int,
        device: torch.device,
    ) -> None:
        def empty(*shape: int) -> torch.Tensor:
            return torch.empty(shape, device=device)

        self.n = n
        self.gates_x, self.gates_h = empty(n, 3 * hidden), empty(n, 3 * hidden)
        self.new, self.diff, self.states = empty(n, hidden), empty(n, hidden), empty(2, n, hidden)
        self.blind, self.shared, self.outputs = empty(n, head_hidden), empty(n, head_hidden), empty(n, n_outputs)
        self.returns, self.logits = empty(n, return_hidden), empty(n, n_returns)

    def next_state(self, state: torch.Tensor) -> torch.Tensor:
        """The state buffer that ``state`` does not live in."""
        return self.states[1] if state.data_ptr() == self.states[0].data_ptr() else self.states[0]


@dataclass(frozen=True)
class FoldedWeights:
    """The frozen model's weights as the step reads them (module docstring), on the model's
    device, each matrix transposed to ``(inputs, outputs)``; :func:`fold` builds them.

    Rows of the tables ``t_gru`` and ``t_ret`` are indexed by ``4 a + 2 click + buy``,
    rows of ``t_head`` by the arm ``a``.
    """

    fill: torch.Tensor | None
    """``feature_fill`` (the logged constant, NaN where the column varied), or ``None`` when no column is filled."""
    t_gru: torch.Tensor
    """:math:`T_{gru}` with the input bias and the reset and update gates' recurrent bias, ``(4 (A + 1), 3 hidden)``."""
    w_xp: torch.Tensor
    """GRU input weights of the features then the previous visit's 5 scalars, ``(F + 5, 3 hidden)``."""
    w_hh: torch.Tensor
    """GRU recurrent weights, ``(hidden, 3 hidden)``."""
    b_hn: torch.Tensor
    """The new gate's recurrent bias, ``(hidden,)`` (inside the reset gate's product)."""
    t_head: torch.Tensor
    """:math:`T_{head}`, ``(A + 1, head_hidden)``."""
    b_head: torch.Tensor
    w_h: torch.Tensor
    w_xh: torch.Tensor
    w_c: torch.Tensor
    """The coupon's column of the shared head layer, ``(head_hidden,)``."""
    w_q: torch.Tensor
    w_out: torch.Tensor
    b_out: torch.Tensor
    t_ret: torch.Tensor
    """:math:`T_{ret}` with the hazard layer's bias, ``(4 (A + 1), hazard_hidden)``."""
    w_g: torch.Tensor
    w_rs: torch.Tensor
    """Hazard layer weights of redeemed and log spend, ``(2, hazard_hidden)``."""
    w_ret: torch.Tensor
    """:math:`W_{out}'^\\top`, ``(hazard_hidden, 1 + H)``."""
    b_ret: torch.Tensor
    reads_arm: bool
    """``ModelSpec.return_reads_arm``: the return law reads :math:`g_k`, else :math:`\\bar g_k`."""
    arm_bias: torch.Tensor | None
    """The response heads' intercept per arm, ``(A + 1, 6)`` (``ModelSpec.arm_bias``), else ``None``."""


def fold(model: ShopperSequenceModel) -> FoldedWeights:
    """The folded weights of ``model`` (module docstring), read once: copies, on its device."""
    spec = model.spec
    m, hidden, n_feat = spec.arm_embedding, spec.hidden_size, spec.n_features
    with torch.no_grad():
        fill = model.feature_fill
        arms = torch.arange(spec.n_arms + 1, device=fill.device)
        embed = model.arm_embedding(arms)
        resp_c, resp_b = model.response_embedding(arms).split(m, dim=1)
        binary = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], device=fill.device)  # (c, b)
        click, buy = binary[:, :1], binary[:, 1:]

        # GRU gates: input columns features | E | R_c click | R_b buy | previous scalars; the
        # reset and update gates' recurrent bias joins the input bias in the table
        w_ih, b_ih, w_hh, b_hh = (
            model.gru.get_parameter(name) for name in ("weight_ih_l0", "bias_ih_l0", "weight_hh_l0", "bias_hh_l0")
        )
        w_x, w_e, w_rc, w_rb, w_p = w_ih.split([n_feat, m, m, m, N_PREV_OUTCOMES], dim=1)
        bias = b_ih + torch.cat([b_hh[: 2 * hidden], torch.zeros(hidden, device=fill.device)])
        t_gru = click * (resp_c @ w_rc.T)[:, None] + buy * (resp_b @ w_rb.T)[:, None]
        if spec.state_reads_arm:
            t_gru = t_gru + (embed @ w_e.T)[:, None]

        # shared head layer columns: state | features | E | coupon | action features
        w_in = model.head_in.weight
        w_h, w_xh, w_eh, w_c, w_q = w_in.split([hidden, n_feat, m, 1, w_in.shape[1] - hidden - n_feat - m - 1], dim=1)

        # hazard layer columns: shared | click, purchase, redeemed, log spend | R_c click | R_b buy
        w_r = model.hazard_in.weight
        w_g, w_y, w_rc2, w_rb2 = w_r.split([spec.head_hidden, N_OUTCOMES, m, m], dim=1)
        t_ret = (
            (click * w_y[:, 0] + buy * w_y[:, 1] + model.hazard_in.bias)[None]
            + click * (resp_c @ w_rc2.T)[:, None]
            + buy * (resp_b @ w_rb2.T)[:, None]
        )
        w_o, b_o = model.hazard_out.weight, model.hazard_out.bias
        basis = model.hazard_basis
        return FoldedWeights(
            fill=None if bool(torch.isnan(fill).all()) else fill.clone(),
            t_gru=(t_gru + bias).reshape(-1, 3 * hidden).contiguous(),
            w_xp=torch.cat([w_x, w_p], dim=1).T.contiguous(),
            w_hh=w_hh.T.contiguous(),
            b_hn=b_hh[2 * hidden :].clone(),
            t_head=(embed @ w_eh.T).contiguous(),
            b_head=model.head_in.bias.clone(),
            w_h=w_h.T.contiguous(),
            w_xh=w_xh.T.contiguous(),
            w_c=w_c[:, 0].clone(),
            w_q=w_q.T.contiguous(),
            w_out=model.head_out.weight.T.contiguous(),
            b_out=model.head_out.bias.clone(),
            t_ret=t_ret.reshape(-1, w_r.shape[0]).contiguous(),
            w_g=w_g.T.contiguous(),
            w_rs=w_y[:, 2:].T.contiguous(),  # redeemed, log spend
            w_ret=torch.cat([w_o[:N_RETURN_CHURN], basis.T @ w_o[N_RETURN_CHURN:]]).T.contiguous(),
            b_ret=torch.cat([b_o[:N_RETURN_CHURN], model.hazard_baseline + basis.T @ b_o[N_RETURN_CHURN:]]),
            reads_arm=spec.return_reads_arm,
            arm_bias=model.arm_bias_table().clone() if spec.arm_bias else None,
        )


class FusedStep:
    """The frozen ``model``'s step with folded weights (see the module docstring).

    The tensors :meth:`advance` and :meth:`return_logits` return live in a workspace that
    the next call of the same method overwrites (the state alternates between two
    buffers, so the state passed in stays intact).

    :param model: a :class:`ShopperSequenceModel`; its weights are read once, on its device
        (:func:`fold`).
    """

    def __init__(self, model: ShopperSequenceModel) -> None:
        spec = model.spec
        self.model = model
        self.weights = fold(model)
        self._sizes = (
            spec.hidden_size,
            spec.head_hidden,
            spec.hazard_hidden,
            model.head_out.out_features,
            N_RETURN_CHURN + spec.horizon_days,
        )
        self._workspace: _Workspace | None = None

    def _buffers(self, n: int, device: torch.device) -> _Workspace:
        if self._workspace is None or self._workspace.n != n:
            self._workspace = _Workspace(n, *self._sizes, device=device)
        return self._workspace

    def advance(
        self,
        features: torch.Tensor,
        prev_arm: torch.Tensor,
        prev_outcome: torch.Tensor,
        arm: torch.Tensor,
        coupon: torch.Tensor,
        state: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One visit of ``n`` shoppers: the inputs of :class:`~retentionrl.simulators.learned.sequence_model.VisitInputs`
        (``prev_outcome``'s click and purchase 0/1) and the GRU ``state`` ``(n, hidden)``.

        :returns: response outputs ``(n, 6)``, the return law's input layer ``(n, head_hidden)``
            (:math:`\\bar g_k`, or :math:`g_k`) and the new state ``(n, hidden)`` (workspace
            tensors: see the class docstring).
        """
        w = self.weights
        if w.fill is not None:
            features = torch.where(torch.isnan(w.fill), features, w.fill)
        ws = self._buffers(features.shape[0], features.device)
        hidden = self._sizes[0]
        responded = prev_outcome[:, 1:3].to(torch.long)
        g_x = torch.index_select(w.t_gru, 0, 4 * prev_arm + 2 * responded[:, 0] + responded[:, 1], out=ws.gates_x)
        g_x.addmm_(torch.cat([features, prev_outcome], dim=1), w.w_xp)
        g_h = torch.mm(state, w.w_hh, out=ws.gates_h)
        g_h[:, 2 * hidden :] += w.b_hn
        reset_update = g_h[:, : 2 * hidden]
        reset_update += g_x[:, : 2 * hidden]
        reset_update.sigmoid_()
        new = torch.addcmul(g_x[:, 2 * hidden :], reset_update[:, :hidden], g_h[:, 2 * hidden :], out=ws.new).tanh_()
        state = torch.addcmul(
            new, reset_update[:, hidden:], torch.sub(state, new, out=ws.diff), out=ws.next_state(state)
        )

        blind = torch.addmm(w.b_head, features, w.w_xh, out=ws.blind)
        blind.addmm_(state, w.w_h).addr_(coupon, w.w_c)
        blind.addmm_(self.model.action_features(features, arm, coupon), w.w_q)
        shared = torch.index_select(w.t_head, 0, arm, out=ws.shared).add_(blind).relu_()
        outputs = torch.addmm(w.b_out, shared, w.w_out, out=ws.outputs)
        if w.arm_bias is not None:
            outputs += torch.index_select(w.arm_bias, 0, arm)
        return outputs, (shared if w.reads_arm else blind.relu_()), state

    def return_logits(
        self,
        shared: torch.Tensor,
        arm: torch.Tensor,
        click: torch.Tensor,
        purchase: torch.Tensor,
        redeemed_spend: torch.Tensor,
    ) -> torch.Tensor:
        """Return logits ``(n, 1 + H)`` given the shared layer, the arm input, 0/1 ``click``
        and ``purchase`` ``(n,)`` and ``redeemed_spend`` ``(n, 2)``: redeemed and
        :math:`\\log(1 + spend / S)` (a workspace tensor: see the class docstring)."""
        w = self.weights
        ws = self._buffers(shared.shape[0], shared.device)
        index = 4 * arm + 2 * click.to(torch.long) + purchase.to(torch.long)
        pre = torch.index_select(w.t_ret, 0, index, out=ws.returns)
        pre.addmm_(shared, w.w_g).addmm_(redeemed_spend, w.w_rs).relu_()
        return torch.addmm(w.b_ret, pre, w.w_ret, out=ws.logits)
