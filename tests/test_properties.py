"""Property tests of the status rules: for any sequence of saves and updates, on both
backends, final statuses never change and no message disappears."""

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from smsproxy.errors import DuplicateMessage, FinalStatusLocked, UnknownMessage
from smsproxy.models import Message, new_id
from smsproxy.repository import Repository
from smsproxy.statuses import FINAL_STATUSES, Status
from smsproxy.stores import MemoryStore
from smsproxy.stores.sqlite import SqliteStore

UPDATES = st.sampled_from([Status.CONFIRMED, Status.FAILED, Status.DELIVERED])


class StatusRules(RuleBasedStateMachine):
    make_store = staticmethod(MemoryStore)
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.repository = Repository(self.make_store())
        self.model: dict[str, Status] = {}

    @initialize(target=ids)
    def first_messages(self) -> MultipleResults[str]:
        # Rules that take ids never wait on an empty bundle (which hypothesis
        # counts as filtered inputs, and can fail its health check over).
        return multiple(*(self.save_new() for _ in range(3)))

    @rule(target=ids)
    def save_new(self) -> str:
        message_id = new_id()
        with self.repository.store.transaction():
            self.repository.save([Message(message_id, "+4912345", "hi", 0.0)])
        self.model[message_id] = Status.ACCEPTED
        return message_id

    @rule(message_id=ids)
    def save_again(self, message_id: str) -> None:
        with pytest.raises(DuplicateMessage), self.repository.store.transaction():
            self.repository.save([Message(message_id, "+4912345", "again", 0.0)])

    @rule(message_id=ids, status=UPDATES)
    def update(self, message_id: str, status: Status) -> None:
        before = self.model[message_id]
        with self.repository.store.transaction():
            refused = self.repository.update_many({message_id: status})
        if before in FINAL_STATUSES:
            assert isinstance(refused[message_id], FinalStatusLocked)
        else:
            assert refused == {}
            self.model[message_id] = status

    @rule(status=UPDATES)
    def update_unknown(self, status: Status) -> None:
        stranger = new_id()
        with self.repository.store.transaction():
            refused = self.repository.update_many({stranger: status})
        assert isinstance(refused[stranger], UnknownMessage)
        assert self.repository.get(stranger).status is Status.NOT_FOUND

    @rule(message_ids=st.lists(ids, min_size=1, max_size=5, unique=True), status=UPDATES)
    def update_many(self, message_ids: list[str], status: Status) -> None:
        with self.repository.store.transaction():
            refused = self.repository.update_many(dict.fromkeys(message_ids, status))
        for message_id in message_ids:
            if self.model[message_id] in FINAL_STATUSES:
                assert message_id in refused
            else:
                assert message_id not in refused
                self.model[message_id] = status

    @rule(steps=st.lists(st.tuples(ids, UPDATES), min_size=1, max_size=8))
    def apply_in_order(self, steps: list[tuple[str, Status]]) -> None:
        """An ordered list, ids repeating: each step judged after the ones before it."""
        expected_refused = []
        for message_id, status in steps:
            if self.model[message_id] in FINAL_STATUSES:
                expected_refused.append((message_id, status))
            else:
                self.model[message_id] = status
        with self.repository.store.transaction():
            refused = self.repository.apply_in_order(steps)
        assert [(i, s) for i, s, _ in refused] == expected_refused
        assert all(isinstance(error, FinalStatusLocked) for _, _, error in refused)

    @invariant()
    def store_matches_the_model(self) -> None:
        for message_id, status in self.model.items():
            assert self.repository.get(message_id).status is status

    @invariant()
    def waiting_messages_are_exactly_the_accepted_ones(self) -> None:
        waiting = {m.id for m in self.repository.accepted()}
        assert waiting == {i for i, s in self.model.items() if s is Status.ACCEPTED}


class SqliteStatusRules(StatusRules):
    make_store = staticmethod(lambda: SqliteStore(":memory:"))


TestMemoryStatusRules = StatusRules.TestCase
TestMemoryStatusRules.settings = settings(max_examples=200, stateful_step_count=30,
                                          deadline=None)
TestSqliteStatusRules = SqliteStatusRules.TestCase
TestSqliteStatusRules.settings = settings(max_examples=100, stateful_step_count=30,
                                          deadline=None)
