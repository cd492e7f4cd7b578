"""The event-log schema every stage of retentionrl reads.

One row is one event. Logs are read from CSV or Parquet (see :mod:`retentionrl.interactions.io`).

=============  ========  ========  ==========================================================
column         required  type      meaning
=============  ========  ========  ==========================================================
user_id        yes       str/int   the shopper; any stable id (hashed ids are fine)
timestamp      yes       datetime  when the event happened; ISO-8601 text, a datetime
                                   column, or numbers read as Unix seconds. Time zones are
                                   converted to UTC and dropped.
event          yes       str       one of :data:`EVENT_TYPES` (below)
item_id        yes       str/int   the item the event is about (the recommended item for
                                   ``impression``; the bought item for ``purchase``)
price          no        float     unit price before any coupon, >= 0
quantity       no        float     units; purchases default to 1
unit_cost      no        float     cost of goods per unit (currency, >= 0) on ``purchase``
                                   rows, required on every purchase row when the column
                                   exists; a visit's cost of goods is the sum of
                                   ``unit_cost * quantity`` over its purchases. Without the
                                   column the log records no cost of goods: it is taken as
                                   0, so profit is net revenue (spend - coupon cost)
coupon         no        float     coupon level as a discount fraction in [0, 1): offered on
                                   an ``impression``, redeemed on a ``purchase``; 0 = none
propensity     no        float     probability, in (0, 1], with which the shop's logging
                                   policy chose the logged action (``impression`` rows)
position       no        int       slot of the recommendation on the page, 0-based
session_id     no        str/int   a visit key the shop already has (an invoice, a session);
                                   when present, each (user_id, session_id) is one visit
item_group     no        str/int   the item's group (category); lets a large catalog use
                                   groups as recommendation arms
(any other)    no        any       free context columns, kept as they are
=============  ========  ========  ==========================================================

Event types (:data:`EVENT_TYPES`):

==============  ===============================================================
``impression``  the shop showed a recommendation (and offered a coupon): the action
``view``        the shopper looked at an item
``click``       the shopper clicked a recommended item
``cart``        the shopper put an item in the cart
``purchase``    the shopper bought an item (``price``, ``quantity``, ``unit_cost``, ``coupon``)
``cancel``      a purchase was cancelled or returned; it does not start a visit
==============  ===============================================================
"""

from __future__ import annotations

REQUIRED_COLUMNS: tuple[str, ...] = ("user_id", "timestamp", "event", "item_id")
"""Columns every log must have."""

OPTIONAL_COLUMNS: tuple[str, ...] = (
    "price",
    "quantity",
    "unit_cost",
    "coupon",
    "propensity",
    "position",
    "session_id",
    "item_group",
)
"""Columns with a meaning of their own; any other column is kept as free context."""

NUMERIC_COLUMNS: tuple[str, ...] = ("price", "quantity", "unit_cost", "coupon", "propensity", "position")
"""Optional columns that must hold finite numbers where they are not null."""

EVENT_TYPES: tuple[str, ...] = ("impression", "view", "click", "cart", "purchase", "cancel")
"""Allowed values of the ``event`` column."""

VISIT_EVENTS: tuple[str, ...] = ("impression", "view", "click", "cart", "purchase")
"""Events made by a shopper being at the shop: they start or extend a visit."""
