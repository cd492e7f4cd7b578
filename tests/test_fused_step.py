"""The simulator's folded step computes the sequence model's own functions."""

from __future__ import annotations

import pytest
import torch

from retentionrl.simulators.learned.fused_step import FusedStep
from retentionrl.simulators.learned.sequence_model import ModelSpec, ShopperSequenceModel, VisitInputs

N_ARMS = 3


def random_model(
    seed: int,
    constant_columns: tuple[int, ...] = (),
    reads_arm: bool = False,
    exposure: bool = False,
    arm_bias: bool = False,
    state_reads_arm: bool = True,
) -> ShopperSequenceModel:
    """A model with every weight drawn at random (so no table or fold is trivially zero); with
    ``exposure`` it reads the ignored showings (features ``11 + 2 N_ARMS`` wide), with
    ``arm_bias`` its heads have an intercept per arm."""
    torch.manual_seed(seed)
    model = ShopperSequenceModel(
        ModelSpec(
            n_features=11 + (2 if exposure else 1) * N_ARMS,
            n_arms=N_ARMS,
            horizon_days=9,
            hidden_size=8,
            arm_embedding=3,
            head_hidden=6,
            hazard_knots=4,
            hazard_hidden=5,
            return_reads_arm=reads_arm,
            exposure_input=exposure,
            arm_bias=arm_bias,
            state_reads_arm=state_reads_arm,
        )
    )
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)
        for col in constant_columns:
            model.feature_fill[col] = 0.25
    return model


def random_inputs(b: int, t: int, seed: int, exposure: bool = False) -> VisitInputs:
    """Visits as the simulator feeds them: 0/1 clicks and purchases, arm ``N_ARMS`` = none;
    with ``exposure`` the features end with ignored showings, ``log(1 + count)``, some 0."""
    gen = torch.Generator().manual_seed(seed)

    def binary(*shape: int) -> torch.Tensor:
        return torch.randint(0, 2, shape, generator=gen).float()

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=gen)

    prev_outcome = torch.cat([uniform(b, t, 1), binary(b, t, 3), 2 * uniform(b, t, 1)], dim=-1)
    outcome = torch.cat([binary(b, t, 3), 2 * uniform(b, t, 1)], dim=-1)
    outcome[..., 1] *= outcome[..., 0]  # no purchase without a click, as the world logs
    features = uniform(b, t, 11 + N_ARMS)
    if exposure:
        features = torch.cat([features, torch.log1p(torch.randint(0, 3, (b, t, N_ARMS), generator=gen).float())], -1)
    return VisitInputs(
        features,
        torch.randint(0, N_ARMS + 1, (b, t), generator=gen),
        prev_outcome,
        torch.randint(0, N_ARMS + 1, (b, t), generator=gen),
        uniform(b, t),
        outcome,
    )


def step_through(fused: FusedStep, inputs: VisitInputs, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused outputs (responses, then return logits) at every visit, and the last state."""
    outputs = []
    for k in range(inputs.arm.shape[1]):
        at = VisitInputs(
            *(
                getattr(inputs, name)[:, k]
                for name in ("features", "prev_arm", "prev_outcome", "arm", "coupon", "outcome")
            )
        )
        response, shared, state = fused.advance(at.features, at.prev_arm, at.prev_outcome, at.arm, at.coupon, state)
        logits = fused.return_logits(shared, at.arm, at.outcome[:, 0], at.outcome[:, 1], at.outcome[:, 2:])
        outputs.append(torch.cat([response, logits], dim=-1))
    return torch.stack(outputs, dim=1), state


@pytest.mark.parametrize(
    ("reads_arm", "exposure", "arm_bias", "state_reads_arm"),
    [
        (False, False, False, True),
        (True, False, False, True),
        (False, True, False, True),
        (False, False, True, True),
        (False, False, False, False),
    ],
)
@pytest.mark.parametrize("constant_columns", [(), (2, 5, 12)])
def test_stepping_a_sequence_equals_the_models_forward(
    constant_columns, reads_arm, exposure, arm_bias, state_reads_arm
):
    model = random_model(0, constant_columns, reads_arm, exposure, arm_bias, state_reads_arm)
    inputs = random_inputs(b=7, t=5, seed=1, exposure=exposure)
    with torch.no_grad():
        expected, last = model(inputs)
        got, state = step_through(FusedStep(model), inputs, model.empty_state.expand(7, -1).clone())
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state, last, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reads_arm", [False, True])
def test_the_return_law_reads_the_arm_only_through_the_response_unless_asked(reads_arm):
    model = random_model(4, reads_arm=reads_arm)
    inputs = random_inputs(b=N_ARMS, t=1, seed=5)
    inputs.features[..., 11:] = 0.0  # no engagement with any arm: the arm-specific inputs q are equal
    inputs.arm[:] = torch.arange(N_ARMS)[:, None]  # one shopper per arm, everything else alike
    for name in ("features", "prev_arm", "prev_outcome", "coupon"):
        getattr(inputs, name)[:] = getattr(inputs, name)[:1]
    inputs.outcome[:] = 0.0  # no click, no purchase
    with torch.no_grad():
        logits = model(inputs)[0][:, 0, model.head_out.out_features :]
    same = all(torch.allclose(logits[0], logits[a]) for a in range(1, N_ARMS))
    assert same is not reads_arm


def test_constant_feature_columns_are_read_as_the_logged_constant():
    model = random_model(2, constant_columns=(0, 4))
    inputs = random_inputs(b=4, t=1, seed=3)
    args = [getattr(inputs, name)[:, 0] for name in ("features", "prev_arm", "prev_outcome", "arm", "coupon")]
    fused, state = FusedStep(model), model.empty_state.expand(4, -1).clone()
    with torch.no_grad():
        first = [t.clone() for t in fused.advance(*args, state)]
        args[0][:, [0, 4]] = 9.0  # a policy moving columns the logs never varied
        second = fused.advance(*args, state)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b)


def test_the_state_passed_in_is_left_intact_and_batch_sizes_may_change():
    model = random_model(4)
    fused = FusedStep(model)
    with torch.no_grad():
        for b in (6, 2, 6):  # the workspace follows the batch size
            inputs = random_inputs(b=b, t=3, seed=b)
            state = model.empty_state.expand(b, -1).clone()
            kept = []
            for k in range(3):
                _, _, state = fused.advance(
                    inputs.features[:, k],
                    inputs.prev_arm[:, k],
                    inputs.prev_outcome[:, k],
                    inputs.arm[:, k],
                    inputs.coupon[:, k],
                    state,
                )
                kept.append((state, state.clone()))
            previous, copy = kept[-2]
            torch.testing.assert_close(previous, copy)  # not overwritten by the step after it
            torch.testing.assert_close(
                state,
                model.rnn(
                    VisitInputs(
                        *(getattr(inputs, f) for f in ("features", "prev_arm", "prev_outcome", "arm", "coupon"))
                    )
                )[1],
                rtol=1e-5,
                atol=1e-5,
            )


@pytest.mark.parametrize("state_reads_arm", [False, True])
def test_the_state_reads_the_previous_arm_only_through_the_response_unless_asked(state_reads_arm):
    model = random_model(6, state_reads_arm=state_reads_arm)
    inputs = random_inputs(b=N_ARMS, t=1, seed=7)
    inputs.prev_arm[:] = torch.arange(N_ARMS)[:, None]  # one shopper per previous arm, everything else alike
    for name in ("features", "prev_outcome", "arm", "coupon", "outcome"):
        getattr(inputs, name)[:] = getattr(inputs, name)[:1]
    inputs.prev_outcome[..., 1:3] = 0.0  # the previous visit: no click, no purchase
    with torch.no_grad():
        _, state = model(inputs)
    same = all(torch.allclose(state[0], state[a]) for a in range(1, N_ARMS))
    assert same is not state_reads_arm
