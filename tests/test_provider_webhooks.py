"""Each provider's webhook as that provider calls it: authentication refused when
wrong, and every status it documents mapped onto ours (intermediate ones confirm)."""

import json
from urllib.parse import parse_qsl

import pytest

from api.fake_apis import FakeInfobip, FakeSinch, FakeTwilio, basic_header
from smsproxy.providers import infobip, sinch, twilio
from smsproxy.providers.infobip import InfobipProvider
from smsproxy.providers.protocol import Report, WebhookRequest
from smsproxy.providers.sinch import SinchProvider
from smsproxy.providers.twilio import TwilioProvider
from smsproxy.statuses import Status

HOOK = "https://proxy.example/providers/p/status"
GOOD = {"Authorization": basic_header("shop", "pw")}


def json_request(body: object, headers: dict[str, str]) -> WebhookRequest:
    return WebhookRequest(HOOK, headers, json.dumps(body).encode(), {})


@pytest.fixture
def infobip_hook() -> InfobipProvider:
    return InfobipProvider("ib", "http://x", "k", 1, webhook_user="shop", webhook_password="pw")


@pytest.fixture
def sinch_hook() -> SinchProvider:
    return SinchProvider("sn", "http://x", "p", "t", 1, webhook_user="shop",
                         webhook_password="pw")


@pytest.fixture
def twilio_hook() -> TwilioProvider:
    return TwilioProvider("tw", "http://x", "AC0", "token", 1)


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": basic_header("shop", "wrong")},
    {"Authorization": basic_header("other", "pw")}, {"Authorization": "Bearer pw"},
])
def test_basic_credentials_are_checked(infobip_hook: InfobipProvider, sinch_hook: SinchProvider,
                                       headers: dict[str, str]) -> None:
    request = json_request({}, headers)
    assert infobip_hook.authenticate(request, 0) is not None
    assert sinch_hook.authenticate(request, 0) is not None
    assert infobip_hook.authenticate(json_request({}, GOOD), 0) is None
    assert sinch_hook.authenticate(json_request({}, GOOD), 0) is None


@pytest.mark.parametrize(("group", "status"), sorted(infobip.STATUS_GROUPS.items()))
def test_every_infobip_group_maps(infobip_hook: InfobipProvider, group: str,
                                  status: Status) -> None:
    body = FakeInfobip.report({"m1": group, "m2": "DELIVERED"})
    assert infobip_hook.reports(json_request(body, GOOD)) == [
        Report("m1", status, group), Report("m2", Status.DELIVERED, "DELIVERED")]


def test_infobip_groups_are_the_documented_five_and_accepted() -> None:
    assert set(infobip.STATUS_GROUPS) == {"ACCEPTED", "PENDING", "UNDELIVERABLE", "DELIVERED",
                                          "EXPIRED", "REJECTED"}
    assert {g for g, s in infobip.STATUS_GROUPS.items() if s is Status.FAILED} == {
        "UNDELIVERABLE", "EXPIRED", "REJECTED"}


def test_an_unknown_status_is_named_not_guessed(infobip_hook: InfobipProvider) -> None:
    [report] = infobip_hook.reports(json_request(FakeInfobip.report({"m1": "NEW"}), GOOD))
    assert report.status is None and report.provider_status == "NEW"


@pytest.mark.parametrize("body", [[], {"results": {}}, {"results": [{"messageId": "m1"}]},
                                  {"results": [{"status": {"groupName": "DELIVERED"}}]}, "x"])
def test_a_malformed_infobip_report_is_refused(infobip_hook: InfobipProvider,
                                               body: object) -> None:
    with pytest.raises(ValueError):
        infobip_hook.reports(json_request(body, GOOD))


@pytest.mark.parametrize(("name", "status"), sorted(sinch.STATUSES.items()))
def test_every_sinch_status_maps(sinch_hook: SinchProvider, name: str, status: Status) -> None:
    body = FakeSinch.report("B1", "+491510000001", name)
    assert sinch_hook.reports(json_request(body, GOOD)) == [
        Report("B1/491510000001", status, name, by_ref=True)]


def test_sinch_intermediate_and_final_statuses_are_as_documented() -> None:
    assert {n for n, s in sinch.STATUSES.items() if s is Status.CONFIRMED} == {
        "Queued", "Dispatched"}
    assert {n for n, s in sinch.STATUSES.items() if s is Status.FAILED} == {
        "Failed", "Rejected", "Expired", "Aborted", "Cancelled", "Deleted", "Unknown"}


def test_a_sinch_report_names_the_ref_its_send_recorded() -> None:
    assert sinch.ref_of("B1", "+4915") == sinch.ref_of("B1", "4915") == "B1/4915"


@pytest.mark.parametrize("body", [{}, {"batch_id": "B", "recipient": "1"},
                                  {"batch_id": "", "recipient": "1", "status": "Delivered"}])
def test_a_malformed_sinch_report_is_refused(sinch_hook: SinchProvider, body: object) -> None:
    with pytest.raises(ValueError):
        sinch_hook.reports(json_request(body, GOOD))


def twilio_request(url: str, body: bytes, headers: dict[str, str]) -> WebhookRequest:
    return WebhookRequest(url, headers, body, dict(parse_qsl(body.decode())))


@pytest.mark.parametrize(("name", "status"), sorted(twilio.STATUSES.items()))
def test_every_twilio_status_maps_and_names_our_message(
        twilio_hook: TwilioProvider, name: str, status: Status) -> None:
    url = f"{HOOK}?message_id=m7"
    body, headers = FakeTwilio(secret="token").report(url, "SM1", name)
    request = twilio_request(url, body, headers)
    assert twilio_hook.authenticate(request, 0) is None
    assert twilio_hook.reports(request) == [Report("m7", status, name)]


def test_twilio_documented_statuses_all_map() -> None:
    for name in ("queued", "sending", "sent"):
        assert twilio.STATUSES[name] is Status.CONFIRMED
    assert twilio.STATUSES["delivered"] is Status.DELIVERED
    assert twilio.STATUSES["undelivered"] is twilio.STATUSES["failed"] is Status.FAILED


def test_a_twilio_report_without_our_id_names_its_sid(twilio_hook: TwilioProvider) -> None:
    body, headers = FakeTwilio(secret="token").report(HOOK, "SM1", "delivered")
    assert twilio_hook.reports(twilio_request(HOOK, body, headers)) == [
        Report("SM1", Status.DELIVERED, "delivered", by_ref=True)]


@pytest.mark.parametrize("tamper", ["token", "url", "field", "missing"])
def test_a_twilio_signature_that_does_not_match_is_refused(
        twilio_hook: TwilioProvider, tamper: str) -> None:
    url = f"{HOOK}?message_id=m7"
    secret = "another token" if tamper == "token" else "token"
    body, headers = FakeTwilio(secret=secret).report(url, "SM1", "delivered")
    if tamper == "url":
        url = f"{HOOK}?message_id=m8"
    if tamper == "field":
        body = body.replace(b"delivered", b"failed")
    if tamper == "missing":
        headers.pop(twilio.SIGNATURE_HEADER)
    assert twilio_hook.authenticate(twilio_request(url, body, headers), 0) is not None


# --- replies (inbound messages), each in its provider's format ----------------------

def test_infobip_replies_are_its_results(infobip_hook: InfobipProvider) -> None:
    body = {"results": [{"messageId": "1", "from": "4915112345672", "to": "4930123456",
                         "text": "STOP", "receivedAt": "2026-12-08T10:00:00.000+0000"},
                        {"from": "4915112345671", "to": "4930123456", "text": "thanks"}]}
    first, second = infobip_hook.replies(json_request(body, GOOD))
    assert (first.from_number, first.to_number, first.content) == (
        "4915112345672", "4930123456", "STOP")
    assert first.received_at == 1_796_724_000.0
    assert second.received_at is None


def test_sinch_replies_are_mo_text(sinch_hook: SinchProvider) -> None:
    body = {"type": "mo_text", "id": "01", "from": "4915112345672", "to": "12345",
            "body": "Stop", "received_at": "2026-12-08T10:00:00Z"}
    [reply] = sinch_hook.replies(json_request(body, GOOD))
    assert (reply.from_number, reply.to_number, reply.content, reply.received_at) == (
        "4915112345672", "12345", "Stop", 1_796_724_000.0)
    with pytest.raises(ValueError, match="mo_text"):
        sinch_hook.replies(json_request({**body, "type": "mo_media"}, GOOD))


def test_twilio_replies_are_its_form_and_its_signature_covers_the_inbound_url(
        twilio_hook: TwilioProvider) -> None:
    url = "https://proxy.example/providers/tw/inbound"
    form = {"MessageSid": "SM1", "From": "+4915112345672", "To": "+4930123456", "Body": "STOP"}
    signed = {twilio.SIGNATURE_HEADER: twilio.signature("token", url, form)}
    request = WebhookRequest(url, signed, b"", form)
    assert twilio_hook.authenticate(request, 0) is None
    [reply] = twilio_hook.replies(request)
    assert (reply.from_number, reply.content, reply.received_at) == (
        "+4915112345672", "STOP", None)
    elsewhere = WebhookRequest(HOOK, signed, b"", form)
    assert twilio_hook.authenticate(elsewhere, 0) == "wrong signature"


@pytest.mark.parametrize("body", [
    {}, {"results": "x"}, {"results": [{"from": "1", "to": "2"}]},
    {"results": [{"from": 1, "to": "2", "text": "x"}]},
    {"results": [{"from": "1", "to": "2", "text": "x", "receivedAt": "soon"}]},
])
def test_a_malformed_infobip_reply_is_a_value_error(infobip_hook: InfobipProvider,
                                                    body: object) -> None:
    with pytest.raises(ValueError):
        infobip_hook.replies(json_request(body, GOOD))
