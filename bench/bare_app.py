"""The ceiling: bare quart-trio endpoints that parse like smsproxy and answer alike.

Same stack (quart-trio on hypercorn, one worker), same request model and answer,
and nothing behind it: no store, no batching. ``python bench/bare_app.py --port 0``
prints ``listening http://...`` once it is bound.
"""

import argparse
import uuid
from functools import partial

import hypercorn.config
import hypercorn.trio
import trio
from quart import Response, jsonify, request
from quart_trio import QuartTrio

from api.schemas import SmsRequest

__all__ = ["create_bare_app"]


def create_bare_app() -> QuartTrio:
    app = QuartTrio("bare")

    @app.post("/sms")
    async def submit_sms() -> Response:
        SmsRequest.model_validate_json(await request.get_data(as_text=False))
        response = jsonify(id=str(uuid.uuid4()), status="ACCEPTED")
        response.status_code = 202
        return response

    @app.get("/sms/<message_id>")
    async def sms_status(message_id: str) -> Response:
        return jsonify(id=str(uuid.UUID(message_id)), status="DELIVERED")

    return app


async def main(port: int) -> None:
    config = hypercorn.config.Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(hypercorn.trio.serve, create_bare_app(), config))
        print(f"listening {binds[0]}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    trio.run(main, parser.parse_args().port)
