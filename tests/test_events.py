"""Every status step is an event, written with the step (an outbox): a message's
history, and the feed of every event in commit order, on every store backend."""

import json
import threading
import uuid

import psycopg
import pytest

from api import create_app
from smsproxy.dispatching import BatchingRules
from smsproxy.models import Message, MessageQuery, event_id_of, new_id, new_ids
from smsproxy.repository import Repository
from smsproxy.statuses import Status
from smsproxy.stores.postgres import PostgresStore
from smsproxy.stores.sqlite import SqliteStore

PHONE = "+4912345678"


def messages(count: int) -> list[Message]:
    return [Message(i, PHONE, f"m{n}", created_at=1_764_180_000.0 + n)
            for n, i in enumerate(new_ids(count))]


def steps(events) -> list[tuple[int, Status, Status | None]]:
    return [(e.sequence, e.status, e.previous_status) for e in events]


async def test_a_message_s_whole_life_is_its_history(repo):
    [message] = messages(1)
    await repo.save(message)
    await repo.update(message.id, Status.CONFIRMED)
    await repo.update(message.id, Status.DELIVERED)
    history = await repo.history(message.id)
    assert steps(history) == [(1, Status.ACCEPTED, None), (2, Status.CONFIRMED, Status.ACCEPTED),
                              (3, Status.DELIVERED, Status.CONFIRMED)]
    assert history[0].at == message.created_at
    assert len({e.event_id for e in history}) == 3


async def test_two_steps_written_as_one_row_are_two_events(repo):
    [message] = messages(1)
    await repo.save(message)
    refused = await repo.apply_in_order([(message.id, Status.CONFIRMED),
                                         (message.id, Status.DELIVERED)])
    assert refused == []
    assert (await repo.get(message.id)).status is Status.DELIVERED
    assert [e.status for e in await repo.history(message.id)] == [
        Status.ACCEPTED, Status.CONFIRMED, Status.DELIVERED]


async def test_delivered_before_confirmed_shows_what_was_applied(repo):
    [message] = messages(1)
    await repo.save(message)
    refused = await repo.apply_in_order([(message.id, Status.DELIVERED),
                                         (message.id, Status.CONFIRMED)])
    assert [(status, type(error).__name__) for _, status, error in refused] == [
        (Status.CONFIRMED, "FinalStatusLocked")]
    assert steps(await repo.history(message.id)) == [
        (1, Status.ACCEPTED, None), (2, Status.DELIVERED, Status.ACCEPTED)]


async def test_an_unknown_id_in_a_report_does_not_stop_the_others(repo):
    [message] = messages(1)
    await repo.save(message)
    refused = await repo.apply_in_order([(str(uuid.uuid4()), Status.CONFIRMED),
                                         (message.id, Status.CONFIRMED)])
    assert [type(error).__name__ for _, _, error in refused] == ["UnknownMessage"]
    assert [e.status for e in await repo.history(message.id)] == [
        Status.ACCEPTED, Status.CONFIRMED]


async def test_a_repeated_status_is_no_event_and_no_error(repo):
    [message] = messages(1)
    await repo.save(message)
    await repo.update(message.id, Status.CONFIRMED)
    assert await repo.apply_in_order([(message.id, Status.CONFIRMED)]) == []
    assert [e.sequence for e in await repo.history(message.id)] == [1, 2]


async def test_a_failure_carries_its_reason(repo):
    [message] = messages(1)
    await repo.save(message)
    await repo.update(message.id, Status.FAILED, reason="not accepted within the TTL")
    last = (await repo.history(message.id))[-1]
    assert (last.status, last.previous_status, last.reason) == (
        Status.FAILED, Status.ACCEPTED, "not accepted within the TTL")


async def test_a_refused_save_leaves_no_event(repo):
    first, second = messages(2)
    await repo.save(first)
    with pytest.raises(Exception, match="exists"):
        await repo.save(second, first)  # first's id again: all or none
    assert await repo.history(second.id) == []
    assert len(await repo.history(first.id)) == 1


async def test_event_ids_are_derived_from_message_and_sequence_on_every_store(repo):
    """The same id at every read, on every store and instance, and none stored twice."""
    saved = messages(2)
    await repo.save(*saved)
    await repo.update_many({m.id: Status.CONFIRMED for m in saved})
    history = await repo.history(saved[0].id)
    assert [e.event_id for e in history] == [event_id_of(saved[0].id, 1),
                                             event_id_of(saved[0].id, 2)]
    feed = await repo.feed(0, 10)
    assert {e.event_id for e in feed} == {event_id_of(m.id, n) for m in saved for n in (1, 2)}
    assert uuid.UUID(history[1].event_id).version == 5


def test_event_ids_differ_for_every_message_and_step():
    ids = new_ids(300)
    derived = {event_id_of(i, n) for i in ids for n in range(1, 6)}
    assert len(derived) == 1500
    assert event_id_of(ids[0], 1) != event_id_of(ids[0], 2) != event_id_of(ids[1], 2)


def test_a_postgres_event_recorded_with_a_random_id_keeps_it(postgres_url):
    store = PostgresStore(postgres_url)
    repository = Repository(store)
    [message] = messages(1)
    try:
        with store.transaction():
            repository.save([message])
        with store.transaction():  # as schema 10 wrote it
            store._conn.execute("UPDATE smsproxy_events SET event_id = 'given-before-11'"
                                " WHERE message_id = %s", (message.id,))
        with store.transaction():
            repository.update_many({message.id: Status.CONFIRMED})
        with store.transaction():
            history = repository.history(message.id)
    finally:
        store.close()
    assert [e.event_id for e in history] == ["given-before-11", event_id_of(message.id, 2)]


async def test_an_unknown_message_has_no_history(repo):
    assert await repo.history(str(uuid.uuid4())) == []


async def test_the_feed_pages_over_every_event_once_in_order(repo):
    saved = messages(5)
    await repo.save(*saved)
    await repo.update_many({m.id: Status.CONFIRMED for m in saved[:3]})
    await repo.update(saved[0].id, Status.DELIVERED)
    seen, after = [], 0
    while page := await repo.feed(after, 3):
        seen.extend(page)
        after = page[-1].position
    assert len(seen) == 9
    assert len({e.event_id for e in seen}) == 9
    positions = [e.position for e in seen]
    assert positions == sorted(positions)
    for m in saved:  # each message's events keep their order in the feed
        assert [e.sequence for e in seen if e.message_id == m.id] == sorted(
            e.sequence for e in seen if e.message_id == m.id)
    assert await repo.feed(after, 3) == []


def test_the_feed_survives_a_restart(tmp_path):
    path = tmp_path / "events.db"
    store = SqliteStore(path)
    repository = Repository(store)
    saved = messages(3)
    with store.transaction():
        repository.save(saved)
    with store.transaction():
        first_page = repository.feed(0, 2)
    store.close()
    store = SqliteStore(path)
    repository = Repository(store)
    with store.transaction():
        repository.update_many({saved[0].id: Status.CONFIRMED})
    with store.transaction():
        rest = repository.feed(first_page[-1].position or 0, 10)
    store.close()
    assert [(e.message_id, e.status) for e in first_page + rest] == [
        (saved[0].id, Status.ACCEPTED), (saved[1].id, Status.ACCEPTED),
        (saved[2].id, Status.ACCEPTED), (saved[0].id, Status.CONFIRMED)]


def test_an_older_sqlite_file_gets_the_history_it_implies(tmp_path):
    """Version 3 had no events: each message gets ACCEPTED, and its status if later."""
    import sqlite3

    path = tmp_path / "v3.db"
    db = sqlite3.connect(path)
    from smsproxy.stores.sqlite import schema as sqlite_module

    for step in (1, 2, 3):
        db.executescript(sqlite_module.MIGRATIONS[step])
    db.execute("PRAGMA user_version = 3")
    db.execute("INSERT INTO messages (id, phone_number, content, created_at, status, attempts,"
               " updated_at) VALUES ('a', '1', 'x', 1, 'DELIVERED', 1, 2),"
               " ('b', '1', 'y', 1, 'ACCEPTED', 0, 1)")
    db.commit()
    db.close()
    store = SqliteStore(path)
    with store.transaction():
        a, b = store.events_of("a"), store.events_of("b")
    store.close()
    assert steps(a) == [(1, Status.ACCEPTED, None), (2, Status.DELIVERED, Status.ACCEPTED)]
    assert steps(b) == [(1, Status.ACCEPTED, None)]


def test_postgres_feed_positions_follow_commit_order_not_insert_order(postgres_url):
    """A transaction that inserted first and commits last must not be skipped by a
    reader that has already paged past the events committed meanwhile."""
    slow_store, fast_store, reader = (PostgresStore(postgres_url) for _ in range(3))
    slow_message, fast_message = messages(2)
    inserted = threading.Event()
    release = threading.Event()

    def slow_save() -> None:
        with slow_store.transaction():
            Repository(slow_store).save([slow_message])  # takes its event id first
            inserted.set()
            release.wait(10)

    thread = threading.Thread(target=slow_save)
    thread.start()
    assert inserted.wait(10)
    with fast_store.transaction():
        Repository(fast_store).save([fast_message])
    with reader.transaction():
        early = reader.feed(0, 10)
    release.set()
    thread.join()
    with reader.transaction():
        late = reader.feed(early[-1].position or 0, 10)
    for store in (slow_store, fast_store, reader):
        store.close()
    assert [e.message_id for e in early] == [fast_message.id]
    assert [e.message_id for e in late] == [slow_message.id]


def test_expiry_is_an_event_with_its_callback_on_every_store(queue, clock):
    """An expired message's FAILED step is written as every other step is: its event,
    and a pending callback for the shop (PostgreSQL's used to have none)."""
    message = Message(new_id(), "+4912345678", "hi", created_at=clock.now,
                      callback_url="https://shop.example/cb")
    with queue.transaction():
        queue.insert([message])
    repository = Repository(queue, clock)
    rules = BatchingRules(batch_size=10, max_delay=1.0, max_in_flight=1, message_ttl=3600,
                          status_grace=0)
    clock.now += 3600
    with queue.transaction():
        [[expired]] = repository.expire(rules, 10).values()
        history = queue.events_of(message.id)
        [accepted] = queue.claim_callbacks("me", clock.now, 10, 30.0, 10)
        queue.settle_callback(message.id, 1, "delivered", 1, clock.now, None)
        [failed] = queue.claim_callbacks("me", clock.now, 10, 30.0, 10)
    assert expired == message.id
    assert steps(history) == [(1, Status.ACCEPTED, None), (2, Status.FAILED, Status.ACCEPTED)]
    assert history[1].reason.endswith("no attempt reached it; last error: none recorded")
    assert (accepted.event.sequence, failed.event.sequence) == (1, 2)
    assert failed.event.status is Status.FAILED


def test_postgres_reports_for_one_message_from_two_instances_never_share_a_sequence(
    postgres_url,
):
    first, second = PostgresStore(postgres_url), PostgresStore(postgres_url)
    [message] = messages(1)
    with first.transaction():
        first.insert([message])
    holding = threading.Event()
    release = threading.Event()

    def confirm_slowly() -> None:
        with first.transaction():
            Repository(first).update_many({message.id: Status.CONFIRMED})
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=confirm_slowly)
    thread.start()
    assert holding.wait(10)
    threading.Timer(0.3, release.set).start()  # the second waits for the first's lock
    with second.transaction():
        Repository(second).update_many({message.id: Status.DELIVERED})
    thread.join()
    with second.transaction():
        history = second.events_of(message.id)
    first.close()
    second.close()
    assert steps(history) == [(1, Status.ACCEPTED, None), (2, Status.CONFIRMED, Status.ACCEPTED),
                              (3, Status.DELIVERED, Status.CONFIRMED)]


@pytest.fixture
async def pipeline(start_pipeline):
    return await start_pipeline(batch_size=1)


@pytest.fixture
async def client(pipeline):
    return create_app(pipeline.services).test_client()


async def test_http_history_and_feed(client, pipeline):
    response = await client.post("/sms", data=json.dumps({"phone_number": PHONE,
                                                          "content": "hello"}),
                                 headers={"Content-Type": "application/json"})
    message_id = (await response.get_json())["id"]
    await pipeline.repository.apply_in_order([(message_id, Status.CONFIRMED),
                                              (message_id, Status.DELIVERED)])
    history = await (await client.get(f"/sms/{message_id}/events")).get_json()
    assert [(e["sequence"], e["status"], e["previous_status"]) for e in history["events"]] == [
        (1, "ACCEPTED", None), (2, "CONFIRMED", "ACCEPTED"), (3, "DELIVERED", "CONFIRMED")]
    assert history["events"][0]["at"].endswith("Z")
    page = await (await client.get("/events?limit=2")).get_json()
    assert [e["status"] for e in page["events"]] == ["ACCEPTED", "CONFIRMED"]
    rest = await (await client.get(f"/events?after={page['next']}")).get_json()
    assert [e["status"] for e in rest["events"]] == ["DELIVERED"]
    again = await (await client.get(f"/events?after={rest['next']}")).get_json()
    assert again == {"events": [], "next": rest["next"]}


@pytest.mark.parametrize("path", ["/sms/not-a-uuid/events", "/events?after=x",
                                  "/events?limit=0", "/events?limit=1001", "/events?after=-1"])
async def test_http_refuses_bad_history_and_feed_requests(client, path):
    response = await client.get(path)
    assert response.status_code == 400
    assert "error" in await response.get_json()


def test_postgres_can_serve_the_feed_while_a_store_is_fresh(postgres_url):
    store = PostgresStore(postgres_url)
    with store.transaction():
        assert store.feed(0, 10) == []
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT count(*) FROM smsproxy_events").fetchone() == (0,)
    store.close()


# --- finding messages --------------------------------------------------------------------

async def test_support_staff_find_messages_by_status_newest_first_page_by_page(repo):
    saved = [Message(i, PHONE, "x", 1_764_180_000.0 + n) for n, i in enumerate(new_ids(30))]
    await repo.save(*saved)
    failed = saved[::3]
    await repo.update_many({m.id: Status.FAILED for m in failed}, reason="expired")
    pages, before = [], None
    while True:
        page = await repo.find(MessageQuery(Status.FAILED, before=before, limit=4))
        pages.append(page)
        if len(page) < 4:
            break
        before = (page[-1].accepted_at, page[-1].id)
    found = [m for page in pages for m in page]
    assert [m.id for m in found] == [m.id for m in reversed(failed)]
    assert {(m.status, m.reason) for m in found} == {(Status.FAILED, "expired")}
    window = await repo.find(MessageQuery(Status.ACCEPTED, since=1_764_180_010.0,
                                          until=1_764_180_020.0))
    assert [m.accepted_at for m in window] == [
        1_764_180_000.0 + n for n in range(19, 9, -1) if n % 3]
    anything = await repo.find(MessageQuery(limit=5))
    assert [m.id for m in anything] == [m.id for m in reversed(saved[-5:])]


def test_finding_messages_reads_the_status_index(tmp_path, postgres_url):
    sqlite = SqliteStore(tmp_path / "find.db")
    with sqlite.transaction():
        plan = sqlite._db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE status = 'FAILED'"
            " AND created_at >= 0 ORDER BY created_at DESC, id DESC LIMIT 100").fetchall()
    sqlite.close()
    # The index gives the order by time; only a tie in time is sorted (by id), never
    # the whole status.
    assert [row[3] for row in plan] == [
        "SEARCH messages USING INDEX messages_by_status (status=? AND created_at>?)",
        "USE TEMP B-TREE FOR RIGHT PART OF ORDER BY"]
    postgres = PostgresStore(postgres_url)
    with postgres.transaction():
        postgres._conn.execute("SET LOCAL enable_seqscan = off")  # an empty table
        lines = postgres._conn.execute(
            "EXPLAIN SELECT id FROM smsproxy_messages WHERE status = 'FAILED'"
            " ORDER BY created_at DESC, id DESC LIMIT 100").fetchall()
    postgres.close()
    assert "smsproxy_messages_by_status" in str(lines)
    assert "Sort" not in str(lines)


@pytest.mark.parametrize("path", ["/sms?status=LOST", "/sms?since=yesterday",
                                  "/sms?since=2026-11-28T10:00:00", "/sms?limit=0",
                                  "/sms?cursor=abc", "/sms?sort=asc"])
async def test_http_refuses_bad_searches(client, path):
    response = await client.get(path)
    assert response.status_code == 400
    assert "error" in await response.get_json()


async def test_http_search_pages_with_a_cursor(client, pipeline):
    ids = []
    for n in range(3):
        response = await client.post("/sms", data=json.dumps({"phone_number": PHONE,
                                                              "content": f"m{n}"}),
                                     headers={"Content-Type": "application/json"})
        ids.append((await response.get_json())["id"])
    first = await (await client.get("/sms?status=ACCEPTED&limit=2")).get_json()
    assert [m["id"] for m in first["messages"]] == ids[:0:-1]
    rest = await (await client.get(f"/sms?status=ACCEPTED&limit=2&cursor={first['next']}")
                  ).get_json()
    assert rest == {"messages": [rest["messages"][0]], "next": None}
    assert rest["messages"][0]["id"] == ids[0]
    assert rest["messages"][0]["accepted_at"].endswith("Z")
