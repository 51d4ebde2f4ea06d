"""A 503 means not stored, against real processes: saves held up by a PostgreSQL lock
for longer than a request waits for the store (``--store-timeout``) are answered once
they commit, and no POST answered 503 has its message in the table."""

import psycopg
import pytest
import trio

from tests.processes import ServiceProcess, free_port

pytestmark = pytest.mark.e2e

STORE_TIMEOUT = 4.0
HELD_FOR = 10.0
POSTS = 30


async def test_no_post_answered_503_has_its_message_committed(tmp_path, postgres_url):
    assert HELD_FOR > 2 * STORE_TIMEOUT  # what the test is about
    proxy = await ServiceProcess.launch(
        tmp_path, "--port", str(free_port()), "--store", postgres_url,
        "--store-timeout", str(STORE_TIMEOUT), name="proxy")
    answers: dict[str, tuple[int, str | None]] = {}
    try:
        async with proxy.client() as client:
            assert (await client.post("/sms", json={"phone_number": "+4912345678",
                                                    "content": "before"})).status_code == 202
            with psycopg.connect(postgres_url) as blocker:
                # Writers wait; readers (the claims' snapshot, /readyz's probe) do not.
                blocker.execute("LOCK TABLE smsproxy_messages IN SHARE ROW EXCLUSIVE MODE")

                async def post(n: int) -> None:
                    answer = await client.post(
                        "/sms", json={"phone_number": "+4912345678", "content": f"held {n}"},
                        timeout=HELD_FOR + 30)
                    body = answer.json()
                    answers[f"held {n}"] = (answer.status_code, body.get("id"))

                async with trio.open_nursery() as nursery:
                    for n in range(POSTS):
                        nursery.start_soon(post, n)
                    await trio.sleep(HELD_FOR)
                    blocker.rollback()  # the lock goes; the saves commit
            assert proxy.process.poll() is None
        with psycopg.connect(postgres_url) as db:
            stored = dict(db.execute("SELECT content, id FROM smsproxy_messages").fetchall())
    finally:
        proxy.stop()
    assert len(answers) == POSTS
    refused = [content for content, (status, _) in answers.items() if status == 503]
    assert [content for content in refused if content in stored] == []
    accepted = {content: message_id for content, (status, message_id) in answers.items()
                if status == 202}
    assert all(stored.get(content) == message_id for content, message_id in accepted.items())
    # Nothing else was wrong: each was held, then answered as stored.
    assert sorted(accepted) == sorted(f"held {n}" for n in range(POSTS))
