"""The repository rules, written once for every store backend.

- ``save`` stores a message as ACCEPTED; saving an id that exists is an error.
- ``get`` answers NOT_FOUND for an unknown id (not an error).
- ``update`` of an unknown id, or of a message in a final status, is an error and
  changes nothing; every status step applied is an event in the message's history,
  written in the same transaction (an outbox).
- ``save`` with an idempotency key seen before stores nothing and answers with the
  ids of the first request; the key and the messages are stored in one transaction.
- a provider's report is for a message only when that provider took it (or may have
  it): ``attribute`` resolves the provider's own ids and refuses the others'.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from smsproxy.dispatching import BatchingRules, expiry_reason
from smsproxy.errors import (
    DuplicateMessage,
    FinalStatusLocked,
    IdempotencyConflict,
    RepositoryError,
    UnknownMessage,
)
from smsproxy.models import (
    Event,
    Idempotency,
    ListedMessage,
    Message,
    MessageQuery,
    Saved,
    StatusRecord,
)
from smsproxy.statuses import FINAL_STATUSES, Status
from smsproxy.stores import MessageStore

__all__ = ["Attributed", "Repository", "Submission"]

Submission = tuple[Sequence[Message], Idempotency | None, float]
"""What ``save`` takes: the messages, their idempotency key if any, and the time."""


@dataclass(frozen=True, slots=True)
class Attributed:
    """A provider's reports, sorted: what it may report on, and what it may not."""

    accepted: dict[str, str]
    """The report's key (our id, or the provider's own) -> our message id."""
    unknown: tuple[str, ...] = ()
    """Provider ids that name no message this provider took."""
    foreign: tuple[str, ...] = ()
    """Keys (our ids, or the provider's) of messages another provider took."""


class _KeyTaken(Exception):
    """Another writer remembered the same idempotency key first."""


class Repository:
    def __init__(self, store: MessageStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    def save(
        self,
        messages: Sequence[Message],
        idempotency: Idempotency | None = None,
        at: float = 0.0,
    ) -> Saved:
        """Save all of them, or none when any id exists already.

        With an idempotency key seen before, nothing is saved and the first
        request's ids come back; a key seen with another request is a conflict.
        """
        message_ids = tuple(m.id for m in messages)
        if idempotency is None:
            self.store.insert(messages)  # refuses ids that exist or repeat, storing none
            return Saved(message_ids, replayed=False)
        found = self.store.find_idempotency(idempotency.scope, idempotency.key)
        if found is None:
            try:
                with self.store.savepoint():
                    self.store.insert(messages)
                    if not self.store.remember_idempotency(idempotency, message_ids, at):
                        raise _KeyTaken()  # another instance, at the same moment: undo
                return Saved(message_ids, replayed=False)
            except _KeyTaken:
                found = self.store.find_idempotency(idempotency.scope, idempotency.key)
                assert found is not None, "a key another writer committed is there to read"
        fingerprint, first_ids = found
        if fingerprint != idempotency.fingerprint:
            raise IdempotencyConflict(idempotency.key)
        return Saved(first_ids, replayed=True)

    def save_all(self, submissions: Sequence[Submission]) -> list[Saved | RepositoryError]:
        """``save`` for many submissions at once, each all or none on its own.

        The ones without an idempotency key reach the store as one insert. Should
        any of their ids exist already, they are saved one by one instead, so that
        only the submissions holding such ids fail.
        """
        results: dict[int, Saved | RepositoryError] = {}
        plain: list[int] = []
        for i, submission in enumerate(submissions):
            if submission[1] is None:
                plain.append(i)
            else:
                results[i] = self._try_save(submission)
        if plain:
            try:
                self.store.insert([m for i in plain for m in submissions[i][0]])
            except DuplicateMessage:
                results.update((i, self._try_save(submissions[i])) for i in plain)
            else:
                results.update(
                    (i, Saved(tuple(m.id for m in submissions[i][0]), replayed=False))
                    for i in plain
                )
        return [results[i] for i in range(len(submissions))]

    def _try_save(self, submission: Submission) -> Saved | RepositoryError:
        try:
            return self.save(*submission)
        except RepositoryError as error:
            return error

    def get(self, message_id: str) -> StatusRecord:
        record = self.store.lookup(message_id)
        return record if record is not None else StatusRecord(message_id, Status.NOT_FOUND)

    def attribute(self, provider: str, ids: Sequence[str], refs: Sequence[str]) -> Attributed:
        """Which of a provider's reports are its to make. ``ids`` name our messages,
        ``refs`` the provider's own ids (as its ``Sent.refs`` gave them). A message no
        provider is recorded for (not yet sent, or sent with ``--provider``) may be
        reported on; an unknown id is the updater's to refuse."""
        found = self.store.by_refs(provider, refs) if refs else {}
        accepted = {**{i: i for i in ids}, **found}
        owners = self.store.owners(accepted.values())
        foreign = tuple(k for k, i in accepted.items() if owners.get(i, provider) != provider)
        return Attributed({k: i for k, i in accepted.items() if k not in foreign},
                          tuple(r for r in refs if r not in found), foreign)

    def update_many(
        self, updates: Mapping[str, Status], reason: str | None = None
    ) -> dict[str, RepositoryError]:
        """Apply every update that the rules allow; return the refused ones by id."""
        refused = self.apply_in_order(list(updates.items()), reason)
        return {message_id: error for message_id, _, error in refused}

    def apply_in_order(
        self, updates: Sequence[tuple[str, Status]], reason: str | None = None
    ) -> list[tuple[str, Status, RepositoryError]]:
        """Apply updates one after the other, as if each were its own ``update``.

        An id may come more than once (CONFIRMED, then DELIVERED): each update is
        checked against the status the earlier ones left, and each step applied is
        an event, even when the row is written once with the last of them. A
        status the message has already is no step (and no error). Returns the
        refused updates, in order.
        """
        now = self._clock()
        state = self.store.current(dict.fromkeys(message_id for message_id, _ in updates))
        refused: list[tuple[str, Status, RepositoryError]] = []
        steps: list[tuple[str, int, Status, Status]] = []
        for message_id, status in updates:
            if message_id not in state:
                refused.append((message_id, status, UnknownMessage(message_id)))
                continue
            stored, sequence = state[message_id]
            if stored in FINAL_STATUSES:
                refused.append((message_id, status, FinalStatusLocked(message_id, stored)))
            elif status is not stored:
                steps.append((message_id, sequence + 1, status, stored))
                state[message_id] = (status, sequence + 1)
        if steps:
            events = [Event(message_id, sequence, status, previous, reason, now)
                      for message_id, sequence, status, previous in steps]
            last = {event.message_id: event.status for event in events}
            # The rows are held since current(): nothing can have made them final.
            self.store.set_statuses_unless(
                [(message_id, status, reason) for message_id, status in last.items()],
                FINAL_STATUSES)
            self.store.append_events(events)
        return refused

    def find(self, query: MessageQuery) -> list[ListedMessage]:
        """Newest first. Without a status, the newest of each status, merged: every
        read is a range of the (status, time) index, never a scan of the table."""
        statuses = [query.status] if query.status is not None else list(Status)
        found = [m for status in statuses if status is not Status.NOT_FOUND
                 for m in self.store.find(query, status)]
        found.sort(key=lambda m: (m.accepted_at, m.id), reverse=True)
        return found[: query.limit]

    def history(self, message_id: str) -> list[Event]:
        return self.store.events_of(message_id)

    def feed(self, after: int, limit: int) -> list[Event]:
        return self.store.feed(after, limit)

    def accepted(self) -> list[Message]:
        return self.store.accepted()

    def expire(self, rules: BatchingRules, limit: int) -> dict[str, list[str]]:
        """Fail up to ``limit`` messages that lapsed in the queue (their TTL or validity,
        and the grace when an attempt may have reached the provider): each an ordinary
        FAILED step, with its event and callback, worded by ``expiry_reason``. The
        failed ids by reason."""
        by_reason: dict[str, list[str]] = {}
        for lapsed in self.store.lapsed(rules.message_ttl, rules.status_grace, limit):
            by_reason.setdefault(expiry_reason(lapsed, rules), []).append(lapsed.message_id)
        for reason, ids in by_reason.items():
            # Held since lapsed() and still ACCEPTED: no update is refused.
            self.apply_in_order([(i, Status.FAILED) for i in ids], reason)
        return by_reason

    def check(self) -> None:
        self.store.check()
