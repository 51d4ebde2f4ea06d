"""The FastSMSing adapter: ``POST /v1/batches``, one request a batch, Bearer key.

Its answer is ``202 {"accepted": n}``; every other way a call ends maps as in
:mod:`._http`. Its status reports are ``{message_id: status}``, signed with HMAC
(:mod:`smsproxy.signing`), and name our message ids."""

import httpx

from smsproxy.models import Batch
from smsproxy.providers._http import (
    HTTP_LIMITS,
    read_json,
    transport_errors,
    unexpected,
)
from smsproxy.providers._http import open_http_client as _open
from smsproxy.providers.protocol import Sent

__all__ = ["HTTP_LIMITS", "FastSmsClient", "open_http_client"]

BATCHES_PATH = "/v1/batches"


def open_http_client(base_url: str, api_key: str | None, timeout: float) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return _open(base_url, timeout, headers)


class FastSmsClient:
    max_batch: int | None = None

    def __init__(self, http: httpx.AsyncClient, name: str = "fastsmsing") -> None:
        self._http = http
        self.name = name

    async def send(self, batch: Batch) -> Sent:
        body = {
            "messages": [
                {"message_id": m.id, "phone_number": m.phone_number, "content": m.content}
                for m in batch.messages
            ]
        }
        with transport_errors():
            response = await self._http.post(BATCHES_PATH, json=body)
        answer = read_json(response, 202)
        if not (isinstance(answer, dict) and type(answer.get("accepted")) is int):
            raise unexpected(response, 'the documented body {"accepted": n}')
        return Sent(tuple(m.id for m in batch.messages))

    async def close(self) -> None:
        await self._http.aclose()
