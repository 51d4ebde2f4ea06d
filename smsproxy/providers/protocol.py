"""What the dispatcher needs of an SMS provider, and what its webhook gives back.

``send`` hands one batch over, in as many requests as the provider's API needs
(one for FastSMSing and Infobip, one per campaign for Sinch, one per message for
Twilio), and says what it took: :class:`Sent`. A failed attempt raises the
:class:`~smsproxy.errors.ProviderError` it is (see :mod:`._http`); when some of a
batch's requests were taken before one failed, the error carries them
(``error.taken``), so that they are never sent again.

A provider's status reports come to its webhook; :class:`Webhook` checks them as
that provider signs or authenticates them and reads them as :class:`Report`.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from smsproxy.errors import ProviderError
from smsproxy.models import Batch
from smsproxy.statuses import Status

__all__ = ["NOTHING", "Provider", "Reply", "Report", "Sent", "Webhook", "WebhookRequest"]


@dataclass(frozen=True, slots=True)
class Sent:
    """What the provider took: these messages, in ``requests`` paid requests."""

    taken: tuple[str, ...]
    requests: int = 1
    refs: Mapping[str, str] = field(default_factory=dict)
    """The provider's own id for a message, where its reports name it by that."""
    providers: Mapping[str, str] = field(default_factory=dict)
    """Behind a router: the provider that took each message (else the one provider)."""

    def __add__(self, other: "Sent") -> "Sent":
        return Sent(self.taken + other.taken, self.requests + other.requests,
                    {**self.refs, **other.refs}, {**self.providers, **other.providers})

    @classmethod
    def of(cls, error: ProviderError) -> "Sent":
        """What a failed attempt's requests took before it failed."""
        return cls(error.taken, error.requests_taken, error.refs, error.providers)


NOTHING = Sent((), 0)


class Provider(Protocol):
    name: str
    max_batch: int | None
    """Messages one batch may hold at this provider (None: the service's batch size)."""

    async def send(self, batch: Batch) -> Sent: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A status report as it reached us: what a provider's authentication is made of."""

    url: str
    """The URL the provider called, as it called it (a signature may cover it)."""
    headers: Mapping[str, str]
    body: bytes
    form: Mapping[str, str]
    """The form fields, for a form-encoded report (empty otherwise)."""


@dataclass(frozen=True, slots=True)
class Report:
    """One message's status from a provider: ``key`` is our message id, or the
    provider's own id for it (``by_ref``), as :class:`Sent.refs` recorded."""

    key: str
    status: Status | None
    """None: a status this provider documents no meaning for (it is refused, counted)."""
    provider_status: str
    by_ref: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """A phone's message to one of the shop's numbers, as a provider forwards it."""

    from_number: str
    """As the provider writes it (E.164, or international digits without the '+')."""
    to_number: str
    content: str
    received_at: float | None
    """When the provider says it arrived (None: it does not say; now is taken)."""


class Webhook(Protocol):
    status_url: str | None
    """The webhook's public URL as the provider is told it (None: as it was called)."""

    def authenticate(self, request: WebhookRequest, now: float) -> str | None:
        """None when the report is this provider's; otherwise why it is refused."""
        ...

    def reports(self, request: WebhookRequest) -> list[Report]:
        """The reports a request carries; ValueError when it is not in the provider's
        format (a 400)."""
        ...

    def replies(self, request: WebhookRequest) -> list[Reply]:
        """The replies an inbound request carries (authenticated as reports are);
        ValueError when it is not in the provider's format (a 400)."""
        ...
