"""An adapter for each entry of the providers file."""

from smsproxy.provider_config import ProviderEntry
from smsproxy.providers.fastsmsing import FastSmsClient, open_http_client
from smsproxy.providers.infobip import InfobipProvider
from smsproxy.providers.sinch import SinchProvider
from smsproxy.providers.twilio import TwilioProvider

__all__ = ["Adapter", "open_adapter"]

Adapter = FastSmsClient | InfobipProvider | SinchProvider | TwilioProvider


def open_adapter(entry: ProviderEntry, timeout: float, default_sender: str | None) -> Adapter:
    """The entry's adapter, with its pooled HTTP client (closed by its ``close``)."""
    sender = entry.sender or default_sender
    if entry.api == "infobip":
        assert entry.api_key and entry.webhook_user and entry.webhook_password
        return InfobipProvider(entry.name, entry.url, entry.api_key, timeout, sender=sender,
                               status_url=entry.status_url, webhook_user=entry.webhook_user,
                               webhook_password=entry.webhook_password,
                               max_batch=entry.max_batch, max_rate=entry.max_rate)
    if entry.api == "sinch":
        assert entry.service_plan_id and entry.api_token
        assert entry.webhook_user and entry.webhook_password
        return SinchProvider(entry.name, entry.url, entry.service_plan_id, entry.api_token,
                             timeout, sender=sender, status_url=entry.status_url,
                             webhook_user=entry.webhook_user,
                             webhook_password=entry.webhook_password, max_batch=entry.max_batch,
                             max_rate=entry.max_rate)
    if entry.api == "twilio":
        assert entry.account_sid and entry.auth_token
        return TwilioProvider(entry.name, entry.url, entry.account_sid, entry.auth_token,
                              timeout, sender=sender, status_url=entry.status_url,
                              max_batch=entry.max_batch, max_rate=entry.max_rate)
    assert entry.webhook_secret
    http = open_http_client(entry.url, entry.api_key, timeout, entry.max_rate)
    return FastSmsClient(http, entry.name, webhook_secret=entry.webhook_secret,
                         max_batch=entry.max_batch, sender=sender)
