"""What the client answers with: typed, immutable values read from the server's JSON."""

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Accepted", "Event", "ListedMessage", "MessageStatus", "Outgoing", "Page", "Status"]


class Status(enum.StrEnum):
    ACCEPTED = "ACCEPTED"
    NOT_FOUND = "NOT_FOUND"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"
    DELIVERED = "DELIVERED"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send; ``options`` are the API's other fields (``class``,
    ``deliver_within``, ``send_at``, ``valid_for``, ``valid_until``)."""

    phone_number: str
    content: str
    sender: str | None = None
    callback_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"phone_number": self.phone_number, "content": self.content}
        if self.sender is not None:
            fields["sender"] = self.sender
        if self.callback_url is not None:
            fields["callback_url"] = self.callback_url
        return fields | self.options


@dataclass(frozen=True, slots=True)
class Accepted:
    id: str
    status: Status
    segments: int
    phone_number: str
    """As the server stores it (E.164)."""
    replayed: bool = False
    """The server had this request already (a retry): nothing new was sent."""

    @classmethod
    def of(cls, item: dict[str, Any], replayed: bool) -> "Accepted":
        return cls(item["id"], Status(item["status"]), int(item["segments"]),
                   item["phone_number"], replayed)


@dataclass(frozen=True, slots=True)
class MessageStatus:
    id: str
    status: Status
    reason: str | None = None
    phone_number: str | None = None
    sender: str | None = None
    provider: str | None = None
    send_at: str | None = None
    valid_until: str | None = None
    deliver_by: str | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> "MessageStatus":
        return cls(body["id"], Status(body["status"]),
                   **{k: body.get(k) for k in ("reason", "phone_number", "sender", "provider",
                                                "send_at", "valid_until", "deliver_by")})


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    message_id: str
    sequence: int
    status: Status
    previous_status: Status | None
    reason: str | None
    at: str

    @classmethod
    def of(cls, body: dict[str, Any]) -> "Event":
        previous = body.get("previous_status")
        return cls(body["event_id"], body["message_id"], int(body["sequence"]),
                   Status(body["status"]), Status(previous) if previous else None,
                   body.get("reason"), body["at"])


@dataclass(frozen=True, slots=True)
class ListedMessage:
    id: str
    status: Status
    reason: str | None
    accepted_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class Page:
    """Messages newest first; ``next`` is the cursor of the following page (None: the end)."""

    messages: list[ListedMessage]
    next: str | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> "Page":
        return cls([ListedMessage(m["id"], Status(m["status"]), m.get("reason"),
                                  m["accepted_at"], m["updated_at"]) for m in body["messages"]],
                   body.get("next"))
