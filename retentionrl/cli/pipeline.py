"""``retentionrl quickstart`` and ``retentionrl run``: the whole pipeline in one command."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from retentionrl.cli import Device


def _finish(result: dict, started: float) -> None:
    report = Path(result["report"]).resolve()
    logdir = Path(result["tensorboard"]).resolve()
    reused = sum(s.reused for s in result["stages"])
    typer.echo(f"done in {time.perf_counter() - started:.0f} s ({reused} of {len(result['stages'])} stages reused)")
    typer.echo(f"report:      {report}")
    typer.echo(f"TensorBoard: {logdir}  (the simulator fit and each agent's training)")
    typer.echo(f"watch it:    tensorboard --logdir {logdir}")


def quickstart_command(
    out: Path = typer.Option(Path("runs/quickstart"), "--out", file_okay=False, help="Folder of the run."),
    quick: bool = typer.Option(False, "--quick", help="Small logs and budgets: a few minutes on 2 CPU cores."),
    device: Device = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda."),
) -> None:
    """Embedded default, no download: world logs -> learned simulator -> PPO/DQN -> OPE -> truth -> report."""
    from retentionrl.pipeline.config import quickstart_config
    from retentionrl.pipeline.run import run_pipeline

    started = time.perf_counter()
    config = quickstart_config(out, quick).model_copy(update={"device": device})
    _finish(run_pipeline(config, echo=typer.echo), started)


def run_command(
    config_path: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="YAML config (retentionrl/pipeline/config.py)."
    ),
) -> None:
    """The same pipeline from a YAML config; stages whose inputs and config are unchanged are reused."""
    from retentionrl.pipeline.config import load_config
    from retentionrl.pipeline.run import run_pipeline

    started = time.perf_counter()
    _finish(run_pipeline(load_config(config_path), echo=typer.echo), started)
