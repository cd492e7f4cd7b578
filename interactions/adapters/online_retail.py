"""UCI "Online Retail" (dataset 352) invoice lines → purchase and cancel events.

Every line of an invoice becomes one event of the :mod:`retentionrl.interactions.schema` log:

============  ===============================================================================
column        from
============  ===============================================================================
user_id       ``CustomerID`` as text without a decimal part (``17850.0`` → ``"17850"``)
timestamp     ``InvoiceDate`` (text is parsed; the UCI CSV writes it month first)
event         ``"cancel"`` when ``InvoiceNo`` starts with ``"C"``, else ``"purchase"``
item_id       ``StockCode``
price         ``UnitPrice``
quantity      ``|Quantity|`` (cancellation lines hold negative quantities in the file)
session_id    ``InvoiceNo``: one invoice is one visit
country       ``Country`` (context)
description   ``Description`` (context; may be missing)
============  ===============================================================================

Lines that cannot be a shopper's event are dropped and counted by reason, in this order
(a line is counted once, under the first reason that applies; reasons with no line are
left out of the counts):

1. :data:`NO_CUSTOMER` — no ``CustomerID`` (135,080 lines in the UCI file);
2. :data:`NEGATIVE_PRICE` — a negative ``UnitPrice`` (bad-debt adjustments);
3. :data:`ZERO_QUANTITY` — ``Quantity`` of 0;
4. :data:`NEGATIVE_QUANTITY` — a negative ``Quantity`` on an invoice that is not a
   cancellation (stock write-offs).

Nulls in ``InvoiceNo``, ``StockCode``, ``InvoiceDate``, ``Quantity`` or ``UnitPrice``, an
unparseable date, text in a number column or a fractional ``CustomerID`` raise a
:class:`~retentionrl.core.errors.LogError` naming the column and rows. Duplicate lines are
kept (the log layer counts them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from retentionrl.core.errors import LogError
from retentionrl.interactions.adapters._common import check_not_null, event_column, numbers, parse_timestamps
from retentionrl.interactions.tables import read_table

SIGNATURE_COLUMNS: tuple[str, ...] = ("InvoiceNo", "StockCode", "InvoiceDate", "CustomerID")
"""Columns that identify an Online Retail file."""

COLUMNS: tuple[str, ...] = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
"""Columns the reader needs."""

NO_CUSTOMER = "rows without CustomerID"
NEGATIVE_PRICE = "rows with negative UnitPrice"
ZERO_QUANTITY = "rows with zero Quantity"
NEGATIVE_QUANTITY = "rows with negative Quantity outside a cancellation invoice"


def read_online_retail(path: str | Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read an Online Retail CSV or Parquet file as schema events.

    :returns: ``(events, dropped)``: the events in file order (see the module docstring
        for the columns) and the number of dropped lines by reason.
    """
    raw = read_table(path, columns=COLUMNS)
    check_not_null(raw, ("InvoiceNo", "StockCode", "InvoiceDate", "Quantity", "UnitPrice"), path)
    invoice = raw["InvoiceNo"].astype(str).str.strip()
    quantity = numbers(raw["Quantity"], "Quantity", path)
    price = numbers(raw["UnitPrice"], "UnitPrice", path)
    customer = _customer_ids(raw["CustomerID"], path)
    cancel = invoice.str.startswith("C").to_numpy()

    reasons = (
        (NO_CUSTOMER, customer.isna().to_numpy()),
        (NEGATIVE_PRICE, price < 0),
        (ZERO_QUANTITY, quantity == 0),
        (NEGATIVE_QUANTITY, (quantity < 0) & ~cancel),
    )
    keep = np.ones(len(raw), dtype=bool)
    dropped: dict[str, int] = {}
    for reason, mask in reasons:
        hit = mask & keep
        if hit.any():
            dropped[reason] = int(hit.sum())
            keep &= ~hit

    events = pd.DataFrame(
        {
            "user_id": customer,
            "timestamp": parse_timestamps(raw["InvoiceDate"], "InvoiceDate", path),
            "event": event_column(np.where(cancel, "cancel", "purchase"), len(raw)),
            "item_id": raw["StockCode"].astype("str"),
            "price": price,
            "quantity": np.abs(quantity),
            "session_id": invoice,
            "country": raw["Country"].astype("str"),
            "description": raw["Description"].astype("str"),
        }
    )
    return events.loc[keep].reset_index(drop=True), dropped


def _customer_ids(column: pd.Series, path: str | Path) -> pd.Series:
    """CustomerID as text: ``17850.0`` and ``"17850.0"`` both become ``"17850"``; NA stays NA."""
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        fractional = np.isfinite(values) & (values != np.floor(values))
        if fractional.any():
            raise LogError.for_rows(path, "not a whole number", "CustomerID", fractional, values)
        return pd.Series(values).astype("Int64").astype("str")
    text = column.astype("str").str.strip().str.replace(r"\.0+$", "", regex=True)
    return text.mask(text == "")
