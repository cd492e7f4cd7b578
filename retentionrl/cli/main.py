"""The ``retentionrl`` command line: one sub-command group per stage.

Bad input ends the command with exit status 2 and a one-line ``error: ...`` message on
stderr naming the file, column, row or argument, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from retentionrl.cli.agents import evaluate_command, train_command
from retentionrl.cli.data import data_app
from retentionrl.cli.certify import certify_command
from retentionrl.cli.ope import ope_command
from retentionrl.cli.pipeline import quickstart_command, run_command
from retentionrl.cli.simulator import simulator_app
from retentionrl.cli.world import world_app
from retentionrl.core.errors import LogError

app = typer.Typer(
    name="retentionrl",
    help="Learn recommendation and coupon policies that make shoppers come back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("quickstart")(quickstart_command)
app.command("run")(run_command)
app.add_typer(data_app, name="data")
app.add_typer(world_app, name="world")
app.add_typer(simulator_app, name="simulator")
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)
app.command("ope")(ope_command)
app.command("certify")(certify_command)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors become one ``error:`` line and exit status 2.

    User errors are bad input (``LogError``, ``ValueError``), an optional extra that is not
    installed (``ImportError``) and files that cannot be opened or written (``OSError``).
    """
    try:
        app(args=argv, standalone_mode=True)
    except (LogError, ValueError, ImportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
