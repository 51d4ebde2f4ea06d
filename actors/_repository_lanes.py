"""How the repository actor serves its requests: lanes, one store connection each,
applying everything waiting in one transaction (group commit), a request whose work
raises failing alone, and a failing store logged in proportion."""

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import structlog
import trio

from actors._mailbox import Envelope, receive_ready
from actors._repository_inbox import OPERATION_NAMES, Request
from actors._repository_requests import Save
from actors.errors import ActorFailed
from smsproxy.errors import RepositoryError, SmsProxyError, StoreError
from smsproxy.records import StoreFailed
from smsproxy.repository import Repository
from smsproxy.stores import MessageStore

__all__ = ["MAX_GROUP", "Lane", "StoreHealth", "close_store"]

log = structlog.get_logger("smsproxy.repository")

MAX_GROUP = 1024


class Lane:
    """One store connection, serving its requests in groups, one transaction each."""

    def __init__(self, repository: Repository, health: "StoreHealth",
                 on_store_error: Callable[[StoreFailed], None]) -> None:
        self._repository = repository
        self._health = health
        self._on_store_error = on_store_error

    async def serve(self, requests: trio.MemoryReceiveChannel[Envelope[Request]]) -> None:
        async for first in requests:
            group = receive_ready(requests, first, MAX_GROUP)
            if self._repository.store.blocking:
                results = await trio.to_thread.run_sync(_apply_group, self._repository, group)
            else:
                results = _apply_group(self._repository, group)
            if isinstance(results, StoreError):
                operations = _operations(group)
                self._health.failed(results, operations, len(group))
                self._on_store_error(StoreFailed(operations))
                results = [results] * len(group)
            else:
                self._health.succeeded()
            _reply_all(group, results)


class StoreHealth:
    """Logs a failing store without flooding the log: a failure line at most once per
    ``REPEAT_INTERVAL`` (saying how many it left out), and the recovery only of a
    failure that was logged, so that a store flapping between failure and success
    writes no more than that either. (Every failure is still counted, in the metric.)"""

    REPEAT_INTERVAL = 10.0

    def __init__(self) -> None:
        self.failing = False
        self.reported = False
        self.unlogged = 0
        self.next_log = -math.inf

    def failed(self, error: StoreError, operations: tuple[str, ...], requests: int) -> None:
        self.failing = True
        now = trio.current_time()
        if now < self.next_log:
            self.unlogged += 1
            return
        log.error("store_transaction_failed", error=str(error), operations=operations,
                  requests=requests, failures_not_logged=self.unlogged)
        self.unlogged = 0
        self.reported = True
        self.next_log = now + self.REPEAT_INTERVAL

    def succeeded(self) -> None:
        if self.failing and self.reported:
            log.info("store_recovered", failures_not_logged=self.unlogged)
            self.unlogged = 0
        self.failing = self.reported = False


def _operations(group: Sequence[Envelope[Request]]) -> tuple[str, ...]:
    """The distinct operations of a group, by name, for the log and the metric label."""
    return tuple(sorted({OPERATION_NAMES[type(e.request)] for e in group}))




def _apply_group(
    repository: Repository, group: Sequence[Envelope[Request]]
) -> list[Any] | StoreError:
    """Apply a group in one transaction; each slot holds a result or a rule error.

    When the transaction itself fails, nothing of it was stored and the whole
    group gets the :class:`StoreError`; the actor goes on with the next group.
    When a request's work raises anything else (a bug, a value the driver cannot
    bind), the transaction is rolled back and each request is applied again in a
    transaction of its own: the one that raises gets :class:`ActorFailed`, and the
    others are served as if it had never come.
    """
    try:
        return _apply_together(repository, group)
    except StoreError as error:
        return error
    except Exception:
        if len(group) == 1:
            return [_failed(group[0])]
    return [_apply_alone(repository, envelope) for envelope in group]


def _apply_together(repository: Repository, group: Sequence[Envelope[Request]]) -> list[Any]:
    results: list[Any] = [None] * len(group)
    saves = [(i, e.request) for i, e in enumerate(group) if isinstance(e.request, Save)]
    with repository.store.transaction():
        # All the group's saves at once: one insert, not one per caller.
        submissions = [(save.messages, save.idempotency, save.at, save.quota)
                       for _, save in saves]
        for (i, _), saved in zip(saves, repository.save_all(submissions), strict=True):
            results[i] = saved
        for i, envelope in enumerate(group):
            if not isinstance(envelope.request, Save):
                try:
                    results[i] = envelope.request.apply(repository)
                except RepositoryError as error:
                    results[i] = error
    return results


def _apply_alone(repository: Repository, envelope: Envelope[Request]) -> Any:
    try:
        [result] = _apply_together(repository, [envelope])
    except StoreError as error:
        return error
    except Exception:
        return _failed(envelope)
    return result


def _failed(envelope: Envelope[Request]) -> ActorFailed:
    """Called in an ``except`` block: the request's error, logged once with its traceback."""
    error = sys.exc_info()[1]
    assert error is not None
    log.exception("repository_request_failed", operation=OPERATION_NAMES[type(envelope.request)])
    return ActorFailed("repository", error)


def _reply_all(group: Sequence[Envelope[Request]], results: Sequence[Any]) -> None:
    for envelope, result in zip(group, results, strict=True):
        if envelope.reply is None:
            continue
        if isinstance(result, SmsProxyError):
            envelope.reply.fail(result)
        else:
            envelope.reply.set(result)


async def close_store(store: MessageStore) -> None:
    if store.blocking:
        await trio.to_thread.run_sync(store.close)
    else:
        store.close()
    log.info("store_closed")
