"""``retentionrl simulator ...``: fit the learned shopper simulator on an event log."""

from __future__ import annotations

from pathlib import Path

import typer

from simulators.fit_config import FitConfig

simulator_app = typer.Typer(help="The learned shopper simulator: fit it on logs, report its fidelity.", no_args_is_help=True)


@simulator_app.callback()
def simulator() -> None:
    """The learned shopper simulator: a sequence model fit on event logs."""


@simulator_app.command("fit")
def fit(
    logs: Path = typer.Option(..., "--logs", help="Event log (CSV or Parquet) to learn from."),
    out: Path = typer.Option(..., "--out", help="Directory for model.safetensors, config.json, tensorboard/."),
    format: str = typer.Option("auto", "--format", help="Log format: auto, events, online-retail, complete-journey."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available), cpu or cuda."),
    epochs: int = typer.Option(FitConfig.epochs, "--epochs", help="Most training epochs (early stopping may end sooner)."),
    seed: int = typer.Option(FitConfig.seed, "--seed", help="Seed of initialisation, user split and batch order."),
    horizon: int = typer.Option(FitConfig.horizon_days, "--horizon", help="H: days within which a return counts; else churn."),
    spend_scale: float = typer.Option(FitConfig.spend_scale, "--spend-scale", help="Typical spend per purchase (feature scale)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Fit the simulator on LOGS and write a checkpoint to OUT."""
    from interactions.io import read_events
    from simulators.fit import fit_simulator

    config = FitConfig(epochs=epochs, seed=seed, device=device, horizon_days=horizon, spend_scale=spend_scale)
    log = read_events(logs, format)
    result = fit_simulator(log, config, out, progress=progress)
    card, summary = result.card, result.card.data_summary
    typer.echo(f"fit on {summary['events']} events, {summary['visits']} visits, {summary['users']} shoppers "
               f"({len(result.history)} epochs; best validation loss {card.metrics['valid/loss']:.4f})")
    for head, info in card.heads.items():
        state = "learned" if info["learned"] else f"NOT learned: {info['reason']}"
        typer.echo(f"  {head:9s} {state} ({info['examples']} visits)")
    for part, used in card.action_inputs.items():
        if not used:
            typer.echo(f"  the log did not vary the {'recommendation' if part == 'arm' else 'coupon'}: "
                       "its effect is not learned and is zero in simulation")
    typer.echo(f"wrote {out / 'model.safetensors'}, {out / 'config.json'} and {out / 'tensorboard'}")


@simulator_app.command("report")
def report(
    model: Path = typer.Option(..., "--model", help="Directory of a fitted simulator (simulator fit --out)."),
    logs: Path = typer.Option(..., "--logs", help="Event log (CSV or Parquet) to judge the simulator on."),
    out: Path = typer.Option(..., "--out", help="Directory for report.html, report.json and the PNG plots."),
    format: str = typer.Option("auto", "--format", help="Log format: auto, events, online-retail, complete-journey."),
    device: str = typer.Option("cpu", "--device", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulator's replay of held-out shoppers."),
) -> None:
    """Write an HTML fidelity report of the simulator in MODEL on LOGS to OUT."""
    from simulators.fidelity_report import write_report

    files = write_report(model, logs, out, log_format=format, device=device, seed=seed)
    typer.echo(f"wrote {files.html}, {files.json} and {len(files.pngs)} plots")
