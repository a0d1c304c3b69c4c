"""The answer model and the verdict. Every answer is optional: absent means unknown, never "no"."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

M = TypeVar("M", bound=BaseModel)


class EntityType(StrEnum):
    company = "company"
    sole_proprietor = "sole_proprietor"
    sme_association = "sme_association"
    medical_corporation = "medical_corporation"
    social_welfare_corporation = "social_welfare_corporation"
    school_corporation = "school_corporation"
    general_association = "general_association"
    cooperative = "cooperative"
    other = "other"


class Industry(StrEnum):
    manufacturing = "manufacturing"
    construction = "construction"
    transport = "transport"
    other_industry = "other_industry"
    rubber_products = "rubber_products"
    wholesale = "wholesale"
    retail = "retail"
    services = "services"
    software_it = "software_it"
    hotel = "hotel"


class ProjectType(StrEnum):
    led = "led"
    equipment_replacement = "equipment_replacement"
    cogeneration = "cogeneration"
    other = "other"  # outside 第4 (solar, batteries, EVs, insulation ...): not covered


class Equipment(StrEnum):
    boiler = "boiler"
    industrial_furnace = "industrial_furnace"
    air_conditioning = "air_conditioning"
    private_generator = "private_generator"
    other = "other"


class Delivery(StrEnum):
    purchase = "purchase"
    lease = "lease"
    esco = "esco"


_set = object.__setattr__


def shallow_copy(model: M) -> M:
    """`model.model_copy()` (its own field dict and set of fields set, the values shared) in
    half the time: pydantic's goes through copy.copy three times. Models with private
    attributes or extra fields (none of ours) take pydantic's way."""
    if getattr(model, "__pydantic_extra__", None) or getattr(model, "__pydantic_private__", None):
        return model.model_copy()
    new = type(model).__new__(type(model))
    _set(new, "__dict__", model.__dict__.copy())
    _set(new, "__pydantic_fields_set__", model.__pydantic_fields_set__.copy())
    _set(new, "__pydantic_extra__", None)
    _set(new, "__pydantic_private__", None)
    return new


def _no_bool(value):
    """JSON `true` is not 1 yen nor 1 person: numbers must be numbers."""
    if isinstance(value, bool):
        raise ValueError("a number is needed, not true/false")
    return value


def _exact_tonnes(value):
    """Any exact decimal (an estimate carries many places and is compared exactly); a binary
    float is read from its shortest repr, so 64.1 stays 64.1."""
    value = _no_bool(value)
    return Decimal(repr(value)) if isinstance(value, float) else value


Count = Annotated[int | None, BeforeValidator(_no_bool), Field(default=None, ge=0)]
# Any exact decimal: an estimate (kWh × factor) keeps all its digits. At most 10^9 t (no site
# emits more) and 100 places, so exact arithmetic stays small.
Tonnes = Annotated[
    Decimal | None,
    BeforeValidator(_exact_tonnes),
    Field(default=None, ge=0, le=10**9, allow_inf_nan=False),
    AfterValidator(lambda v: v if v is None or -v.as_tuple().exponent <= 100 else _too_fine()),
]


def _too_fine():
    raise ValueError("more than 100 decimal places")


class Answers(BaseModel):
    """What the applicant told us. The order of asking is the ruleset's `ask_order`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entity_type: EntityType | None = None
    industry: Industry | None = None
    blue_return: bool | None = None
    capital_yen: Count = None
    employees: Count = None
    tax_arrears: bool | None = None
    antisocial_forces: bool | None = None
    site_in_tochigi: bool | None = None
    project_type: ProjectType | None = None
    equipment: Equipment | None = None
    replaces_existing: bool | None = None
    delivery: Delivery | None = None
    co2_before_t: Tonnes = None
    co2_after_t: Tonnes = None


Status = Literal["eligible", "ineligible", "undetermined"]
CriterionStatus = Literal["met", "not_met", "unknown"]


class Reason(BaseModel):
    criterion: str
    status: CriterionStatus
    clause: str
    message_key: str
    params: dict = Field(default_factory=dict)


class Verdict(BaseModel):
    status: Status
    reasons: list[Reason]
    missing: list[str]
    ruleset: str
    warnings: list[dict] = Field(default_factory=list)  # {"key": locale key, "params": {...}}
