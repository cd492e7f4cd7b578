"""The ``retentionrl`` command line: one sub-command group per stage.

Bad input ends the command with exit status 2 and a one-line ``error: ...`` message on
stderr naming the file, column, row or argument, never a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer

from retentionrl.cli.agents import evaluate_command, train_command
from retentionrl.cli.certify import certify_command
from retentionrl.cli.data import data_app
from retentionrl.cli.export import export_command
from retentionrl.cli.ope import ope_command
from retentionrl.cli.pipeline import quickstart_command, run_command
from retentionrl.cli.serve import serve_command
from retentionrl.cli.simulator import simulator_app
from retentionrl.cli.tune import tune_command
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
app.command("serve")(serve_command)
app.command("export")(export_command)
app.command("tune")(tune_command)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors become one ``error:`` line and exit status 2.

    User errors are usage errors (an unknown option, a missing or bad option value: typer's
    ``TyperException``), bad input (``LogError``, ``InputError`` and any other ``ValueError``),
    an optional extra that is not installed (``ImportError``) and files that cannot be opened
    or written (``OSError``).
    """
    try:
        status = app(args=argv, standalone_mode=False)
    except typer.TyperException as exc:
        _fail(exc.format_message())
    except BrokenPipeError:  # the reader of stdout went away (`| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error on exit
        sys.exit(1)
    except (LogError, ValueError, ImportError, OSError) as exc:
        _fail(str(exc))
    if isinstance(status, int):  # --help returns 0, typer.Exit its code; a command returns None
        sys.exit(status)


def _fail(message: str) -> NoReturn:
    """Print ``error: message`` on one line to stderr and exit with status 2.

    An empty message prints nothing: typer has shown the help instead (a group run with no
    command).
    """
    if message:
        print("error: " + " ".join(message.splitlines()), file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
