"""What the read side answers and takes: a message's events, the feed of every event,
the listing of messages with its cursor, and the message id a path names."""

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas import check_query_time, timestamp
from smsproxy.callbacks import rfc3339
from smsproxy.models import Event, ListedMessage, MessageQuery
from smsproxy.statuses import Status

__all__ = [
    "CURSOR_PATTERN",
    "MAX_POSITION",
    "UUID_PATTERN",
    "EventPage",
    "FeedQuery",
    "ListedSms",
    "MessageEvent",
    "MessageHistory",
    "MessagePage",
    "MessageQueryParams",
    "make_cursor",
    "parse_cursor",
    "parse_message_id",
]


class MessageEvent(BaseModel):
    """One status step of a message."""

    event_id: str = Field(description="unique: a receiver drops an event it has seen")
    message_id: str = Field(json_schema_extra={"format": "uuid"})
    sequence: int = Field(description="the message's events counted from 1 (ACCEPTED)")
    status: Status
    previous_status: Status | None
    reason: str | None
    at: str = Field(json_schema_extra={"format": "date-time"})

    @classmethod
    def of(cls, event: Event) -> "MessageEvent":
        return cls(event_id=event.event_id, message_id=event.message_id,
                   sequence=event.sequence, status=event.status,
                   previous_status=event.previous_status, reason=event.reason,
                   at=rfc3339(event.at))


class MessageHistory(BaseModel):
    events: list[MessageEvent]


class EventPage(BaseModel):
    """Events in the order they were committed. ``next`` is the cursor to pass as
    ``after`` for the following page (the same cursor when nothing new came)."""

    events: list[MessageEvent]
    next: str


UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
"""A message id as POST answers it (RFC 4122's hyphenated form, OpenAPI's format uuid)."""
CURSOR_PATTERN = rf"^[0-9]{{1,12}}(\.[0-9]{{1,17}})?~{UUID_PATTERN}$"
"""``GET /sms``'s cursor: the accepted time and the id of a page's last message."""


MAX_POSITION = 2**63 - 1
"""The largest event position a store holds (a signed 64-bit integer)."""


class FeedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    after: int = Field(0, ge=0, le=MAX_POSITION, description="a cursor from an earlier "
                                                             "page's next; 0 for the beginning")
    limit: int = Field(100, ge=1, le=1000)


class MessageQueryParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Status | None = Field(None, description="only messages in this status")
    since: datetime | None = Field(None, description="accepted at or after (RFC 3339)")
    until: datetime | None = Field(None, description="accepted before (RFC 3339)")
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, description="the previous page's next",
                               pattern=CURSOR_PATTERN)

    @field_validator("since", "until", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        return check_query_time(value)

    def query(self, tenant: str | None) -> MessageQuery:
        """The store's query for these parameters, of ``tenant``'s messages (None: all)."""
        return MessageQuery(
            status=self.status,
            since=timestamp(self.since) if self.since else None,
            until=timestamp(self.until) if self.until else None,
            before=parse_cursor(self.cursor) if self.cursor else None,
            limit=self.limit, tenant=tenant)


def parse_message_id(text: str) -> str | None:
    """The id in its canonical (lower-case) form, or None when it is not one."""
    return text.lower() if re.fullmatch(UUID_PATTERN, text) else None


def make_cursor(accepted_at: float, message_id: str) -> str:
    return f"{accepted_at!r}~{message_id}"


def parse_cursor(cursor: str) -> tuple[float, str]:
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise ValueError("not a cursor from an earlier page")
    at, _, message_id = cursor.partition("~")
    return float(at), message_id.lower()


class ListedSms(BaseModel):
    id: str
    status: Status
    reason: str | None
    accepted_at: str = Field(json_schema_extra={"format": "date-time"})
    updated_at: str = Field(json_schema_extra={"format": "date-time"})

    @classmethod
    def of(cls, message: ListedMessage) -> "ListedSms":
        return cls(id=message.id, status=message.status, reason=message.reason,
                   accepted_at=rfc3339(message.accepted_at),
                   updated_at=rfc3339(message.updated_at))


class MessagePage(BaseModel):
    """Newest first; ``next`` is the cursor of the following page (null: no more)."""

    messages: list[ListedSms]
    next: str | None

    @classmethod
    def of(cls, found: list[ListedMessage], limit: int) -> "MessagePage":
        """A page of what a query found: a full page has a next one (it may be empty)."""
        last = found[-1] if len(found) == limit else None
        return cls(messages=[ListedSms.of(m) for m in found],
                   next=make_cursor(last.accepted_at, last.id) if last else None)
