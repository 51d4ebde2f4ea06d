"""What the compliance routes answer and take: replies (inbound messages) and their
page, the suppression list's entries and their page, and the queries of both."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.listing_schemas import MAX_POSITION
from api.schemas import check_query_time
from smsproxy.callbacks import rfc3339
from smsproxy.compliance import Inbound, Suppression

__all__ = [
    "FastSmsInbound", "InboundPage", "InboundQueryParams", "InboundReply", "SuppressionBody",
    "SuppressionEntry", "SuppressionPage", "SuppressionQuery",
]


class FastSmsInbound(BaseModel):
    """A reply as FastSMSing forwards it (signed as its status reports are)."""

    from_: str = Field(alias="from", description="the phone that replied")
    to: str = Field(description="the shop's number it replied to")
    content: str
    received_at: str | float | None = Field(None, description="RFC 3339, or Unix seconds")


class InboundReply(BaseModel):
    """A reply a phone sent to one of the shop's numbers."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    provider: str = Field(description="the provider that forwarded it")
    from_: str = Field(alias="from", description="E.164")
    to: str
    content: str
    received_at: str = Field(json_schema_extra={"format": "date-time"})
    keyword: str | None = Field(description="opt_out or opt_in, when it was one of the "
                                            "keywords (STOP, START, ...)")

    @classmethod
    def of(cls, inbound: Inbound) -> "InboundReply":
        return cls.model_validate({
            "id": inbound.id, "provider": inbound.provider, "from": inbound.from_number,
            "to": inbound.to_number, "content": inbound.content,
            "received_at": rfc3339(inbound.received_at),
            "keyword": inbound.keyword.value if inbound.keyword else None})


class InboundPage(BaseModel):
    """Replies in the order they were stored; pass ``next`` as ``cursor`` for the
    following page (the same cursor when nothing new came)."""

    messages: list[InboundReply]
    next: str


class InboundQueryParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    since: datetime | None = Field(None, description="received at or after (RFC 3339)")
    limit: int = Field(100, ge=1, le=1000)
    cursor: int = Field(0, ge=0, le=MAX_POSITION, description="an earlier page's next; "
                                                              "0 for the beginning")

    @field_validator("since", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        return check_query_time(value)


class SuppressionEntry(BaseModel):
    """A number that is sent nothing."""

    phone_number: str = Field(description="E.164")
    reason: str
    source: str = Field(description="the provider whose reply put it there, or "
                                    "support:<key name>")
    at: str = Field(json_schema_extra={"format": "date-time"})

    @classmethod
    def of(cls, entry: Suppression) -> "SuppressionEntry":
        return cls(phone_number=entry.number, reason=entry.reason, source=entry.source,
                   at=rfc3339(entry.at))


class SuppressionPage(BaseModel):
    """In order of number; ``next`` is the cursor of the following page (null: no more)."""

    suppressions: list[SuppressionEntry]
    next: str | None


class SuppressionQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(100, ge=1, le=1000)
    cursor: str = Field("", max_length=20, description="the previous page's next")


class SuppressionBody(BaseModel):
    """``PUT /suppressions/<number>``'s optional body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field("added by support", min_length=1, max_length=200)
