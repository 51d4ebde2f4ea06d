"""The support console over HTTP: who may look and what they see (a sign-in with a key
and a session that is the key's name, CSRF on every form that changes state, loopback
only without keys, masked numbers without a key), and that it finds a message, its
history and its callbacks."""

import re

import pytest

from api import ApiSettings, create_app
from smsproxy.tenants import parse_keys

KEYS = parse_keys("shop=shop-key,warehouse=warehouse-key") + parse_keys(
    "support=support-key", admin=True)
BOB = "+4915112345672"


@pytest.fixture
async def pipeline(start_pipeline):
    return await start_pipeline(simulate=True, max_delay=0.05)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def text(response) -> str:
    return (await response.get_data()).decode()


async def sign_in(client, key: str):
    form = await client.get("/console/sign-in")
    token = csrf_of(await text(form))
    return await client.post("/console/sign-in", form={"key": key, "csrf": token})


async def send(client, key: str, number: str = BOB, **fields) -> str:
    answer = await client.post("/sms", json={"phone_number": number, "content": "secret text",
                                             **fields},
                               headers={"Authorization": f"Bearer {key}"})
    return (await answer.get_json())["id"]


async def test_without_a_session_every_page_leads_to_the_sign_in(pipeline):
    client = create_app(pipeline.services, ApiSettings(api_keys=KEYS)).test_client()
    for path in ("/console/", "/console/messages", "/console/messages/x"):
        answer = await client.get(path)
        assert answer.status_code == 303 and answer.headers["Location"] == "/console/sign-in"
    form = await client.get("/console/sign-in")
    assert form.status_code == 200 and 'type="password"' in await text(form)
    assert "default-src 'none'" in form.headers["Content-Security-Policy"]
    assert form.headers["X-Frame-Options"] == "DENY"


async def test_a_wrong_key_or_a_missing_token_signs_no_one_in(pipeline):
    client = create_app(pipeline.services, ApiSettings(api_keys=KEYS)).test_client()
    wrong = await sign_in(client, "guess")
    assert wrong.status_code == 401 and "not an API key" in await text(wrong)
    forged = await client.post("/console/sign-in", form={"key": "support-key"})
    assert forged.status_code == 400
    stolen = await client.post("/console/sign-in", form={"key": "support-key", "csrf": "x"})
    assert stolen.status_code == 400
    assert (await client.get("/console/")).status_code == 303


async def test_a_key_sees_its_own_messages_and_support_sees_all(pipeline):
    app = create_app(pipeline.services, ApiSettings(api_keys=KEYS))
    api = app.test_client()
    mine = await send(api, "shop-key", callback_url=None)
    theirs = await send(api, "warehouse-key")
    shop = app.test_client()
    assert (await sign_in(shop, "shop-key")).headers["Location"] == "/console/"
    overview = await text(await shop.get("/console/"))
    assert 'id="who">shop<' in overview
    page = await text(await shop.get(f"/console/messages/{mine}"))
    assert BOB in page and "secret text" not in page  # the key's own: the full number
    assert 'id="history"' in page and "ACCEPTED" in page
    hidden = await text(await shop.get(f"/console/messages/{theirs}"))
    assert 'id="not-found"' in hidden and BOB not in hidden
    found = await shop.get(f"/console/messages?id={theirs}")
    assert found.headers["Location"] == f"/console/messages/{theirs}"
    listed = await text(await shop.get("/console/messages"))
    assert mine in listed and theirs not in listed
    support = app.test_client()
    await sign_in(support, "support-key")
    everything = await text(await support.get("/console/messages"))
    assert mine in everything and theirs in everything


async def test_signing_out_needs_the_token_and_ends_the_session(pipeline):
    client = create_app(pipeline.services, ApiSettings(api_keys=KEYS)).test_client()
    await sign_in(client, "support-key")
    overview = await text(await client.get("/console/"))
    assert (await client.post("/console/sign-out", form={"csrf": "forged"})).status_code == 400
    assert (await client.get("/console/")).status_code == 200
    out = await client.post("/console/sign-out", form={"csrf": csrf_of(overview)})
    assert out.headers["Location"] == "/console/sign-in"
    assert (await client.get("/console/")).status_code == 303


async def test_a_session_cookie_is_http_only_strict_and_for_the_console_only(pipeline):
    client = create_app(pipeline.services, ApiSettings(api_keys=KEYS)).test_client()
    answer = await sign_in(client, "shop-key")
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Expires=" in cookie and "shop-key" not in cookie


async def test_without_keys_only_loopback_may_look_and_numbers_are_masked(pipeline):
    app = create_app(pipeline.services, ApiSettings())
    client = app.test_client()
    message_id = (await (await client.post(
        "/sms", json={"phone_number": BOB, "content": "secret text"})).get_json())["id"]
    local = {"client": ("127.0.0.1", 4000)}
    page = await text(await client.get(f"/console/messages/{message_id}", scope_base=local))
    assert BOB not in page and "secret text" not in page and "672" in page
    assert 'id="history"' in page
    assert (await client.get("/console/", scope_base=local)).status_code == 200
    remote = await client.get("/console/", scope_base={"client": ("203.0.113.9", 4000)})
    assert remote.status_code == 403


async def test_a_bad_search_says_why(pipeline):
    client = create_app(pipeline.services, ApiSettings(api_keys=KEYS)).test_client()
    await sign_in(client, "support-key")
    bad = await client.get("/console/messages?status=LOST")
    assert bad.status_code == 400 and 'id="problem"' in await text(bad)
    not_an_id = await client.get("/console/messages/<script>")
    assert not_an_id.status_code == 400 and "<script>" not in await text(not_an_id)
