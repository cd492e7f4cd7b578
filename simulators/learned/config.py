"""Hyperparameters of a simulator fit (saved as JSON beside the checkpoint).

Kept apart from :mod:`retentionrl.simulators.learned.fit` so that reading or validating a config (the CLI's
defaults) does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from retentionrl.core.actions import DEFAULT_COUPON_LEVELS
from retentionrl.core.checks import require_int, require_positive_ints
from retentionrl.interactions.visits import VisitMode


@dataclass(frozen=True, kw_only=True)
class ModelSize:
    """Sizes of a :class:`~retentionrl.simulators.learned.sequence_model.ShopperSequenceModel`,
    set by whoever fits one: a :class:`FitConfig` carries them to the model's
    :class:`~retentionrl.simulators.learned.sequence_model.ModelSpec`, which adds what the data fixes."""

    hidden_size: int = 64
    """GRU state size, >= 1 (64 costs about 50 kFLOP per shopper-step)"""
    arm_embedding: int = 8
    """size of the arm embedding E, >= 1"""
    head_hidden: int = 64
    """width of the shared head layer W_1, >= 1"""
    hazard_knots: int = 12
    """M: basis functions of the return hazard over days, >= 2"""
    hazard_hidden: int = 32
    """width of the return head's hidden layer W_3 (it reads the visit's outcome), >= 1"""
    return_reads_arm: bool = False
    """the return hazard also reads the shown arm's embedding directly, not only the shopper's
    response to it (off: see retentionrl.simulators.learned.sequence_model, "the return law and the arm")"""
    state_reads_arm: bool = False
    """the GRU state also reads the previous visit's arm embedding E(a_{k-1}), not only the shopper's response
    to it (off: see retentionrl.simulators.learned.sequence_model, "the state and the arm"; on: model version 6)"""
    arm_bias: bool = True
    """the response heads add a learned intercept per arm, started at the logged rates
    (retentionrl.simulators.learned.arm_bias): a rare arm keeps its own rates (on: a lower held-out
    loss on every head in 4 of 4 paired fits on world logs; off: model version 5's heads)"""
    exposure_input: bool = False
    """the model also reads, per arm, the shopper's ignored showings (shown, neither clicked nor bought:
    retentionrl.simulators.learned.exposure), and those of the shown arm among its action-specific inputs"""
    arm_taste: bool = False
    """each shopper favours each arm or not, for life, inferred from their clicks and purchases of it
    (retentionrl.simulators.learned.taste): a mixture per shopper and arm over the click and purchase heads.
    Off: on world v2 logs it fixed the purchase rate of shoppers shown a group they had not bought (0.224
    against the world's 0.199; 0.263 without) but not what a run delivers (README, "Arm tastes")"""
    latent_classes: int = 1
    """K: shopper classes, >= 1. With K > 1 each shopper belongs, for life, to one of K classes, each with its
    own GRU start state (retentionrl.simulators.learned.sequence_model, "latent classes"); 1: one start state.
    The fit costs about K times as much. On world v2 logs (16,000 shoppers, seed 0) the held-out joint NLL
    per visit was 4.1138 / 4.0969 / 4.0959 / 4.0935 with 1 / 2 / 4 / 16 classes (README, "Latent shopper
    classes": why the default is still 1)"""

    def __post_init__(self) -> None:
        require_positive_ints(
            hidden_size=self.hidden_size,
            arm_embedding=self.arm_embedding,
            head_hidden=self.head_hidden,
            hazard_hidden=self.hazard_hidden,
            latent_classes=self.latent_classes,
        )
        require_int("hazard_knots", self.hazard_knots, 2)

    def size_fields(self) -> dict[str, Any]:
        """The :class:`ModelSize` fields, by name."""
        return {f.name: getattr(self, f.name) for f in fields(ModelSize)}


@dataclass(frozen=True)
class FitConfig(ModelSize):
    """Hyperparameters of a fit (saved as JSON beside the checkpoint): the model's sizes
    (:class:`ModelSize`) and the training's settings."""

    epochs: int = 30
    """most passes over the training windows, >= 1 (early stopping usually ends sooner)"""
    patience: int = 4
    """epochs without a better validation loss before stopping, >= 1"""
    lr_decay: float = 0.3
    """factor in (0, 1] on the learning rate after each epoch without a better validation loss (1: constant);
    the decayed steps settle the noisy end of training, which otherwise varies from fit to fit"""
    average_weights: bool = True
    """validate and keep, at each epoch, the average of the epoch's iterates (one per batch; stochastic weight
    averaging within an epoch, Izmailov et al. 2018) instead of its last iterate. At the full learning rate
    the last iterate's purchase intercept moves by a few percent from epoch to epoch, and early stopping keeps
    whichever epoch the validation loss (mostly the spend head's) favours, so a fit's purchase rate is off in
    the large by that much; the average is not. Why it is the default (docs/agent_ablation.md, thirteenth
    round): lower validation loss in 9 of 12 bootstrap fits on four world logs, and on the two logs not looked
    at before it was chosen, the mean |error| of return visits and profit per shopper over 11 policies fell on
    both (3.3% -> 2.7% and 6.9% -> 5.8%; 4.8% -> 3.8% and 10.7% -> 9.6%). False: the last iterate (before)"""
    batch_size: int = 256
    """trajectory windows per gradient step, >= 1"""
    window: int = 128
    """most visits per training window, >= 1; longer trajectories are cut (the features carry the rest)"""
    learning_rate: float = 3e-3
    """Adam step size, > 0"""
    weight_decay: float = 0.0
    """Adam L2 penalty, >= 0"""
    grad_clip: float = 1.0
    """largest gradient norm, > 0"""
    valid_fraction: float = 0.1
    """share of shoppers held out for validation and early stopping, in (0, 1)"""
    seed: int = 0
    """seeds the initialisation, the user split and the batch order"""
    bootstrap: bool = False
    """train on the training shoppers' trajectories drawn with replacement (seeded): fits
    with different seeds then differ as the logs' sampling noise says, which is what a
    bootstrap ensemble's disagreement measures (retentionrl.simulators.learned.ensemble)"""
    device: str = "auto"
    """auto (CUDA when available), cpu or cuda"""
    num_threads: int = 1
    """CPU threads torch uses during the fit (0: torch's default); a width-64 GRU gains little from more,
    and threads oversubscribing busy cores make it many times slower"""
    horizon_days: int = 90
    """H: return within H days, else churn; also scales the time features, >= 1"""
    spend_scale: float = 50.0
    """S: typical spend per purchase of the observable features, > 0 (use the world's price median on world logs)"""
    max_item_arms: int = 50
    """most item arms when the log has no item groups (ActionMap.fit)"""
    coupon_levels: tuple[float, ...] = DEFAULT_COUPON_LEVELS
    """the coupon ladder the logged coupons map onto"""
    visit_mode: VisitMode = "auto"
    """how events group into visits (retentionrl.interactions.visits): auto, session, session_id or day (purchase days)"""
    min_head_examples: int = 20
    """training visits a head needs to count as learned, >= 1"""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive_ints(
            epochs=self.epochs,
            patience=self.patience,
            batch_size=self.batch_size,
            window=self.window,
            horizon_days=self.horizon_days,
            min_head_examples=self.min_head_examples,
        )
        for name in ("learning_rate", "grad_clip", "spend_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"valid_fraction must lie in (0, 1), got {self.valid_fraction!r}")
        require_int("num_threads", self.num_threads, 0)
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.visit_mode not in ("auto", "session", "session_id", "day"):
            raise ValueError(f"visit_mode must be auto, session, session_id or day, got {self.visit_mode!r}")
        object.__setattr__(self, "coupon_levels", tuple(float(c) for c in self.coupon_levels))
