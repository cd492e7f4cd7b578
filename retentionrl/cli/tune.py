"""``retentionrl tune``: a sweep of agents (and simulator fits) on Ray Tune."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def tune_command(
    config_path: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="Sweep YAML: a run's config plus a tune section."),
    ],
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Join a running Ray cluster: auto, or HOST:PORT of its head. Default: a local Ray instance.",
        ),
    ] = None,
    samples: Annotated[
        int | None, typer.Option("--samples", min=1, help="Draws of the search space (overrides tune.samples).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", file_okay=False, help="Folder of the sweep (overrides out).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Finish the interrupted sweep in OUT: finished trials are not run again.")
    ] = False,
) -> None:
    """Train agents with the settings of a search space on Ray Tune; choose the best on validation shoppers.

    The best trial is the one whose agent scores highest in a simulator fitted on validation
    shoppers no trial's simulator saw; world truth, with world logs, is shown for the record only.
    """
    from retentionrl.pipeline.config import parse_config
    from retentionrl.tune.config import SweepConfig, load_sweep_config
    from retentionrl.tune.sweep import run_sweep

    sweep = load_sweep_config(config_path)
    if samples is not None or out is not None:
        data = sweep.model_dump(mode="json")
        data["tune"]["samples"] = samples or sweep.tune.samples
        data["out"] = str(out or sweep.out)
        sweep = parse_config(data, str(config_path), SweepConfig)
    started = time.perf_counter()
    summary = run_sweep(sweep, address=address, resume=resume, echo=typer.echo)
    typer.echo(summary_table(summary))
    folder = sweep.out.resolve()
    typer.echo(f"done in {time.perf_counter() - started:.0f} s: {len(summary.trials)} trials")
    if summary.best is not None:
        typer.echo(f"best trial:  {summary.best} (chosen by its score in the validation simulator)")
        typer.echo(f"its agent:   {folder / 'trials' / summary.best / 'agent'}")
    typer.echo(f"summary:     {folder / 'summary.csv'}, {folder / 'sweep.png'}")
    typer.echo(f"watch it:    tensorboard --logdir {folder / 'trials'}")
    unfinished = sum(row.status == "unfinished" for row in summary.trials)
    if unfinished:
        typer.echo(
            f"interrupted: {unfinished} of {len(summary.trials)} trials unfinished; "
            f"finish them with: retentionrl tune {config_path} --out {sweep.out} --resume",
            err=True,
        )
        raise typer.Exit(130)


def summary_table(summary) -> str:
    """The trials as a fixed-width table, best first."""
    keys = sorted({k for row in summary.trials for k in row.params})
    head = ["trial", *keys, "score", *(["true"] if summary.has_truth else []), "starts"]
    lines = []
    for row in summary.trials:
        r = row.result
        params = [_short(row.params.get(k, "")) for k in keys]
        if r is None:
            lines.append([row.trial, *params, row.status if row.error is None else f"error: {row.error}"])
            continue
        true = [f"{r.true_score:.3f}"] if summary.has_truth and r.true_score is not None else []
        mark = " *" if row.trial == summary.best else ""
        lines.append([row.trial + mark, *params, f"{r.score:.3f}", *true, str(row.starts)])
    widths = [max(len(str(c)) for c in col) for col in zip(head, *[ln + [""] * (len(head) - len(ln)) for ln in lines])]
    text = [" ".join(f"{c:<{w}}" for c, w in zip(head, widths))]
    text += [" ".join(f"{c:<{w}}" for c, w in zip(ln, widths)) for ln in lines]
    caption = f"score: {summary.metric} per shopper in the validation simulator"
    if summary.has_truth:
        caption += "; true: the same in the world (for the record, never used to choose)"
    return "\n".join([caption, *text])


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
