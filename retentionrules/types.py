"""The value types of the language and the fields every customer has besides the declared ones."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    NUMBER = "number"
    STRING = "string"
    BOOL = "bool"
    DATE = "date"
    ANNIVERSARY = "anniversary"  # a date whose year is ignored: birthdays, shop anniversaries
    DURATION = "duration"
    ENUM = "enum"


@dataclass(frozen=True, slots=True)
class Type:
    kind: Kind
    enum: str | None = None  # the enumeration's name, for messages
    values: tuple[str, ...] = ()  # ordered lowest first

    def __str__(self) -> str:
        return (
            f"{self.enum} ({' < '.join(self.values)})"
            if self.kind is Kind.ENUM
            else self.kind.value
        )

    def rank(self, value: str) -> int:
        return self.values.index(value)

    @property
    def is_datelike(self) -> bool:
        return self.kind in (Kind.DATE, Kind.ANNIVERSARY)


NUMBER, STRING, BOOL = Type(Kind.NUMBER), Type(Kind.STRING), Type(Kind.BOOL)
DATE, ANNIVERSARY, DURATION = Type(Kind.DATE), Type(Kind.ANNIVERSARY), Type(Kind.DURATION)

STAGES = ("potential", "active", "silent", "sleeping", "lost")
STAGE = Type(Kind.ENUM, "stage", STAGES)

# Fields read from the customer export when it carries them, or derived from the orders export
# and the contact history when those are given.
ACTIVITY_FIELDS: dict[str, Type] = {
    "first_order_date": DATE,
    "last_order_date": DATE,
    "orders_12m": NUMBER,
    "spend_12m": NUMBER,
    "total_orders": NUMBER,
    "last_contacted": DATE,
}


def derived_fields(tier: Type) -> dict[str, Type]:
    """Fields computed by the engine for every customer (the playbook's scoring and stages)."""
    return {
        "recency_score": NUMBER,
        "frequency_score": NUMBER,
        "monetary_score": NUMBER,
        "rfm_score": NUMBER,
        "tier": tier,
        "stage": STAGE,
        "days_since_last_order": NUMBER,
        "days_since_first_order": NUMBER,
        "days_since_last_contact": NUMBER,
        "days_to_birthday": NUMBER,
        "avg_order_value": NUMBER,
        **LINE_FIELDS,
    }


# Fields derived from order lines and the product catalogue (docs/engine.md "Derived fields"):
# missing for every customer unless the orders export has lines.
LINE_FIELDS: dict[str, Type] = {
    "next_runout_date": DATE,
    "days_to_runout": NUMBER,
    "runout_sku": STRING,
    "runout_category": STRING,
    "next_warranty_end": DATE,
    "days_to_warranty_end": NUMBER,
    "warranty_sku": STRING,
}
