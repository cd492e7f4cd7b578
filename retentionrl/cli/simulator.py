"""``retentionrl simulator ...``: fit the learned shopper simulator on an event log."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from retentionrl.cli import Device
from retentionrl.cli.fields import SET_HELP, apply_set, fields_callback
from retentionrl.simulators.learned.config import FitConfig

if TYPE_CHECKING:
    from retentionrl.simulators.learned.model_card import ModelCard

simulator_app = typer.Typer(
    help="The learned shopper simulator: fit it on logs, report its fidelity.", no_args_is_help=True
)


FIT_OPTIONS = {
    "device": "--device",
    "epochs": "--epochs",
    "seed": "--seed or --seeds",
    "horizon_days": "--horizon",
    "spend_scale": "--spend-scale",
    "bootstrap": "--bootstrap/--no-bootstrap with --seeds",
}
"""FitConfig fields that ``retentionrl simulator fit`` sets from its own options."""


@simulator_app.callback()
def simulator() -> None:
    """The learned shopper simulator: a sequence model fit on event logs."""


@simulator_app.command("fit")
def fit(
    logs: Path = typer.Option(
        ..., "--logs", help="Event log (CSV or Parquet, or a folder of Parquet parts) to learn from."
    ),
    out: Path = typer.Option(..., "--out", help="Directory for model.safetensors, config.json, tensorboard/."),
    format: str = typer.Option("auto", "--format", help="Log format: auto, events, online-retail, complete-journey."),
    device: Device = typer.Option("auto", "--device", help="auto (CUDA when available), cpu or cuda."),
    epochs: int = typer.Option(
        FitConfig.epochs, "--epochs", help="Most training epochs (early stopping may end sooner)."
    ),
    seed: int = typer.Option(FitConfig.seed, "--seed", help="Seed of initialisation, user split and batch order."),
    horizon: int = typer.Option(
        FitConfig.horizon_days, "--horizon", help="H: days within which a return counts; else churn."
    ),
    spend_scale: float = typer.Option(
        FitConfig.spend_scale, "--spend-scale", help="Typical spend per purchase (feature scale)."
    ),
    seeds: str = typer.Option(
        "",
        "--seeds",
        help="Comma-separated seeds (e.g. 0,1,2): fit an ensemble, one "
        "simulator per seed in OUT/member_<k>, instead of --seed.",
    ),
    bootstrap: bool = typer.Option(
        True,
        "--bootstrap/--no-bootstrap",
        help="With --seeds: each member trains on a bootstrap resample of the shoppers, "
        "so the members disagree as the logs' sampling noise says.",
    ),
    ray: bool | None = typer.Option(
        None,
        "--ray/--no-ray",
        help="With --seeds: fit the members side by side, one Ray task each (default: when Ray is installed, "
        "pip install 'retentionrl[ray]').",
    ),
    address: str | None = typer.Option(
        None, "--address", help="With --ray: a running Ray cluster to join (auto or HOST:PORT); default a local one."
    ),
    set_fields: list[str] = typer.Option([], "--set", help=SET_HELP),
    fields: bool = typer.Option(
        False,
        "--fields",
        help="List the fields --set can reach, with their defaults, and exit.",
        is_eager=True,
        callback=fields_callback(FitConfig, FIT_OPTIONS),
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Fit the simulator (or an ensemble of them, --seeds) on LOGS and write it to OUT."""
    from retentionrl.interactions.io import read_events

    members = _parse_seeds(seeds) if seeds else None
    config = FitConfig(epochs=epochs, seed=seed, device=device, horizon_days=horizon, spend_scale=spend_scale)
    config = apply_set(config, set_fields, FIT_OPTIONS)
    log = read_events(logs, format)  # read (and checked) here first: a bad log fails before any fit
    # torch (and Ray) only once the arguments and the log have passed their checks
    from retentionrl.simulators.learned.ensemble import write_ensemble
    from retentionrl.simulators.learned.fit import fit_simulator
    from retentionrl.tune.parallel import fit_members_on_ray, ray_installed

    if members is None:
        result = fit_simulator(log, config, out, progress=progress)
        _describe(result.card, len(result.history), out)
        return
    configs = [dataclasses.replace(config, seed=s, bootstrap=bootstrap) for s in members]
    outs = [out / f"member_{k}" for k in range(len(members))]
    if ray if ray is not None else ray_installed() and len(members) > 1:
        typer.echo(f"fitting {len(members)} members side by side on Ray ...")
        for k, (card, n_epochs) in enumerate(fit_members_on_ray(logs, format, configs, outs, address=address)):
            typer.echo(f"member {k} (seed {members[k]}):")
            _describe(card, n_epochs, outs[k])
    else:
        for k, (c, o) in enumerate(zip(configs, outs)):
            typer.echo(f"member {k} (seed {members[k]}):")
            result = fit_simulator(log, c, o, progress=progress)
            _describe(result.card, len(result.history), o)
    typer.echo(f"wrote {write_ensemble(out, [o.name for o in outs])}")


def _parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; a bad or repeated seed is a usage error naming --seeds."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated integers such as 0,1,2, got {text!r}", param_hint="--seeds"
        ) from None
    if len(set(seeds)) != len(seeds):
        raise typer.BadParameter(f"seeds must differ, got {text!r}", param_hint="--seeds")
    return seeds


def _best_score(card: ModelCard) -> str:
    """The held-out score the fit stopped on (simulators/learned/fit.py)."""
    k = card.spec.latent_classes
    if k == 1:
        return f"best validation loss {card.metrics['valid/loss']:.4f}"
    return f"{k} latent classes; best held-out joint NLL {card.metrics['valid/joint_nll']:.4f} per visit"


def _describe(card: ModelCard, epochs: int, out: Path) -> None:
    """Say what one fitted simulator learned and where it is."""
    summary = card.data_summary
    typer.echo(
        f"fit on {summary['events']} events, {summary['visits']} visits, {summary['users']} shoppers "
        f"({epochs} epochs; {_best_score(card)})"
    )
    for head, info in card.heads.items():
        state = "learned" if info["learned"] else f"NOT learned: {info['reason']}"
        typer.echo(f"  {head:9s} {state} ({info['examples']} visits)")
    for part, used in card.action_inputs.items():
        if not used:
            typer.echo(
                f"  the log did not vary the {'recommendation' if part == 'arm' else 'coupon'}: "
                "its effect is not learned and is zero in simulation"
            )
    typer.echo(f"wrote {out / 'model.safetensors'}, {out / 'config.json'} and {out / 'tensorboard'}")


@simulator_app.command("report")
def report(
    model: Path = typer.Option(..., "--model", help="Directory of a fitted simulator (simulator fit --out)."),
    logs: Path = typer.Option(
        ..., "--logs", help="Event log (CSV or Parquet, or a folder of Parquet parts) to judge the simulator on."
    ),
    out: Path = typer.Option(..., "--out", help="Directory for report.html, report.json and the PNG plots."),
    format: str = typer.Option("auto", "--format", help="Log format: auto, events, online-retail, complete-journey."),
    device: Device = typer.Option("cpu", "--device", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulator's replay of held-out shoppers."),
) -> None:
    """Write an HTML fidelity report of the simulator in MODEL on LOGS to OUT."""
    from retentionrl.simulators.fidelity.report import write_report

    files = write_report(model, logs, out, log_format=format, device=device, seed=seed)
    typer.echo(f"wrote {files.html}, {files.json} and {len(files.pngs)} plots")


@simulator_app.command("holdout")
def holdout(
    logs: str = typer.Option(
        ...,
        "--logs",
        help="Purchase log (CSV or Parquet, a folder of Parquet parts, or dataset:NAME after retentionrl data fetch).",
    ),
    cutoff: str = typer.Option(
        ..., "--cutoff", help="End of calibration (a date, e.g. 2011-09-09); after it: holdout."
    ),
    holdout_days: float | None = typer.Option(
        None, "--holdout-days", help="Days of holdout after the cutoff (default: to the end of the log).", min=1
    ),
    out: Path = typer.Option(..., "--out", help="Directory for holdout.json, holdout.png, forecasts.parquet, model/."),
    format: str = typer.Option(
        "auto", "--format", help="Log format: auto, events, online-retail, complete-journey, cdnow."
    ),
    horizon: str = typer.Option(
        "auto",
        "--horizon",
        help="H in days, or auto: the 0.9-quantile of the calibration's return gaps, within [7, half its span].",
    ),
    fits: int = typer.Option(1, "--fits", min=1, help="Simulators fit with seeds SEED, SEED+1, ...; replicas pooled."),
    bootstrap: bool = typer.Option(False, "--bootstrap", help="With --fits: each fit on a bootstrap resample."),
    epochs: int = typer.Option(30, "--epochs", min=1, help="Most training epochs of each fit."),
    replicas: int = typer.Option(
        100,
        "--replicas",
        min=1,
        help="Simulated futures of each customer, per fit (their mean's Monte Carlo noise adds to RMSE).",
    ),
    visit: str = typer.Option("day", "--visit", help="What a visit is: day (a purchase day), session, session_id."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first fit, of the replicas and of the BTYD draws."),
    device: Device = typer.Option("auto", "--device", help="auto (CUDA when available), cpu or cuda."),
) -> None:
    """Forecast every calibration customer's visits after --cutoff with the simulator, BG/NBD and
    Pareto/NBD (spend by Gamma-Gamma), and score them on the holdout (retentionrl.simulators.fidelity.holdout)."""
    import json

    import pandas as pd

    from retentionrl.core.atomic import atomic_path, atomic_write_text
    from retentionrl.interactions.datasets import resolve_location
    from retentionrl.interactions.io import read_events
    from retentionrl.simulators.fidelity.holdout import HoldoutConfig, plot_weekly, run_holdout

    try:
        when = pd.Timestamp(cutoff)
    except ValueError:
        raise typer.BadParameter(f"{cutoff!r} is not a date such as 2011-09-09", param_hint="--cutoff") from None
    if horizon != "auto" and not (horizon.isdigit() and int(horizon) >= 1):
        raise typer.BadParameter(
            f"expected auto or a whole number of days >= 1, got {horizon!r}", param_hint="--horizon"
        )
    if visit not in ("day", "session", "session_id"):
        raise typer.BadParameter(f"expected day, session or session_id, got {visit!r}", param_hint="--visit")
    config = HoldoutConfig(
        cutoff=when,
        holdout_days=holdout_days,
        horizon=None if horizon == "auto" else int(horizon),
        fits=fits,
        bootstrap=bootstrap,
        epochs=epochs,
        replicas=replicas,
        seed=seed,
        device=device,
        visit_mode=visit,  # type: ignore[arg-type]  # checked above
    )
    log = read_events(resolve_location(logs), format)
    report = run_holdout(log, config, out)
    for line in report.lines():
        typer.echo(line)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "holdout.json", json.dumps(report.to_dict(), indent=2, default=float))
    with atomic_path(out / "forecasts.parquet") as tmp:
        report.per_customer.to_parquet(tmp)
    plot_weekly(report, out / "holdout.png")
    typer.echo(f"wrote {out / 'holdout.json'}, {out / 'forecasts.parquet'} and {out / 'holdout.png'}")
