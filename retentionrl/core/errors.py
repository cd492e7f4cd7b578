"""The error types raised for bad user input; the CLI prints their ``str``, a single line, as is.

A :class:`LogError` (an interaction log) names the file and, where it applies, the column
and the first offending rows (1-based data rows, the header not counted), so that a user
can open the file and find the problem. An :class:`InputError` is any other bad input (a
trained policy or checkpoint folder, a config file) and names its file or folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np


class LogError(ValueError):
    """Bad or unreadable interaction log.

    :param source: the file (or a label such as ``"<dataframe>"``) the log came from.
    :param message: what is wrong, in words.
    :param column: the offending column, when one is to blame.
    :param rows: 0-based positions of the first offending rows; shown 1-based.
    :param values: the offending values at those rows, shown beside them.
    :param n_bad: how many rows are bad in all (defaults to ``len(rows)``).
    """

    max_rows_shown = 5

    def __init__(
        self,
        source: str | Path,
        message: str,
        *,
        column: str | None = None,
        rows: Iterable[int] = (),
        values: Sequence[object] = (),
        n_bad: int | None = None,
    ) -> None:
        self.source = str(source)
        self.column = column
        self.rows = [int(r) for r in rows]
        self.values = list(values)
        self.n_bad = len(self.rows) if n_bad is None else int(n_bad)
        self.reason = message
        super().__init__(self._format())

    def __reduce__(self) -> tuple:
        """Pickle by the arguments (an error raised in a worker process, e.g. a Ray trial, reaches the caller whole)."""
        return _log_error, (self.source, self.reason, self.column, self.rows, self.values, self.n_bad)

    @classmethod
    def for_rows(
        cls, source: str | Path, message: str, column: str, bad: np.ndarray, values: object = None
    ) -> LogError:
        """The error for the rows where ``bad`` is true, showing their ``values`` (a pandas
        Series, read by position, or anything ``np.asarray`` reads, indexed like ``bad``)."""
        rows = np.flatnonzero(bad)
        shown = rows[: cls.max_rows_shown]
        if values is None:
            first: list = []
        elif hasattr(values, "iloc"):  # a Series, by position (pandas is not imported here)
            first = values.iloc[shown].tolist()
        else:
            first = np.asarray(values)[shown].tolist()
        return cls(source, message, column=column, rows=shown, values=first, n_bad=rows.size)

    def _format(self) -> str:
        parts = [self.source]
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        text = ": ".join(parts) + f": {self.reason}"
        if self.rows:
            shown = []
            for i, row in enumerate(self.rows[: self.max_rows_shown]):
                item = f"row {row + 1}"
                if i < len(self.values):
                    item += f" ({self.values[i]!r})"
                shown.append(item)
            more = self.n_bad - len(shown)
            text += f" ({self.n_bad} row{'s' if self.n_bad != 1 else ''}; first: {', '.join(shown)}"
            text += f", and {more} more)" if more > 0 else ")"
        return text


class InputError(ValueError):
    """Bad or unreadable input other than a log: ``str`` is ``"<source>: <message>"``.

    :param source: the file or folder to blame (or the option that named it).
    :param message: what is wrong, in words, on one line.
    """

    def __init__(self, source: str | Path, message: str) -> None:
        self.source = str(source)
        self.reason = message
        super().__init__(f"{self.source}: {message}")

    def __reduce__(self) -> tuple:
        """Pickle by the arguments (see :meth:`LogError.__reduce__`)."""
        return type(self), (self.source, self.reason)


def _log_error(source: str, message: str, column: str | None, rows: list[int], values: list, n_bad: int) -> LogError:
    return LogError(source, message, column=column, rows=rows, values=values, n_bad=n_bad)
