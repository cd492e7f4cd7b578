"""The small-batch numpy step returns the torch fused step's outputs and draws its outcomes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from retentionrl.simulators.interface import ShopperSimulator, VisitOutcome
from retentionrl.simulators.learned.ensemble import SimulatorEnsemble
from retentionrl.simulators.learned.fused_step import FusedStep
from retentionrl.simulators.learned.hazard import sample_gap_days
from retentionrl.simulators.learned.model_card import ModelCard
from retentionrl.simulators.learned.numpy_step import NumpyStep
from retentionrl.simulators.learned.numpy_step import sample_gap_days as numpy_sample_gap_days
from retentionrl.simulators.learned.sequence_model import ShopperSequenceModel
from retentionrl.simulators.learned.simulator import LearnedSimulator
from tests.test_fused_step import random_inputs, random_model
from tests.test_learned_simulator import toy_simulator

TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
EXACT = ("click", "purchase", "redeemed", "gap_days", "churned")
"""Outcome fields drawn by comparisons with uniforms: equal on both paths, not just close."""


@pytest.mark.parametrize(
    ("reads_arm", "exposure", "arm_bias"),
    [(False, False, False), (True, False, False), (False, True, False), (False, False, True)],
)
@pytest.mark.parametrize("constant_columns", [(), (2, 5, 12)])
@pytest.mark.parametrize("n", [1, 3])
def test_the_numpy_step_returns_the_fused_steps_outputs(n, constant_columns, reads_arm, exposure, arm_bias):
    model = random_model(n, constant_columns, reads_arm, exposure, arm_bias)
    inputs = random_inputs(b=n, t=5, seed=n, exposure=exposure)
    fused, step = FusedStep(model), NumpyStep(model)
    state = model.empty_state.detach().expand(n, -1).clone()
    step.reset(n)
    with torch.no_grad():
        for k in range(5):
            features, prev_arm, prev_outcome, arm, coupon, outcome = (
                getattr(inputs, name)[:, k]
                for name in ("features", "prev_arm", "prev_outcome", "arm", "coupon", "outcome")
            )
            step.record(prev_arm.tolist(), *prev_outcome.T.tolist())  # any previous visit, as the torch step gets it
            response, shared, state = fused.advance(features, prev_arm, prev_outcome, arm, coupon, state)
            got = step.advance(features.numpy(), arm.tolist(), coupon.tolist())
            torch.testing.assert_close(torch.from_numpy(got), response, **TOLERANCE)
            torch.testing.assert_close(torch.from_numpy(step.state), state, **TOLERANCE)
            logits = fused.return_logits(shared, arm, outcome[:, 0], outcome[:, 1], outcome[:, 2:])
            got = step.return_logits(arm.tolist(), *outcome.T.tolist())
            torch.testing.assert_close(torch.from_numpy(got), logits, **TOLERANCE)


@pytest.mark.parametrize("after", [False, True])
def test_gap_days_are_drawn_as_torch_draws_them_from_the_same_uniforms(after):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 31, generator=gen) * 1.5 - torch.tensor([1.5] + [2.0] * 30)
    uniform = torch.rand(500, generator=gen)
    after_day = torch.randint(0, 35, (500,), generator=gen).double() if after else None
    expected = sample_gap_days(logits, uniform, after_day).numpy()
    got = numpy_sample_gap_days(logits.numpy(), uniform.tolist(), None if after_day is None else after_day.tolist())
    np.testing.assert_array_equal(got, expected)
    assert np.isinf(expected).any() and np.isfinite(expected).any()  # churn and returns both drawn


def random_simulator_parts(
    seed: int,
    reads_arm: bool,
    positives: dict[str, int] | None = None,
    exposure: bool = False,
    arm_bias: bool = False,
    taste: bool = False,
) -> tuple[ShopperSequenceModel, ModelCard]:
    """A model with every weight drawn at random (so every input and table matters) and its card;
    ``exposure``: the model reads the ignored showings; ``arm_bias``: its heads have an intercept per arm;
    ``taste``: arm tastes (``ModelSpec.arm_taste``)."""
    toy = toy_simulator(positives=positives)
    n_arms = toy.action_space.n_arms
    spec = replace(
        toy.model.spec,
        return_reads_arm=reads_arm,
        exposure_input=exposure,
        arm_bias=arm_bias,
        arm_taste=taste,
        n_features=toy.model.spec.n_features + (n_arms if exposure else 0),
    )
    torch.manual_seed(seed)
    model = ShopperSequenceModel(spec)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
        if taste:  # tastes that move the draws
            model.taste_shift.fill_(2.0)
    return model, replace(toy.card, spec=spec)


def trajectory(sim: ShopperSimulator, n: int, seed: int, steps: int = 30, observe: bool = False) -> list[dict]:
    """Every output of ``steps`` steps of ``n`` seeded shoppers under random actions, ended
    shoppers replaced; with ``observe``, every third visit is a logged one, some of its gaps unknown."""
    sim.reset(n, seed=seed)
    rng = np.random.default_rng(seed)
    outputs = []
    for k in range(steps):
        actions = rng.integers(0, sim.action_space.n_actions, n)
        if observe and k % 3 == 2:
            click = rng.random(n) < 0.5
            purchase = click & (rng.random(n) < 0.5)
            spend = np.where(purchase, 40.0 * rng.random(n), 0.0)
            zeros = np.zeros(n)
            logged = VisitOutcome(
                click=click,
                purchase=purchase,
                redeemed=purchase & (rng.random(n) < 0.5),
                spend=spend,
                coupon_cost=zeros,
                cogs=zeros,
                gap_days=zeros,
                churned=zeros > 0,
            )
            obs, outcome = sim.observe(
                actions, logged, np.where(rng.random(n) < 0.5, np.nan, 3.0), min_gap_days=rng.integers(0, 40, n)
            )
        else:
            obs, outcome = sim.step(actions)
        outputs.append({"obs": obs, **outcome.as_dict(), "days": sim.days.copy()})
        if isinstance(sim, LearnedSimulator):
            outputs[-1]["state"] = sim.state.numpy()
        ended = outcome.churned | (sim.days >= sim.horizon_days)
        if ended.any():
            sim.replace(ended)
    return outputs


def assert_same_outputs(got: list[dict], expected: list[dict]) -> None:
    for k, (a, b) in enumerate(zip(got, expected, strict=True)):
        for name in b:
            if name in EXACT:
                np.testing.assert_array_equal(a[name], b[name], err_msg=f"step {k}: {name}")
            else:
                np.testing.assert_allclose(a[name], b[name], **TOLERANCE, err_msg=f"step {k}: {name}")


@pytest.mark.parametrize("positives", [None, {"click": 0, "purchase": 100, "redeemed": 0}])
@pytest.mark.parametrize(
    ("reads_arm", "exposure", "arm_bias", "taste"),
    [
        (False, False, False, False),
        (True, False, False, False),
        (False, True, False, False),
        (False, False, True, False),
        (False, False, False, True),
    ],
)
@pytest.mark.parametrize("n", [1, 3])
def test_the_simulator_draws_the_same_outcomes_on_either_path(n, reads_arm, exposure, arm_bias, taste, positives):
    model, card = random_simulator_parts(1, reads_arm, positives, exposure, arm_bias, taste)
    on_numpy = trajectory(LearnedSimulator(model, card, "cpu", small_batch=n), n, seed=5, observe=True)
    on_torch = trajectory(LearnedSimulator(model, card, "cpu", small_batch=0), n, seed=5, observe=True)
    assert_same_outputs(on_numpy, on_torch)
    drawn = {name: np.concatenate([out[name] for out in on_torch]) for name in ("purchase", "churned", "gap_days")}
    assert drawn["purchase"].any() and drawn["churned"].any() and np.isfinite(drawn["gap_days"]).any()


@pytest.mark.parametrize("n", [1, 3])
def test_an_ensemble_draws_the_same_outcomes_on_either_path(n):
    parts = [random_simulator_parts(seed, reads_arm=seed == 2) for seed in (1, 2)]

    def ensemble(small_batch: int) -> SimulatorEnsemble:
        return SimulatorEnsemble(
            [LearnedSimulator(model, card, "cpu", small_batch=small_batch) for model, card in parts]
        )

    assert_same_outputs(trajectory(ensemble(n), n, seed=3), trajectory(ensemble(0), n, seed=3))


def test_the_same_seed_gives_the_same_numbers_on_the_numpy_path():
    model, card = random_simulator_parts(1, reads_arm=False)
    runs = [
        trajectory(LearnedSimulator(model, card, "cpu", small_batch=3), 3, seed=seed, observe=True)
        for seed in (7, 7, 8)
    ]
    for a, b in zip(runs[0], runs[1], strict=True):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    assert not all(np.array_equal(a["spend"], b["spend"]) for a, b in zip(runs[0], runs[2]))
