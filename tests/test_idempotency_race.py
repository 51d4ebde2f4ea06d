"""Two instances given one Idempotency-Key at the same moment (a client's retry that a
load balancer sends to the other instance while the first is committing): the second
waits for the first's commit and answers its ids, or a 422 for another body; it stores
nothing of its own, and the rest of its group commits as usual."""

import threading

import pytest

from smsproxy.errors import IdempotencyConflict
from smsproxy.models import Idempotency, Message, new_id
from smsproxy.repository import Repository
from smsproxy.stores.postgres import PostgresStore

PHONE = "+4915112345678"
T0 = 1_764_180_000.0


def message(content: str) -> Message:
    return Message(new_id(), PHONE, content, T0)


@pytest.mark.parametrize(("second_fingerprint", "replayed"), [("same", True),
                                                              ("other", False)])
def test_the_second_of_two_racing_saves_answers_the_first_s_ids(
        postgres_url, second_fingerprint, replayed):
    first_store, second_store = PostgresStore(postgres_url), PostgresStore(postgres_url)
    first, second = Repository(first_store), Repository(second_store)
    key = "retry-1"
    first_message, second_message, bystander = message("a"), message("a"), message("b")
    holding = threading.Event()
    release = threading.Event()
    outcome: dict[str, object] = {}

    def save_first() -> None:
        with first_store.transaction():
            outcome["first"] = first.save([first_message], Idempotency("c", key, "same"), T0)
            holding.set()
            release.wait(10)  # its commit comes only once the second is waiting on it

    def save_second() -> None:
        with second_store.transaction():
            outcome["bystander"] = second.save([bystander])  # shares the transaction
            try:
                outcome["second"] = second.save(
                    [second_message], Idempotency("c", key, second_fingerprint), T0)
            except IdempotencyConflict as error:
                outcome["second"] = error

    one = threading.Thread(target=save_first)
    one.start()
    assert holding.wait(10)
    two = threading.Thread(target=save_second)
    two.start()
    two.join(0.5)
    assert two.is_alive()  # waiting for the first to commit the key
    release.set()
    one.join(10)
    two.join(10)
    try:
        if replayed:
            assert outcome["second"].message_ids == (first_message.id,)  # type: ignore[attr-defined]
            assert outcome["second"].replayed  # type: ignore[attr-defined]
        else:
            assert isinstance(outcome["second"], IdempotencyConflict)
        with second_store.transaction():
            assert second_store.lookup(second_message.id) is None  # stored nothing of its own
            assert second_store.lookup(bystander.id) is not None  # the rest of the group went in
            assert second_store.lookup(first_message.id) is not None
    finally:
        first_store.close()
        second_store.close()
