"""Request and response bodies. Validation rules come from :mod:`smsproxy.validation`."""

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from smsproxy.callbacks import MAX_URL_LENGTH, check_url
from smsproxy.errors import InvalidMessage
from smsproxy.segments import MAX_SEGMENTS
from smsproxy.statuses import Status
from smsproxy.validation import (
    SENDER_PATTERN,
    validate_content,
    validate_phone_number,
    validate_sender,
)

__all__ = [
    "BulkAccepted",
    "BulkErrorBody",
    "BulkRequest",
    "ErrorBody",
    "InvalidItem",
    "SmsAccepted",
    "SmsRequest",
    "SmsStatus",
    "StatusReport",
    "check_query_time",
    "check_time",
    "describe_validation_error",
    "timestamp",
]


T = TypeVar("T")


def _canonical_key(key: str) -> str:
    """The original's ``PhoneNumber``, ``phoneNumber`` and ``phone_number`` are one field."""
    return key.replace("_", "").lower()


_FIELDS = {"phonenumber": "phone_number", "content": "content", "callbackurl": "callback_url",
           "deliverwithin": "deliver_within", "validfor": "valid_for",
           "validuntil": "valid_until", "sendat": "send_at", "sender": "sender"}
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def check_time(value: str) -> str:
    """An RFC 3339 time with a zone offset that the calendar has (no February 30th, no
    24:00, no second 60)."""
    if not RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 time with a zone offset (Z, or +01:00)")
    try:
        datetime.fromisoformat(value.upper())
    except ValueError as error:
        raise ValueError(f"is not a time the calendar has ({error})") from None
    return value


def check_query_time(value: object) -> object:
    """A time in a query string, as ``check_time`` takes it (None: not given); for a
    ``mode="before"`` validator: pydantic alone would also take a number of seconds, or
    a time without a zone."""
    if value is not None and not isinstance(value, str):
        raise ValueError("must be an RFC 3339 time with a zone offset (Z, or +01:00)")
    return None if value is None else check_time(value)


def timestamp(moment: str | datetime) -> float:
    """Epoch seconds of a checked time, held to the years 1 to 9999 in UTC, so that
    every store holds it and every answer writes it back in RFC 3339 form (an offset
    can move 0001-01-01 or 9999-12-31 out of them; nothing is scheduled that far)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.upper())
    return min(LATEST, max(EARLIEST, moment.timestamp()))


MAX_VALIDITY = 35 * 86_400.0
"""Seconds: no message waits longer than this for the provider."""
MAX_DELIVER_WITHIN = 86_400.0
"""Seconds: a deadline a day away is no deadline (and --message-ttl caps it lower)."""


class SmsRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    # The constraints are documented for clients (and fuzzers); the validators below
    # enforce them, with messages of our own.
    phone_number: str = Field(json_schema_extra={
        "pattern": r"^\+?[0-9 ().\-]{1,40}$",
        "description": "the recipient: E.164 ('+4915112345678'), or written with spaces, "
                       "dashes, dots or parentheses, or with '00' for '+'; digits without "
                       "either are national in the server's --default-region (else "
                       "international); a number its country cannot have (length, unknown "
                       "country code) is a 400, and with --strict-numbers one not in use; "
                       "the answer gives its E.164 form",
    })
    content: str = Field(json_schema_extra={
        "minLength": 1,
        "description": f"at most {MAX_SEGMENTS} concatenated SMS segments "
                       "(1530 GSM-7 characters, 670 UCS-2)",
    })
    callback_url: str | None = Field(None, json_schema_extra={
        "format": "uri", "maxLength": MAX_URL_LENGTH,
        "description": "http or https URL that each status event of the message is POSTed "
                       "to, signed (needs --callback-secret on the server; a host that "
                       "resolves to a loopback, private or link-local address is refused "
                       "unless --callback-allow-private)",
    })
    deliver_within: float | None = Field(None, gt=0, le=MAX_DELIVER_WITHIN, description=(
        "seconds within which the message must leave for the provider (by default the "
        "server's --max-delay); at most the server's --message-ttl, else a 400"))
    delivery_class: str | None = Field(None, alias="class", description=(
        "a delivery class of the server's (--class NAME=SECONDS), instead of "
        "deliver_within; a class the server does not know is a 400"))

    valid_for: float | None = Field(None, gt=0, le=MAX_VALIDITY, description=(
        "seconds after acceptance within which the provider must take the message; "
        "after that it is never sent, and becomes FAILED with the reason 'validity period "
        "expired' (--message-ttl stays the upper bound)"))
    valid_until: str | None = Field(None, json_schema_extra={"format": "date-time"},
                                    description="the same as a time (RFC 3339 with a zone "
                                                "offset), instead of valid_for; in the future")

    send_at: str | None = Field(None, json_schema_extra={"format": "date-time"},
                                description="send it then, not before (RFC 3339 with a zone "
                                            "offset; at most 35 days ahead; a time past is "
                                            "at once); its deadline, validity and TTL count "
                                            "from then")

    sender: str | None = Field(None, json_schema_extra={
        "pattern": SENDER_PATTERN.pattern,
        "description": "whom the phone shows it from: 1 to 11 letters, digits or spaces (an "
                       "alphanumeric sender id), or an E.164 number; by default the "
                       "provider's sender from the providers file, or --default-sender",
    })

    @model_validator(mode="after")
    def _one_of_each(self) -> "SmsRequest":
        if self.deliver_within is not None and self.delivery_class is not None:
            raise ValueError("give deliver_within or class, not both")
        if self.valid_for is not None and self.valid_until is not None:
            raise ValueError("give valid_for or valid_until, not both")
        return self

    @field_validator("valid_until", "send_at")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        return None if value is None else check_time(value)

    @model_validator(mode="before")
    @classmethod
    def _accept_original_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {_FIELDS.get(_canonical_key(k), k): v for k, v in data.items()}

    @field_validator("phone_number")
    @classmethod
    def _phone_number(cls, value: str, info: ValidationInfo) -> str:
        rules = info.context or {}
        try:
            return validate_phone_number(value, rules.get("region"), rules.get("strict", False))
        except InvalidMessage as error:
            raise ValueError(error.reason) from None

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        return None if value is None else _as_value_error(validate_sender, value)

    @field_validator("callback_url")
    @classmethod
    def _callback_url(cls, value: str | None) -> str | None:
        return None if value is None else _as_value_error(check_url, value)

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        try:
            validate_content(value)
        except InvalidMessage as error:
            raise ValueError(error.reason) from None
        return value


def _as_value_error(validate: Callable[[str], T], value: str) -> T:
    try:
        return validate(value)
    except InvalidMessage as error:
        raise ValueError(error.reason) from None


class SmsAccepted(BaseModel):
    id: str
    status: Status = Field(description="always ACCEPTED")
    phone_number: str = Field(description="the recipient in E.164, as it is sent")
    segments: int
    """How many SMS segments the content takes (and the provider bills)."""


class SmsStatus(BaseModel):
    id: str
    status: Status
    phone_number: str | None = Field(None, description="the recipient in E.164")
    reason: str | None = None
    deliver_by: str | None = Field(None, json_schema_extra={"format": "date-time"},
                                   description="when it must leave for the provider, if "
                                               "it set a deadline (deliver_within, class)")
    valid_until: str | None = Field(None, json_schema_extra={"format": "date-time"},
                                    description="after this it is never sent, if it set a "
                                                "validity (valid_for, valid_until)")
    send_at: str | None = Field(None, json_schema_extra={"format": "date-time"},
                                description="not sent before this, if it was scheduled")
    sender: str | None = Field(None, description="whom the phone shows it from, if the "
                                                 "request named a sender")
    provider: str | None = Field(None, description="the provider that took it, once one "
                                                   "did (its name in the providers file)")


def describe_validation_error(error: ValidationError) -> str:
    """One readable line: ``phone_number: must not be empty; content: field required``."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":  # never dropped unread: it may be misspelt
            message = "is not a field this request takes (misspelt, or not supported)"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)



class ErrorBody(BaseModel):
    """Every error answer: a human-readable reason."""

    error: str


class StatusReport(RootModel[dict[str, str]]):
    """Provider status updates: ``{"<message_id>": "CONFIRMED" | "FAILED" | "DELIVERED"}``."""


class BulkRequest(BaseModel):
    """Up to ``--bulk-max`` messages (1,000 by default), accepted all or none."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    messages: list[SmsRequest] = Field(min_length=1, json_schema_extra={"maxItems": 1000})


class BulkAccepted(BaseModel):
    messages: list[SmsAccepted]


class InvalidItem(BaseModel):
    index: int
    error: str


class BulkErrorBody(BaseModel):
    """Why a bulk request was refused; nothing of it was stored. When items were
    invalid, ``invalid`` names each one by its index."""

    error: str
    invalid: list[InvalidItem] = []
