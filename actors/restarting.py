"""One-for-one restarts for side tasks, as an OTP supervisor restarts a worker.

A side task (the notifier, housekeeping, publishing statistics, releasing scheduled
messages) does work that can wait: when it raises, its crash is logged once with the
traceback, counted, and the task is started again after a pause that doubles with
each crash in a row (and starts over once the task has run for a while), so that a
task that crashes at once does not spin. The core actors (repository, dispatcher,
updater) are not run this way: their crash ends the process (see the supervisor).
"""

from collections.abc import Awaitable, Callable

import structlog
import trio

__all__ = ["RestartPolicy", "restarting"]

log = structlog.get_logger("smsproxy.supervisor")


class RestartPolicy:
    """Pauses before a restart: ``initial`` doubling to ``maximum``; a task that ran
    ``stable`` seconds before it crashed starts over at ``initial``."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, stable: float = 60.0
                 ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.stable = stable


async def restarting(
    name: str,
    task: Callable[[], Awaitable[None]],
    on_restart: Callable[[str], None],
    policy: RestartPolicy | None = None,
) -> None:
    """Run ``task`` until it returns (or is cancelled), restarting it after a crash."""
    policy = policy or RestartPolicy()
    pause = policy.initial
    while True:
        started = trio.current_time()
        try:
            await task()
            return
        except Exception:  # a side task's crash is its own; Cancelled is not an Exception
            if trio.current_time() - started >= policy.stable:
                pause = policy.initial
            log.exception("side_task_crashed", actor=name, restart_in=pause)
            on_restart(name)
        await trio.sleep(pause)
        pause = min(policy.maximum, pause * 2)
