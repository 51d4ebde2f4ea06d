"""The memory store: dictionaries in the process, for tests and demos.

A transaction is all or none here too: every change is journalled with the step that
takes it back, so that a request whose work raises halfway leaves nothing behind
(the repository actor then serves the rest of its group without it).
"""

import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from smsproxy.callbacks import origin
from smsproxy.errors import DuplicateMessage
from smsproxy.models import (
    Event,
    Idempotency,
    ListedMessage,
    Message,
    MessageQuery,
    PendingCallback,
    StatusRecord,
)
from smsproxy.statuses import Status
from smsproxy.stores.protocol import PURGEABLE, CallbackOutcome, StatusChange

__all__ = ["MemoryStore"]

_PURGEABLE = frozenset(Status(status) for status in PURGEABLE)


def _matches(query: MessageQuery, accepted_at: float, message_id: str) -> bool:
    return ((query.since is None or accepted_at >= query.since)
            and (query.until is None or accepted_at < query.until)
            and (query.before is None or (accepted_at, message_id) < query.before))


@dataclass(frozen=True, slots=True)
class _Callback:
    event: Event
    url: str
    due: float
    attempts: int = 0
    claim_until: float = -1.0


class MemoryStore:
    """Keeps everything in dictionaries; fast, and gone when the process ends."""

    blocking = False
    notices: tuple[str, ...] = ()
    concurrent = False

    def __init__(self) -> None:
        self._messages: dict[str, Message] = {}
        self._records: dict[str, StatusRecord] = {}
        self._keys: dict[tuple[str, str], tuple[str, tuple[str, ...], float]] = {}
        self._events: dict[int, Event] = {}  # by position
        self._last_position = 0
        self._updated: dict[str, float] = {}
        self._history: dict[str, list[Event]] = {}
        self._callbacks: dict[tuple[str, int], _Callback] = {}
        self._scheduled: set[str] = set()
        self._journal: list[Callable[[], None]] = []

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # The repository actor is the only caller and never interleaves two groups, so
        # there is nothing to isolate from; only the journal, to take a failure back.
        self._journal.clear()
        try:
            yield
        except BaseException:
            while self._journal:
                self._journal.pop()()
            raise
        finally:
            self._journal.clear()

    def _set(self, mapping: MutableMapping[Any, Any], key: Hashable, value: object) -> None:
        if key in mapping:
            old = mapping[key]
            self._journal.append(lambda: mapping.__setitem__(key, old))
        else:
            self._journal.append(lambda: mapping.pop(key, None))
        mapping[key] = value

    def _delete(self, mapping: MutableMapping[Any, Any], key: Hashable) -> None:
        if key in mapping:
            old = mapping.pop(key)
            self._journal.append(lambda: mapping.__setitem__(key, old))

    def _schedule(self, message_id: str, waiting: bool) -> None:
        if waiting and message_id not in self._scheduled:
            self._scheduled.add(message_id)
            self._journal.append(lambda: self._scheduled.discard(message_id))
        elif not waiting and message_id in self._scheduled:
            self._scheduled.discard(message_id)
            self._journal.append(lambda: self._scheduled.add(message_id))

    def insert(self, messages: Sequence[Message]) -> None:
        seen: set[str] = set()
        for message in messages:
            if message.id in self._records or message.id in seen:
                raise DuplicateMessage(message.id)
            seen.add(message.id)
        for message in messages:
            self._set(self._messages, message.id, message)
            self._set(self._records, message.id, StatusRecord(
                message.id, Status.ACCEPTED, deliver_by=message.deliver_by,
                valid_until=message.valid_until, send_at=message.send_at))
            if message.send_at is not None:
                self._schedule(message.id, True)
            self._set(self._updated, message.id, message.created_at)
        self.append_events(Event.accepted(messages))

    def lookup(self, message_id: str) -> StatusRecord | None:
        return self._records.get(message_id)

    def find(self, query: MessageQuery, status: Status) -> list[ListedMessage]:
        found = []
        for message_id, record in self._records.items():
            message = self._messages[message_id]
            if record.status is status and _matches(query, message.created_at, message_id):
                found.append(ListedMessage(message_id, status, record.reason,
                                           message.created_at, self._updated[message_id]))
        found.sort(key=lambda m: (m.accepted_at, m.id), reverse=True)
        return found[: query.limit]

    def statuses(self, message_ids: Iterable[str]) -> dict[str, Status]:
        records = self._records
        return {i: records[i].status for i in message_ids if i in records}

    def set_statuses_unless(
        self, changes: Sequence[StatusChange], protected: frozenset[Status]
    ) -> set[str]:
        changed = set()
        for message_id, status, reason in changes:
            record = self._records.get(message_id)
            if record is not None and record.status not in protected:
                self._set(self._records, message_id,
                          replace(record, status=status, reason=reason))
                self._set(self._updated, message_id, time.time())
                changed.add(message_id)
        return changed

    def current(self, message_ids: Iterable[str]) -> dict[str, tuple[Status, int]]:
        records, history = self._records, self._history
        return {i: (records[i].status, history[i][-1].sequence)
                for i in message_ids if i in records}

    def append_events(self, events: Sequence[Event]) -> None:
        last = self._last_position
        self._journal.append(lambda: setattr(self, "_last_position", last))
        for event in events:
            self._last_position += 1
            positioned = replace(event, position=self._last_position)
            self._set(self._events, self._last_position, positioned)
            self._set(self._history, event.message_id,
                      [*self._history.get(event.message_id, ()), positioned])
            url = self._messages[event.message_id].callback_url
            if url is not None:
                self._set(self._callbacks, (event.message_id, event.sequence),
                          _Callback(positioned, url, due=event.at))

    def claim_callbacks(
        self, instance: str, now: float, limit: int, lease: float, per_origin: int,
        skip_origins: Sequence[str] = (),
    ) -> list[PendingCallback]:
        first_pending: dict[str, _Callback] = {}
        for callback in self._callbacks.values():
            first = first_pending.get(callback.event.message_id)
            if first is None or callback.event.sequence < first.event.sequence:
                first_pending[callback.event.message_id] = callback
        skip = set(skip_origins)
        taken: Counter[str] = Counter()
        due: list[_Callback] = []
        for callback in sorted(first_pending.values(), key=lambda c: c.due):
            receiver = origin(callback.url)
            if (callback.due <= now and callback.claim_until < now and receiver not in skip
                    and taken[receiver] < per_origin and len(due) < limit):
                taken[receiver] += 1
                due.append(callback)
        for callback in due:
            self._set(self._callbacks, (callback.event.message_id, callback.event.sequence),
                      replace(callback, claim_until=now + lease))
        return [PendingCallback(c.event, c.url, c.attempts) for c in due]

    def settle_callback(
        self, message_id: str, sequence: int, outcome: CallbackOutcome, attempts: int,
        retry_at: float, error: str | None,
    ) -> None:
        key = (message_id, sequence)
        if outcome != "retry":
            self._delete(self._callbacks, key)
        elif key in self._callbacks:
            self._set(self._callbacks, key, replace(self._callbacks[key], attempts=attempts,
                                                    due=retry_at, claim_until=-1.0))

    def callback_backlog(self) -> tuple[int, float | None]:
        oldest = min((c.event.at for c in self._callbacks.values()), default=None)
        return len(self._callbacks), oldest

    def events_of(self, message_id: str) -> list[Event]:
        return list(self._history.get(message_id, ()))

    def feed(self, after: int, limit: int) -> list[Event]:
        found: list[Event] = []
        for position in range(max(0, after) + 1, self._last_position + 1):
            if len(found) == limit:
                break
            if position in self._events:
                found.append(self._events[position])
        return found

    def add_attempts(self, message_ids: Sequence[str], attempts: int) -> None:
        for message_id in message_ids:
            message = self._messages.get(message_id)
            if message is not None:
                self._set(self._messages, message_id,
                          replace(message, attempts=message.attempts + attempts))

    def accepted(self) -> list[Message]:
        return [self._messages[i] for i, r in self._records.items()
                if r.status is Status.ACCEPTED and i not in self._scheduled]

    def release_scheduled(self, now: float, limit: int) -> tuple[list[Message], float | None]:
        waiting = sorted((self._messages[i] for i in self._scheduled), key=lambda m: m.ready_at)
        due = [m for m in waiting if m.ready_at <= now][:limit]
        for message in due:
            self._schedule(message.id, False)
        later = [m.ready_at for m in waiting if m.id in self._scheduled]
        return due, min(later, default=None)

    def find_idempotency(self, scope: str, key: str) -> tuple[str, tuple[str, ...]] | None:
        found = self._keys.get((scope, key))
        return (found[0], found[1]) if found else None

    def remember_idempotency(
        self, idempotency: Idempotency, message_ids: Sequence[str], at: float
    ) -> bool:
        key = (idempotency.scope, idempotency.key)
        if key in self._keys:
            return False
        self._set(self._keys, key, (idempotency.fingerprint, tuple(message_ids), at))
        return True

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        # Nothing to take back: insert checks everything before it writes, and with one
        # writer no other can take a key between find_idempotency and remember.
        yield

    def forget_idempotency(self, before: float, limit: int) -> int:
        old = [k for k, (_, _, at) in self._keys.items() if at < before][:limit]
        for k in old:
            self._delete(self._keys, k)
        return len(old)

    def purge(self, before: float, limit: int) -> int:
        unsettled = {message_id for message_id, _ in self._callbacks}
        doomed = [i for i, record in self._records.items()
                  if record.status in _PURGEABLE and self._messages[i].created_at < before
                  and i not in unsettled][:limit]
        for message_id in doomed:
            for event in self._history.get(message_id, ()):
                if event.position is not None:  # always: stored events are positioned
                    self._delete(self._events, event.position)
            for mapping in (self._history, self._messages, self._records, self._updated):
                self._delete(mapping, message_id)
        return len(doomed)

    def check(self) -> None:
        pass

    def close(self) -> None:
        pass
