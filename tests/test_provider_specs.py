"""Each adapter's request checked against its provider's published API description
(``../shared/specs``, beside the repository in CI; the documents are not copied in).

The bodies are validated with jsonschema against the operation's request schema,
the Twilio form against the operation's form fields and required ones."""

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from smsproxy.models import Batch, Message
from smsproxy.providers.infobip import InfobipProvider
from smsproxy.providers.sinch import SinchProvider, campaigns
from smsproxy.providers.twilio import TwilioProvider

SPECS = Path(__file__).resolve().parents[2] / "shared" / "specs"

pytestmark = pytest.mark.skipif(
    not SPECS.is_dir(), reason=f"the providers' API documents are not at {SPECS} "
    "(they sit beside the repository in CI and are not redistributed with it)")

BATCH = Batch("b", (Message("m1", "+491510000001", "hello", 0.0),
                    Message("m2", "+491510000002", "hi", 0.0, sender="Shop 2")))


def validate(document: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    jsonschema.Draft202012Validator(
        {**schema, "components": document["components"]}).validate(value)


def request_schema(document: dict[str, Any], path: str, media: str) -> dict[str, Any]:
    return document["paths"][path]["post"]["requestBody"]["content"][media]["schema"]


def test_infobip_request_follows_its_openapi_document() -> None:
    document = json.loads((SPECS / "infobip-sms-openapi.json").read_text())
    schema = request_schema(document, "/sms/3/messages", "application/json")
    adapter = InfobipProvider("ib", "http://x", "k", 1, sender="MyShop",
                              status_url="https://proxy.example/hook")
    validate(document, schema, adapter.request_body(BATCH))
    with pytest.raises(jsonschema.ValidationError):  # the check has teeth
        validate(document, schema, {"messages": [{"content": {"text": "x"}}]})


def test_sinch_request_follows_its_openapi_document() -> None:
    document = yaml.safe_load((SPECS / "sinch-sms-openapi.yml").read_text())
    schema = request_schema(document, "/xms/v1/{service_plan_id}/batches", "application/json")
    adapter = SinchProvider("sn", "http://x", "p", "t", 1, sender="MyShop",
                            status_url="https://proxy.example/hook")
    for request in campaigns(BATCH.messages, "MyShop"):
        validate(document, schema, adapter.request_body(request))
    with pytest.raises(jsonschema.ValidationError):
        validate(document, schema, {"to": ["+4915"], "body": "no sender"})


def test_sinch_reports_carry_what_the_webhook_reads() -> None:
    document = yaml.safe_load((SPECS / "sinch-sms-webhooks-asyncapi.yml").read_text())
    fields = document["components"]["schemas"]["RecipientDeliveryReportPayload"]["properties"]
    assert {"batch_id", "recipient", "status"} <= set(fields)


def test_twilio_form_follows_its_openapi_document() -> None:
    document = yaml.safe_load((SPECS / "twilio_api_v2010.yaml").read_text())
    schema = request_schema(document, "/2010-04-01/Accounts/{AccountSid}/Messages.json",
                            "application/x-www-form-urlencoded")
    adapter = TwilioProvider("tw", "http://x", "AC0", "t", 1, sender="+15550100",
                             status_url="https://proxy.example/hook")
    for message in BATCH.messages:
        form = adapter.request_form(message)
        assert set(schema["required"]) <= set(form)
        assert set(form) <= set(schema["properties"])
        assert all(schema["properties"][name]["type"] == "string" for name in form)
    statuses = document["components"]["schemas"]["message_enum_status"]["enum"]
    assert {"queued", "sending", "sent", "delivered", "undelivered", "failed"} <= set(statuses)


def test_infobip_report_groups_are_the_documents() -> None:
    document = json.loads((SPECS / "infobip-sms-openapi.json").read_text())
    [groups] = [schema["enum"] for name, schema in document["components"]["schemas"].items()
                if name.endswith(".MessageGeneralStatus")]
    from smsproxy.providers.infobip import STATUS_GROUPS

    assert set(STATUS_GROUPS) == set(groups)
