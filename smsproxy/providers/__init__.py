"""SMS providers: what the batcher needs of one (:mod:`.protocol`), and the
FastSMSing HTTP client (:mod:`.fastsmsing`). The in-process simulator is an actor
(:mod:`actors.simulator`), since it runs a task of its own."""

from smsproxy.providers.fastsmsing import HTTP_LIMITS, FastSmsClient, open_http_client
from smsproxy.providers.protocol import Provider

__all__ = ["HTTP_LIMITS", "FastSmsClient", "Provider", "open_http_client"]
