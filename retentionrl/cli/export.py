"""``retentionrl export``: a trained policy as one ONNX or TorchScript file, checked against the policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export_command(
    policy: Annotated[
        Path, typer.Option("--policy", help="Trained policy folder (policy.json and policy.safetensors).")
    ],
    fmt: Annotated[
        str,
        typer.Option("--format", help="onnx (input 'obs', output 'action_probs') or torchscript (torch.jit.load)."),
    ],
    out: Annotated[Path, typer.Option("--out", help="The file to write; its folder must exist.")],
    min_propensity: Annotated[
        float,
        typer.Option(
            "--min-propensity",
            help="Exploration floor p: the file returns (1 - A p) pi(a|s) + p over the A actions; 0 <= A p <= 1.",
        ),
    ] = 0.0,
) -> None:
    """Export POLICY to OUT: float32 observations (n, d) -> the deployed policy's action probabilities (n, A).

    The file carries the policy's contract as metadata (arms, coupon levels, features, horizon, spend scale, floor, version).
    It is loaded back and compared with the policy before it is moved into place.
    """
    from retentionrl.agents.training import read_policy_meta
    from retentionrl.serve.export import TOLERANCE, check_format, export_policy
    from retentionrl.serve.policy import check_min_propensity

    checked_fmt = check_format(fmt, "--format")
    _, space = read_policy_meta(policy)
    check_min_propensity(min_propensity, space.n_actions, "--min-propensity")
    summary = export_policy(policy, checked_fmt, out, min_propensity=min_propensity)
    size_kib = summary.path.stat().st_size / 1024
    typer.echo(
        f"wrote {summary.path} ({summary.format}, {size_kib:,.1f} KiB): {summary.n_features} features -> "
        f"{summary.n_actions} action probabilities; max |exported - policy| = {summary.max_abs_diff:.2g} "
        f"(<= {TOLERANCE:g}) on {summary.n_checked:,} observations"
    )
