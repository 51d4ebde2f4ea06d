"""The ceiling: bare quart-trio endpoints (POST /sms, POST /sms/bulk, GET) that parse
like smsproxy and answer alike.

Same stack (quart-trio on hypercorn, one worker, smsproxy's hypercorn settings),
the very same parsing, validation and answer helpers as smsproxy, the same
garbage-collector settings, and nothing behind them: no store, no batching. The
ratio of the two then measures what the proxy's own work costs.
``python bench/bare_app.py --port 0`` prints ``listening http://...`` once bound.
"""

import argparse
import uuid
from functools import partial

import hypercorn.trio
import trio
from quart import Response, request
from quart_trio import QuartTrio

from api.common import json_response, parse_json_object
from api.schemas import BulkRequest, SmsRequest
from api.serving import hypercorn_config, tune_garbage_collector
from smsproxy.models import new_ids
from smsproxy.segments import count_segments

__all__ = ["create_bare_app"]


def create_bare_app() -> QuartTrio:
    app = QuartTrio("bare")

    @app.post("/sms")
    async def submit_sms() -> Response:
        body = await request.get_data(as_text=False)
        assert isinstance(body, bytes)
        sms = SmsRequest.model_validate(parse_json_object(body))
        answer = {"id": str(uuid.uuid4()), "status": "ACCEPTED",
                  "segments": count_segments(sms.content).count}
        return json_response(answer, 202)

    @app.post("/sms/bulk")
    async def submit_bulk() -> Response:
        body = await request.get_data(as_text=False)
        assert isinstance(body, bytes)
        bulk = BulkRequest.model_validate(parse_json_object(body))
        # ids made as smsproxy makes a bulk request's (uuid4 for each was a sixth of
        # this route's time)
        answer = [{"id": message_id, "status": "ACCEPTED",
                   "segments": count_segments(sms.content).count}
                  for message_id, sms in zip(new_ids(len(bulk.messages)), bulk.messages,
                                             strict=True)]
        return json_response({"messages": answer}, 202)

    @app.get("/sms/<message_id>")
    async def sms_status(message_id: str) -> Response:
        return json_response({"id": str(uuid.UUID(message_id)), "status": "DELIVERED"}, 200)

    return app


async def main(port: int) -> None:
    config = hypercorn_config("127.0.0.1", port, grace=5.0)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(hypercorn.trio.serve, create_bare_app(), config))
        print(f"listening {binds[0]}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    tune_garbage_collector()  # as `smsproxy serve` does
    trio.run(main, parser.parse_args().port)
