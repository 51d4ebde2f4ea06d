"""A STOP on one instance while another is saving a message to that number (one
PostgreSQL): the message is never left waiting to be sent. Either the save sees the
number on the list (422), or the STOP sees the saved message and fails it."""

import threading

from smsproxy.compliance import OPTED_OUT_REASON, Suppression
from smsproxy.models import Message, new_id
from smsproxy.repository import Repository
from smsproxy.statuses import Status
from smsproxy.stores import PostgresStore

BOB = "+4915112345672"


def test_a_stop_waits_for_a_save_under_way_and_fails_its_message(postgres_url):
    saving, stopping = PostgresStore(postgres_url), PostgresStore(postgres_url)
    message = Message(new_id(), BOB, "hello", created_at=1_765_000_000.0)
    checked, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def save() -> None:
        with saving.transaction():
            Repository(saving).save([message])  # the list is checked: BOB is not on it
            checked.set()
            release.wait(10)  # ... and the transaction is still open

    def stop() -> None:
        with stopping.transaction():
            outcome["stop"] = Repository(stopping).suppress(
                Suppression(BOB, "replied STOP", "fastsmsing", 1_765_000_001.0))

    saver = threading.Thread(target=save)
    saver.start()
    assert checked.wait(10)
    stopper = threading.Thread(target=stop)
    stopper.start()
    stopper.join(1.0)
    assert stopper.is_alive(), "the STOP must wait for the save under way"
    release.set()
    saver.join(10)
    stopper.join(10)
    assert outcome["stop"] == (True, [message.id])
    with saving.transaction():
        record = Repository(saving).get(message.id)
    assert (record.status, record.reason) == (Status.FAILED, OPTED_OUT_REASON)
    saving.close()
    stopping.close()
