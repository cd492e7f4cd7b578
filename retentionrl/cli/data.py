"""``retentionrl data ...``: fetch the public datasets, and look at a log before anything learns from it."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from retentionrl.interactions.datasets import DATASETS

data_app = typer.Typer(help="Inspect interaction logs and public datasets.", no_args_is_help=True)


class Format(str, Enum):
    """Log formats ``data describe`` reads."""

    auto = "auto"
    events = "events"
    online_retail = "online-retail"
    complete_journey = "complete-journey"
    cdnow = "cdnow"
    obd = "obd"
    hillstrom = "hillstrom"


class VisitKey(str, Enum):
    """How events are grouped into visits (see retentionrl.interactions.visits)."""

    auto = "auto"
    session = "session"
    session_id = "session_id"
    day = "day"


@data_app.command("describe")
def describe(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="CSV or Parquet log, or a folder of Parquet parts (an OBD folder for obd; none for complete-journey)."
        ),
    ] = None,
    format: Annotated[
        Format, typer.Option("--format", "-f", help="Log format; auto detects it from the columns.")
    ] = Format.auto,
    horizon: Annotated[
        float, typer.Option(help="Days without a return after which a shopper counts as churned.", min=1)
    ] = 90.0,
    visit: Annotated[
        VisitKey,
        typer.Option(help="What makes a visit; auto: session_id, else day for purchase-only logs, else session."),
    ] = VisitKey.auto,
    session_gap: Annotated[
        str, typer.Option(help="Inactivity that ends a visit in session mode (pandas Timedelta, e.g. 30min).")
    ] = "30min",
    plot: Annotated[
        Path | None, typer.Option(help="Where to write the retention-curve PNG (default: retention_<file>.png here).")
    ] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not write the PNG.")] = False,
) -> None:
    """Print users, events, visits per user, return gaps and retention at 7/30/90 days."""
    from retentionrl.interactions.adapters import BANDIT_ADAPTERS, detect_format
    from retentionrl.interactions.tables import column_names, parquet_parts

    fmt = format.value
    if path is None and fmt != "complete-journey":
        raise typer.BadParameter(
            "a PATH is required (only --format complete-journey reads without one)", param_hint="PATH"
        )
    _check_session_gap(session_gap)
    if fmt == "auto" and path is not None and (not path.is_dir() or parquet_parts(path)):
        fmt = detect_format(column_names(path)) or "events"  # a file, or a folder of Parquet parts
    elif fmt == "auto":
        fmt = "obd"  # an Open Bandit Dataset folder
    if fmt in BANDIT_ADAPTERS:
        assert path is not None  # only complete-journey reads without a PATH (checked above)
        feedback = BANDIT_ADAPTERS[fmt](path)
        for key, value in feedback.summary().items():
            typer.echo(f"{key:<22} {_readable(value)}")
        return

    from retentionrl.interactions.describe import describe_log
    from retentionrl.interactions.io import read_events
    from retentionrl.interactions.retention import plot_retention

    summary = describe_log(read_events(path, fmt), horizon_days=horizon, mode=visit.value, session_gap=session_gap)
    for line in summary.lines():
        typer.echo(line)
    if not no_plot:
        stem = path.stem if path is not None else "complete_journey"
        target = plot or Path(f"retention_{stem}.png")
        plot_retention({stem: summary.retention}, target, horizon_days=horizon)
        typer.echo(f"plot         {target}")


def _check_session_gap(text: str) -> None:
    """``--session-gap`` must read as a pandas Timedelta; a usage error naming it otherwise."""
    import pandas as pd

    try:
        pd.Timedelta(text)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{text!r} is not a time span such as 30min or 2h ({exc})", param_hint="--session-gap"
        ) from None


def _readable(value: object) -> str:
    """Numbers to 4 significant digits (tuples element-wise), anything else as is."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_readable(v) for v in value) + ")"
    return str(value)


def _known_dataset(name: str) -> str:
    """``NAME`` must be a dataset of the registry; a usage error listing them otherwise."""
    if name not in DATASETS:
        raise typer.BadParameter(f"{name!r} is not a dataset; the datasets are {', '.join(DATASETS)}")
    return name


@data_app.command("fetch")
def fetch_command(
    name: Annotated[
        str, typer.Argument(callback=_known_dataset, metavar="NAME", help=f"One of: {', '.join(DATASETS)}.")
    ],
    dest: Annotated[
        Path | None,
        typer.Option(help="Cache folder (default: $RETENTIONRL_DATA_DIR, else the user's data folder)."),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Import this file or folder instead of downloading: the upstream file downloaded by hand "
            "(checked by its SHA-256) or a converted copy (checked by its row and customer counts).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Fetch again even when a verified copy is cached.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar while downloading.")] = False,
) -> None:
    """Download a public dataset (or import a copy with --from), check it, and keep it in the cache."""
    from retentionrl.interactions.datasets import DownloadError, fetch

    try:
        fetch(name, dest, source, progress=not no_progress, force=force, report=typer.echo)
    except DownloadError as exc:  # no network: one line, exit status 1 (bad input is 2)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@data_app.command("list")
def list_command(
    dest: Annotated[
        Path | None,
        typer.Option(help="Cache folder (default: $RETENTIONRL_DATA_DIR, else the user's data folder)."),
    ] = None,
) -> None:
    """Show each public dataset, where it comes from, and whether and where it is cached."""
    from retentionrl.interactions.datasets import cached_path, default_data_dir

    typer.echo(f"cache             {dest if dest is not None else default_data_dir()}")
    for name, dataset in DATASETS.items():
        path = cached_path(name, dest)
        typer.echo(f"{name:<17} {'cached' if path else 'absent':<7} {path or 'retentionrl data fetch ' + name}")
        typer.echo(f"{'':<17} {'about':<7} {dataset.title}; {dataset.license}; {dataset.homepage}")
        if dataset.upstream:
            first = dataset.upstream[0]
            digest = f"SHA-256 {first.sha256[:12]}..." if first.sha256 else "SHA-256 not published"
            typer.echo(f"{'':<17} {'from':<7} {first.url} ({digest})")
        else:
            typer.echo(f"{'':<17} {'from':<7} the installed package {dataset.package}")
        typer.echo(f"{'':<17} {'--from':<7} {'the upstream file, or ' if dataset.upstream else ''}{dataset.copies}")
