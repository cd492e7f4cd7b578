"""The JSON bodies of the decision service's routes (version 1), as pydantic models: FastAPI
validates requests against them and publishes them on the OpenAPI page (``/docs``).

Times are ISO-8601; a time with a zone is converted to UTC, a time without one is read as UTC
(as :func:`retentionrl.interactions.io.read_events` reads log timestamps). Unknown keys are
refused, so a misspelt field is an error naming it, never silently ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OutcomeEvent(_Strict):
    """An outcome of a served decision: a click, or a purchase (a redemption is a purchase with
    ``redeemed`` true: the shopper used the coupon the decision offered)."""

    event_id: str = Field(
        min_length=1, max_length=200, description="The client's unique id of this event; a repeat is refused (409)."
    )
    decision_id: str = Field(min_length=1, max_length=64, description="The decision this event is an outcome of.")
    shopper_id: str = Field(
        min_length=1, max_length=256, description="The shopper of that decision, as the shop knows them."
    )
    event: Literal["click", "purchase"]
    time: datetime = Field(description="When it happened: not before the decision.")
    item_id: int | str | None = Field(None, description="The item clicked or bought (default: the served arm's label).")
    price: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="Unit list price, before any coupon (purchases)."
    )
    quantity: float = Field(1.0, gt=0, allow_inf_nan=False, description="Units bought (purchases).")
    unit_cost: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="Cost of goods per unit (purchases, optional)."
    )
    redeemed: bool = Field(False, description="The purchase used the offered coupon.")


class DecideRequest(_Strict):
    """Ask what to show a shopper now."""

    shopper_id: str = Field(
        min_length=1, max_length=256, description="The shopper, as the shop knows them (stored only pseudonymised)."
    )
    time: datetime = Field(
        description="When the shopper arrived: not before their last event, after their last decision."
    )
    events: list[OutcomeEvent] = Field(
        default_factory=list, description="Outcomes of this shopper's previous decision not yet posted, recorded first."
    )


class Decision(BaseModel):
    """What to show: the arm (an item group or an item) and the coupon, with the probability
    with which the service chose this action (the propensity it logs)."""

    decision_id: str
    visit: int = Field(description="The shopper's visit number (0 = first decision).")
    action: int = Field(description="Flat action index: arm * n_coupons + coupon_index.")
    arm: int
    item_group: int | str | None = Field(description="The recommended item group (a policy over groups), else null.")
    item_id: int | str | None = Field(description="The recommended item (a policy over items), else null.")
    coupon_index: int
    coupon: float = Field(description="Discount fraction offered (0 = none).")
    propensity: float = Field(description="Probability of this action under the served policy.")
    policy_version: str


class EventsRequest(_Strict):
    """Outcomes to record, all or none."""

    events: list[OutcomeEvent] = Field(min_length=1)


class EventsRecorded(BaseModel):
    recorded: int


class Shopper(BaseModel):
    """What the service holds about a shopper (never the raw id)."""

    key: str = Field(description="The pseudonymised id the store and the decision log use.")
    visits: int
    last_time: datetime
    open_decision: str = Field(description="The decision whose outcomes can still be posted.")


class Health(BaseModel):
    status: Literal["ok"]
    policy_version: str
    decisions: int
    unflushed_rows: int


class ErrorDetail(BaseModel):
    field: str = Field(description="The request field at fault (dotted path), or 'body'.")
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail
