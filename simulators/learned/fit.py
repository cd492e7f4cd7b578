"""Fitting the learned simulator on an event log: the wiring around the model's math.

:func:`fit_simulator` reads nothing but the log (never a simulator's internals):

1. visits and trajectories (:func:`retentionrl.interactions.trajectories.visits_with_trajectories`),
   the action map (:class:`retentionrl.interactions.action_map.ActionMap`), the observable features
   replayed at every visit and each head's targets (:mod:`retentionrl.simulators.learned.visit_data`);
2. a split of shoppers into train / validation (:func:`retentionrl.interactions.splits.split_users`),
   and each arm's gross margin on the training shoppers' visits
   (:func:`retentionrl.simulators.learned.visit_data.gross_margins`: the simulator's cost of goods);
3. Adam on the sum over heads of each head's mean NLL (:mod:`retentionrl.simulators.learned.losses`) over
   padded batches of trajectory windows, gradient-norm clipping, the learning rate times
   ``lr_decay`` after each epoch that does not improve the validation loss, early stopping
   after ``patience`` such epochs (the best epoch's weights are kept: its last iterate, or with
   ``average_weights`` the average of its iterates);
4. a tqdm progress bar, TensorBoard scalars of every training loss and validation metric
   (``<out>/tensorboard``), and a checkpoint (:mod:`retentionrl.simulators.learned.checkpoint`) whose
   ``config.json`` holds this :class:`FitConfig`, the data summary and the model card.

On CPU a seed fixes everything: the weights' initialisation (``torch.manual_seed``), the
split, the batch order (a seeded ``torch.Generator``) and the kernels
(``torch.use_deterministic_algorithms``), so two fits give identical weights.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata
from torch.optim.swa_utils import AveragedModel
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from retentionrl.interactions.action_map import ActionMap
from retentionrl.interactions.history import history_feature_names
from retentionrl.interactions.io import EventLog
from retentionrl.interactions.splits import split_users
from retentionrl.interactions.trajectories import visits_with_trajectories
from retentionrl.simulators.learned.arm_bias import initial_arm_bias
from retentionrl.simulators.learned.checkpoint import save_checkpoint
from retentionrl.simulators.learned.config import FitConfig
from retentionrl.simulators.learned.hazard import empirical_hazard
from retentionrl.simulators.learned.losses import class_losses, head_losses, total_loss
from retentionrl.simulators.learned.model_card import ModelCard
from retentionrl.simulators.learned.reactivation import dormancy_spells, fit_reactivation
from retentionrl.simulators.learned.sequence_model import HEAD_LAYOUT, ModelSpec, ShopperSequenceModel, VisitInputs
from retentionrl.simulators.learned.simulator import LearnedSimulator, resolve_device
from retentionrl.simulators.learned.taste import window_outputs
from retentionrl.simulators.learned.visit_data import (
    HEADS,
    batch_order,
    build_visit_data,
    gather_batch,
    gross_margins,
    trajectory_bounds,
    windows,
)
from retentionrl.simulators.world.config import WORLD_VERSION, WorldVersionError


@dataclass
class FitResult:
    """A fitted simulator, its card and the per-epoch metrics (``history``)."""

    simulator: LearnedSimulator
    card: ModelCard
    history: list[dict[str, float]] = field(default_factory=list)


def action_map_of(log: EventLog, config: FitConfig) -> ActionMap:
    """The action map (arms and coupon ladder) that :func:`fit_simulator` fits on ``log``."""
    visits = visits_with_trajectories(log, horizon_days=config.horizon_days, mode=config.visit_mode)
    return ActionMap.fit(visits, max_item_arms=config.max_item_arms, coupon_levels=config.coupon_levels)


def fit_simulator(
    log: EventLog,
    config: FitConfig,
    out_dir: str | Path | None = None,
    *,
    progress: bool = False,
    action_map: ActionMap | None = None,
) -> FitResult:
    """Fit the learned simulator on ``log`` (see the module docstring).

    :param log: a validated event log.
    :param config: hyperparameters.
    :param out_dir: where to write the checkpoint and TensorBoard events; ``None`` keeps
        the result in memory only.
    :param progress: show a progress bar.
    :param action_map: the arms and coupon ladder to use (:func:`action_map_of` a larger log
        that ``log`` is part of, so that simulators fitted on parts of it share one action
        space and one policy acts in all of them); default: fitted on ``log``.
    """
    if log.report.world_version not in (None, str(WORLD_VERSION)):
        raise WorldVersionError(
            f"{log.source}: made by world v{log.report.world_version}; this code is world "
            f"v{WORLD_VERSION}: regenerate the logs (retentionrl world logs ...)"
        )
    device = resolve_device(config.device)
    visits = visits_with_trajectories(log, horizon_days=config.horizon_days, mode=config.visit_mode)
    if action_map is None:
        action_map = ActionMap.fit(visits, max_item_arms=config.max_item_arms, coupon_levels=config.coupon_levels)
    data = build_visit_data(
        visits, action_map, log.end, config.horizon_days, config.spend_scale, exposure=config.exposure_input
    )
    split = split_users(visits["user_id"], (1.0 - config.valid_fraction, config.valid_fraction, 0.0), seed=config.seed)
    if not split.valid.any() or not split.train.any():
        raise ValueError(
            f"{log.source}: {log.n_users} shoppers are too few to hold out a validation share of "
            f"{config.valid_fraction}; use a larger log or valid_fraction"
        )
    train, valid = data.take(np.flatnonzero(split.train)), data.take(np.flatnonzero(split.valid))
    starts, lengths = trajectory_bounds(visits.loc[split.train])
    if config.bootstrap:  # trajectories drawn with replacement: a member of a bootstrap ensemble
        pick = np.random.default_rng(config.seed).integers(0, len(starts), len(starts))
        starts, lengths = starts[pick], lengths[pick]
    train_windows = windows(starts, lengths, config.window)
    valid_windows = windows(*trajectory_bounds(visits.loc[split.valid]), config.window)

    spec = ModelSpec(
        n_features=train.features.shape[1],
        n_arms=action_map.space.n_arms,
        horizon_days=config.horizon_days,
        **config.size_fields(),
    )
    coupons, counts = np.unique(train.coupon, return_counts=True)
    positives = {
        "click": int(train.click[train.click_mask].sum()),
        "purchase": int(train.purchase.sum()),
        "redeemed": int(train.redeemed[train.redeemed_mask].sum()),
    }
    card = ModelCard.describe(
        spec,
        action_map,
        config.spend_scale,
        history_feature_names(action_map.space.n_arms),
        train.support(),
        positives,
        float(coupons[counts.argmax()]),
        config.min_head_examples,
        gross_margins(visits.loc[split.train], action_map),
        log.records_cogs,
    )
    card.fit_config = _plain_config(config)
    card.data_summary = _data_summary(log, visits, action_map, int(split.train.sum()), int(split.valid.sum()))
    card.reactivation = fit_reactivation(
        dormancy_spells(visits.loc[split.train], log.end, config.horizon_days)
    ).to_dict()

    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(config.num_threads or threads)
    try:
        torch.manual_seed(config.seed)
        model = ShopperSequenceModel(spec).to(device)
        features = train.features
        constant = np.all(features == features[:1], axis=0) if len(features) else np.ones(spec.n_features, bool)
        fill = np.where(constant, features[0] if len(features) else 0.0, np.nan).astype(np.float32)
        model.get_buffer("feature_fill").copy_(torch.as_tensor(fill))
        if spec.arm_bias:  # from the visits this fit trains on (a bootstrap member: its resample)
            seen = train.take(
                np.repeat(starts, lengths) + np.arange(lengths.sum()) - np.repeat(lengths.cumsum() - lengths, lengths)
            )
            start = initial_arm_bias(
                seen.arm,
                seen.click,
                seen.purchase,
                seen.redeemed,
                seen.log_spend,
                seen.click_mask,
                seen.redeemed_mask,
                seen.spend_mask,
                spec.n_arms,
            )
            model.arm_bias.data.copy_(torch.as_tensor(start))
        hazard = empirical_hazard(train.survival_index, train.event, config.horizon_days)
        model.hazard_baseline.data.copy_(torch.as_tensor(np.log(hazard / (1.0 - hazard)), dtype=torch.float32))
        writer = SummaryWriter(str(Path(out_dir) / "tensorboard")) if out_dir is not None else None
        history = _train(
            model,
            train.to_tensors(device),
            train_windows,
            valid.to_tensors(device),
            valid_windows,
            config,
            card,
            writer,
            progress,
        )
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
    card.metrics = min(history, key=lambda h: h["valid/loss"])
    if writer is not None:
        writer.close()
    if out_dir is not None:
        save_checkpoint(out_dir, model.state_dict(), card.to_dict())
    return FitResult(LearnedSimulator(model, card, device), card, history)


TASTE_LR_FACTOR = 10.0
"""The arm tastes' prior log-odds and shifts (``ModelSpec.arm_taste``) learn at this many times
the learning rate: a few scalars shared by every visit, which Adam moves by about one learning
rate a step, so at the base rate they travel about 2 logits in a fit of ~700 steps where the
world's favourites shift the click logit by about 1.3 (world v2: click_relevance 1.5 times a
relevance gap of 0.85); at 10x they settle within the first epochs."""


def _train(
    model: ShopperSequenceModel,
    train: dict[str, torch.Tensor],
    train_windows: tuple[np.ndarray, np.ndarray],
    valid: dict[str, torch.Tensor],
    valid_windows: tuple[np.ndarray, np.ndarray],
    config: FitConfig,
    card: ModelCard,
    writer: SummaryWriter | None,
    progress: bool,
) -> list[dict[str, float]]:
    """Adam with learning-rate decay and early stopping on a validation plateau; leaves the
    best epoch's weights in ``model``: its last iterate, or with ``config.average_weights`` the
    uniform average :math:`\\bar\\theta_e = \\frac1{B}\\sum_{b=1}^{B} \\theta_{e,b}` of its ``B`` iterates
    (one per batch), which is then also what the validation scores."""
    taste = [p for name, p in model.named_parameters() if name.startswith("taste_")]
    others = [p for name, p in model.named_parameters() if not name.startswith("taste_")]
    groups = [{"params": others}] + ([{"params": taste, "lr": config.learning_rate * TASTE_LR_FACTOR}] if taste else [])
    optimizer = torch.optim.Adam(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    learned = [h for h in HEADS if card.learned(h)]
    win_start, win_len = train_windows
    # with latent classes the per-head losses weigh each visit by a posterior that read the
    # visit itself: only the joint NLL, the class summed out, is a held-out score
    stopping = "valid/loss" if model.spec.latent_classes == 1 else "valid/joint_nll"
    average: AveragedModel | None = None
    scored = model  # what is validated and kept: the last iterate, or the epoch's average of them
    best, best_state, stale, history, step = float("inf"), None, 0, [], 0
    n_batches = -(-len(win_len) // config.batch_size)
    bar = tqdm(total=config.epochs * n_batches, desc="fit simulator", unit="batch", disable=not progress)
    for epoch in range(config.epochs):
        model.train()
        if config.average_weights:
            average = AveragedModel(model)
            scored = cast(ShopperSequenceModel, average.module)  # a copy of model
        sums = dict.fromkeys(learned, 0.0)
        counts = dict.fromkeys(learned, 0)
        for batch in batch_order(len(win_len), config.batch_size, generator):
            fitted = _batch_losses(model, train, win_start[batch], win_len[batch], learned)
            losses = fitted.heads
            loss = total_loss(losses) + fitted.prior
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if average is not None:
                average.update_parameters(model)
            for h, (total, count) in losses.items():
                sums[h] += float(total.detach())
                counts[h] += int(count)
            step += 1
            if writer is not None:
                writer.add_scalar("train_step/loss", float(loss.detach()), step)
            bar.update(1)
        metrics = {f"train/{h}": sums[h] / max(counts[h], 1) for h in learned}
        metrics["train/loss"] = sum(metrics.values())
        metrics.update(_validate(scored, valid, valid_windows, config.batch_size, learned))
        metrics["epoch"] = epoch + 1
        history.append(metrics)
        if writer is not None:
            for name, value in metrics.items():
                if name != "epoch":
                    writer.add_scalar(name, value, epoch + 1)
        bar.set_postfix(train=f"{metrics['train/loss']:.4f}", valid=f"{metrics[stopping]:.4f}")
        score = metrics[stopping]
        if score < best - 1e-6:
            best, best_state, stale = score, copy.deepcopy(scored.state_dict()), 0
        else:
            stale += 1
            if stale >= config.patience:
                break
            for group in optimizer.param_groups:
                group["lr"] *= config.lr_decay
    bar.close()
    if best_state is not None:  # None only without any epoch (epochs >= 1 is checked)
        model.load_state_dict(best_state)
    model.eval()
    return history


def _validate(
    model: ShopperSequenceModel,
    data: dict[str, torch.Tensor],
    valid_windows: tuple[np.ndarray, np.ndarray],
    batch_size: int,
    learned: list[str],
) -> dict[str, float]:
    """Per-head mean NLL, their sum, the joint NLL per visit (:class:`_BatchLosses`) and the AUC
    of click and purchase on validation shoppers."""
    model.eval()
    win_start, win_len = valid_windows
    sums, counts = dict.fromkeys(learned, 0.0), dict.fromkeys(learned, 0)
    joint, visits = 0.0, 0
    scores: dict[str, list[np.ndarray]] = {"click": [], "purchase": []}
    labels: dict[str, list[np.ndarray]] = {"click": [], "purchase": []}
    with torch.inference_mode():
        for i in range(0, len(win_len), batch_size):
            fitted = _batch_losses(model, data, win_start[i : i + batch_size], win_len[i : i + batch_size], learned)
            for h, (total, count) in fitted.heads.items():
                sums[h] += float(total)
                counts[h] += int(count)
            joint += float(fitted.joint_nll)
            visits += fitted.visits
            targets = fitted.targets
            buy = torch.where(targets["click"] > 0, fitted.score("purchase_click"), fitted.score("purchase_noclick"))
            for head, logit, mask in (
                ("click", fitted.score("click"), targets["click_mask"]),
                ("purchase", buy, None),
            ):
                scores[head].append((logit if mask is None else logit[mask]).cpu().numpy())
                labels[head].append((targets[head] if mask is None else targets[head][mask]).cpu().numpy())
    metrics = {f"valid/{h}": sums[h] / max(counts[h], 1) for h in learned}
    metrics["valid/loss"] = sum(metrics.values())
    metrics["valid/joint_nll"] = joint / max(visits, 1)
    for head in ("click", "purchase"):
        if head in learned:
            metrics[f"valid/auc_{head}"] = _auc(np.concatenate(scores[head]), np.concatenate(labels[head]))
    return metrics


@dataclass
class _BatchLosses:
    """The losses of a batch of windows: per head ``(sum, count)`` (weighted by the class
    posterior with latent classes), the class shares' loss (0 without), the joint NLL of the
    batch's visits over every learned head (the class summed out) and their number, and the
    head outputs with the targets for the AUC."""

    heads: dict[str, tuple[torch.Tensor, torch.Tensor]]
    prior: torch.Tensor
    joint_nll: torch.Tensor
    visits: int
    outputs: torch.Tensor
    responsibility: torch.Tensor | None
    targets: dict[str, torch.Tensor]

    def score(self, output: str) -> torch.Tensor:
        """The ``output`` logit of each visit, as a probability averaged over the window's
        class posterior with latent classes (a score for the AUC)."""
        column = self.outputs[..., HEAD_LAYOUT.index(output)]
        if self.responsibility is None:
            return column
        return (torch.sigmoid(column) * self.responsibility).sum(dim=0)


def _batch_losses(
    model: ShopperSequenceModel,
    data: dict[str, torch.Tensor],
    win_start: np.ndarray,
    win_len: np.ndarray,
    learned: list[str],
) -> _BatchLosses:
    """The :class:`_BatchLosses` of some windows, each the start of a shopper's history (with
    ``K`` latent classes: run under every class, :func:`~retentionrl.simulators.learned.losses.class_losses`)."""
    inputs, lengths, valid, targets = gather_batch(data, win_start, win_len)
    k = model.spec.latent_classes
    if k == 1:
        hidden, _ = model.rnn(inputs, lengths=lengths)
        out = _tasted(
            model, model.heads(hidden[valid], inputs.select(valid)), inputs.arm[valid], valid, targets, learned
        )
        heads = {h: v for h, v in head_losses(out, targets).items() if h in learned}
        joint = torch.stack([total for total, _ in heads.values()]).sum()
        return _BatchLosses(heads, out.new_zeros(()), joint, int(valid.sum()), out, None, targets)
    b = len(win_len)
    outcome = inputs.outcome
    assert outcome is not None, "training windows carry every visit's outcome"
    repeated = VisitInputs(
        *(
            torch.cat([t] * k)
            for t in (inputs.features, inputs.prev_arm, inputs.prev_outcome, inputs.arm, inputs.coupon, outcome)
        )
    )
    classes = torch.arange(k, device=valid.device).repeat_interleave(b)
    hidden, _ = model.rnn(repeated, lengths=lengths.repeat(k), classes=classes)
    every = valid.repeat(k, 1)
    out = model.heads(hidden[every], repeated.select(every)).reshape(k, -1, model.spec.n_outputs)
    out = _tasted(model, out, inputs.arm[valid], valid, targets, learned)
    window = torch.nonzero(valid)[:, 0]
    fitted = class_losses(out, targets, window, b, model.class_log_prior(), learned)
    return _BatchLosses(
        fitted.heads,
        fitted.prior,
        fitted.marginal_nll,
        int(valid.sum()),
        out,
        fitted.responsibility[:, window],
        targets,
    )


def _tasted(
    model: ShopperSequenceModel,
    out: torch.Tensor,
    arm: torch.Tensor,
    valid: torch.Tensor,
    targets: dict[str, torch.Tensor],
    learned: list[str],
) -> torch.Tensor:
    """The head outputs ``out`` of a batch's real visits, with arm tastes
    (``ModelSpec.arm_taste``) the predictive click and purchase logits given each window's
    earlier visits (:func:`~retentionrl.simulators.learned.taste.window_outputs`); unchanged without."""
    if not model.spec.arm_taste:
        return out
    return window_outputs(
        out,
        arm,
        valid,
        model.taste_prior,
        model.taste_shift,
        targets["click"],
        targets["purchase"],
        targets["click_mask"],
        "purchase" in learned,
    )


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula; NaN with one class."""
    positive = labels > 0
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _plain_config(config: FitConfig) -> dict:
    out = asdict(config)
    out["coupon_levels"] = list(config.coupon_levels)
    return out


def _data_summary(
    log: EventLog, visits: pd.DataFrame, action_map: ActionMap, train_visits: int, valid_visits: int
) -> dict:
    return {
        "source": log.source,
        "events": int(len(log.events)),
        "visits": int(len(visits)),
        "users": int(log.n_users),
        "trajectories": int(visits["trajectory_id"].nunique()),
        "churned_trajectories": int(visits["churned"].sum()),
        "censored_trajectories": int(visits["censored"].sum()),
        "log_start": str(log.start),
        "log_end": str(log.end),
        "train_visits": train_visits,
        "valid_visits": valid_visits,
        "action_coverage": dict(action_map.coverage),
        "identifies_recommendation": action_map.identifies_recommendation,
        "identifies_coupon": action_map.identifies_coupon,
        "world_version": log.report.world_version,
    }
