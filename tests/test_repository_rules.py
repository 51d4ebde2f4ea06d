"""The repository rules on their own, without the actor: what each refusal names."""

import pytest

from smsproxy.errors import FinalStatusLocked, IdempotencyConflict, UnknownMessage
from smsproxy.models import Idempotency, Message, Saved
from smsproxy.repository import Repository
from smsproxy.statuses import Status
from smsproxy.stores import MemoryStore


def message(message_id: str) -> Message:
    return Message(message_id, "+4912345678", "hello", created_at=1_764_180_000.0)


@pytest.fixture
def repository() -> Repository:
    return Repository(MemoryStore())


def test_a_first_save_is_not_a_replay(repository):
    saved = repository.save([message("a")])
    assert saved == Saved(("a",), replayed=False)
    assert saved.replayed is False
    [together] = repository.save_all([([message("b"), message("c")], None, 0.0, None)])
    assert together == Saved(("b", "c"), replayed=False)
    assert isinstance(together, Saved) and together.replayed is False


def test_a_key_reused_for_another_request_names_the_key(repository):
    repository.save([message("a")], Idempotency("shop", "order-7", "digest-1"), at=1.0)
    with pytest.raises(IdempotencyConflict) as raised:
        repository.save([message("b")], Idempotency("shop", "order-7", "digest-2"), at=2.0)
    assert raised.value.message_id == "order-7"
    assert "order-7" in str(raised.value)


def test_an_update_of_an_unknown_id_names_it(repository):
    [(message_id, status, error)] = repository.apply_in_order([("ghost", Status.DELIVERED)])
    assert (message_id, status) == ("ghost", Status.DELIVERED)
    assert isinstance(error, UnknownMessage)
    assert error.message_id == "ghost"


def test_an_update_of_a_final_message_names_it_and_its_status(repository):
    repository.save([message("a")])
    repository.apply_in_order([("a", Status.FAILED)])
    [(_, _, error)] = repository.apply_in_order([("a", Status.DELIVERED)])
    assert isinstance(error, FinalStatusLocked)
    assert (error.message_id, error.status) == ("a", Status.FAILED)


def test_a_final_status_reached_earlier_in_the_same_request_is_named(repository):
    repository.save([message("a")])
    refused = repository.apply_in_order([("a", Status.DELIVERED), ("a", Status.CONFIRMED)])
    [(message_id, status, error)] = refused
    assert (message_id, status) == ("a", Status.CONFIRMED)
    assert isinstance(error, FinalStatusLocked)
    assert (error.message_id, error.status) == ("a", Status.DELIVERED)
    assert repository.get("a").status is Status.DELIVERED
