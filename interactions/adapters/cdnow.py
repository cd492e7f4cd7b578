"""CDNOW purchases → purchase events.

The CDNOW log (Fader and Hardie's classic BTYD dataset) holds every purchase of the 23,570
customers who first bought at the online music shop CDNOW in the first quarter of 1997,
through June 1998: 69,659 records. It ships with the ``lifetimes`` package (a dependency of
retentionrl) as ``lifetimes/datasets/CDNOW_master.txt``, whitespace separated, with a header
``customer_id date number_of_cds dollar_value``; a CSV or Parquet copy with those columns
reads the same. One record becomes one ``purchase`` event:

============  ===============================================================================
column        from
============  ===============================================================================
user_id       ``customer_id`` (text, as written: ``00001``)
timestamp     ``date`` (``YYYYMMDD``, midnight): CDNOW records the day only, so a visit is a
              purchase day, as in the BTYD studies of this log
event         ``"purchase"``
item_id       ``"cd"``: the log names no titles
price         ``dollar_value / number_of_cds``
quantity      ``number_of_cds``
============  ===============================================================================

80 records have ``dollar_value`` 0 (a purchase at no charge); they are kept, as purchases.
A record with fewer than 1 CD or a negative value raises :class:`~retentionrl.core.errors.LogError`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from retentionrl.core.errors import LogError
from retentionrl.interactions.adapters._common import check_not_null, event_column, numbers
from retentionrl.interactions.tables import check_file, read_table

COLUMNS: tuple[str, ...] = ("customer_id", "date", "number_of_cds", "dollar_value")
SIGNATURE_COLUMNS: tuple[str, ...] = COLUMNS


def lifetimes_copy() -> Path:
    """The CDNOW master file inside the installed ``lifetimes`` package (not imported: it is slow)."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the lifetimes package is not installed: pip install lifetimes==0.11.3")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"


def read_cdnow(path: str | Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read a CDNOW master file (``.txt`` as shipped, or CSV / Parquet) as schema events.

    :returns: ``(events, dropped)``: the events in file order (module docstring) and the
        dropped rows by reason (none are dropped).
    """
    path = check_file(path)
    if path.suffix.lower() == ".txt":
        raw = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": str})
        missing = [c for c in COLUMNS if c not in raw.columns]
        if missing:
            raise LogError(path, f"missing column(s) {missing}; a CDNOW file has {list(COLUMNS)}")
    else:
        raw = read_table(path, columns=COLUMNS)
    check_not_null(raw, COLUMNS, path)
    date = raw["date"].astype(str).str.strip()
    timestamp = pd.to_datetime(date, format="%Y%m%d", errors="coerce")
    bad_date = timestamp.isna().to_numpy()
    if bad_date.any():
        raise LogError.for_rows(path, "not a YYYYMMDD date", "date", bad_date, date)
    cds = numbers(raw["number_of_cds"], "number_of_cds", path)
    value = numbers(raw["dollar_value"], "dollar_value", path)
    for name, bad in (("number_of_cds", cds < 1), ("dollar_value", value < 0)):
        if bad.any():
            raise LogError.for_rows(path, "out of range", name, bad, raw[name])
    events = pd.DataFrame(
        {
            "user_id": raw["customer_id"].astype(str).str.strip(),
            "timestamp": timestamp.dt.as_unit("ns"),
            "event": event_column("purchase", len(raw)),
            "item_id": "cd",
            "price": value / cds,
            "quantity": cds.astype(np.float64),
        }
    )
    return events, {}
