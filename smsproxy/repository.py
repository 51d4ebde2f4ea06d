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
- ``save`` to a number on the suppression list stores nothing (``RecipientOptedOut``,
  naming every such message); past its key's daily quota, nothing either
  (``QuotaExceeded``); a replay of an idempotency key is neither checked nor counted.
- a number put on the list fails every message to it that still waits, unsent
  (``OPTED_OUT_REASON``); a reply that is an opt-out keyword puts its sender there,
  an opt-in keyword takes it off.
- a key (tenant) reads its own messages only: another key's message is NOT_FOUND.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from smsproxy.compliance import (
    OPTED_OUT_REASON,
    Inbound,
    Keyword,
    Quota,
    Suppression,
    keyword_of,
    seconds_to_midnight,
    spoken,
    utc_day,
)
from smsproxy.dispatching import BatchingRules, expiry_reason
from smsproxy.errors import (
    DuplicateMessage,
    FinalStatusLocked,
    IdempotencyConflict,
    QuotaExceeded,
    RecipientOptedOut,
    RepositoryError,
    UnknownMessage,
)
from smsproxy.models import (
    CallbackState,
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

Submission = tuple[Sequence[Message], Idempotency | None, float, Quota | None]
"""What ``save`` takes: the messages, their idempotency key if any, the time, and the
quota of the key that sends them if it has one."""


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
        quota: Quota | None = None,
    ) -> Saved:
        """Save all of them, or none when any id exists already, any number is
        suppressed, or the quota has not room for them all.

        With an idempotency key seen before, nothing is saved and the first
        request's ids come back; a key seen with another request is a conflict.
        """
        message_ids = tuple(m.id for m in messages)
        if idempotency is None:
            self._refuse_suppressed(messages)
            if quota is None:
                self.store.insert(messages)  # refuses ids that exist or repeat, storing none
            else:
                with self.store.savepoint():  # a refused insert gives the quota back
                    self._take_quota(quota, len(messages), at)
                    self.store.insert(messages)
            return Saved(message_ids, replayed=False)
        found = self.store.find_idempotency(idempotency.scope, idempotency.key)
        if found is None:
            self._refuse_suppressed(messages)
            try:
                with self.store.savepoint():
                    if quota is not None:
                        self._take_quota(quota, len(messages), at)
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

    def _refuse_suppressed(self, messages: Sequence[Message]) -> None:
        suppressed = self.store.suppressed({m.phone_number for m in messages})
        if suppressed:
            raise _opted_out(messages, suppressed)

    def _take_quota(self, quota: Quota, count: int, at: float) -> None:
        day = utc_day(at)
        if self.store.take_quota(quota.tenant, day, count, quota.limit) is None:
            raise QuotaExceeded(quota.tenant, quota.limit,
                                self.store.quota_used(quota.tenant, day),
                                seconds_to_midnight(at))

    def save_all(self, submissions: Sequence[Submission]) -> list[Saved | RepositoryError]:
        """``save`` for many submissions at once, each all or none on its own.

        The ones without an idempotency key or a quota reach the store as one
        insert, after one look at the suppression list for all their numbers. Should
        any of their ids exist already, they are saved one by one instead, so that
        only the submissions holding such ids fail.
        """
        results: dict[int, Saved | RepositoryError] = {}
        plain: list[int] = []
        for i, submission in enumerate(submissions):
            if submission[1] is None and submission[3] is None:
                plain.append(i)
            else:
                results[i] = self._try_save(submission)
        suppressed = self.store.suppressed(
            {m.phone_number for i in plain for m in submissions[i][0]}) if plain else set()
        if suppressed:
            for i in plain:
                if any(m.phone_number in suppressed for m in submissions[i][0]):
                    results[i] = _opted_out(submissions[i][0], suppressed)
            plain = [i for i in plain if i not in results]
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

    def get(self, message_id: str, viewer: str | None = None) -> StatusRecord:
        """The message's status; NOT_FOUND for an unknown id, and for another key's
        message when ``viewer`` names a key (None: every key's messages are seen)."""
        record = self.store.lookup(message_id)
        if record is None or (viewer is not None and record.tenant != viewer):
            return StatusRecord(message_id, Status.NOT_FOUND)
        return record

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

    def history(self, message_id: str, viewer: str | None = None) -> list[Event]:
        """The message's events, oldest first; none when ``get`` would be NOT_FOUND."""
        if viewer is not None and self.get(message_id, viewer).status is Status.NOT_FOUND:
            return []
        return self.store.events_of(message_id)

    def callbacks(self, message_id: str, viewer: str | None = None) -> list[CallbackState]:
        """Where each of the message's callbacks stands; none when ``get`` would be
        NOT_FOUND."""
        if viewer is not None and self.get(message_id, viewer).status is Status.NOT_FOUND:
            return []
        return self.store.callbacks_of(message_id)

    def feed(self, after: int, limit: int, viewer: str | None = None) -> list[Event]:
        return self.store.feed(after, limit, viewer)

    def suppress(self, entry: Suppression) -> tuple[bool, list[str]]:
        """Put a number on the list, and fail what still waits for it, unsent: whether
        it is new there, and the failed ids."""
        new = self.store.suppress(entry)
        waiting = self.store.unsent_to(entry.number)
        # Held since current(), inside apply_in_order: still ACCEPTED, none refused.
        self.apply_in_order([(i, Status.FAILED) for i in waiting], OPTED_OUT_REASON)
        return new, waiting

    def receive(self, inbound: Inbound, callback_url: str | None = None
                ) -> tuple[Inbound, list[str]]:
        """Store a reply (with its callback to ``callback_url``, if any); a keyword
        changes the list. The stored reply (with its id, position and keyword), and
        the ids an opt-out failed."""
        keyword, now = keyword_of(inbound.content), self._clock()
        stored = self.store.store_inbound(replace(inbound, keyword=keyword), callback_url, now)
        failed: list[str] = []
        if keyword is Keyword.OPT_OUT:
            _, failed = self.suppress(Suppression(
                inbound.from_number, f"replied {spoken(inbound.content)}", inbound.provider, now))
        elif keyword is Keyword.OPT_IN:
            self.store.unsuppress(inbound.from_number)
        return stored, failed

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


def _opted_out(messages: Sequence[Message], suppressed: set[str]) -> RecipientOptedOut:
    indexes = tuple(i for i, m in enumerate(messages) if m.phone_number in suppressed)
    return RecipientOptedOut(indexes, tuple(sorted({messages[i].phone_number for i in indexes})))
