"""Side tasks restart one-for-one (OTP's supervisor): a crash is logged with its
traceback, counted, and followed by a restart after a doubling pause."""

import itertools

import pytest
import structlog
import trio

from actors import stats
from actors.errors import ActorFailed
from actors.restarting import RestartPolicy, restarting
from smsproxy.records import ActorRestarted


async def test_a_crashing_side_task_is_restarted_with_a_growing_pause(autojump_clock):
    starts: list[float] = []
    restarts: list[str] = []

    async def task() -> None:
        starts.append(trio.current_time())
        if len(starts) < 5:
            raise RuntimeError(f"crash {len(starts)}")

    with structlog.testing.capture_logs() as logs:
        await restarting("housekeeping", task, restarts.append,
                         RestartPolicy(initial=1, maximum=4, stable=60))
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert gaps == [1, 2, 4, 4]
    assert restarts == ["housekeeping"] * 4
    crashes = [e for e in logs if e["event"] == "side_task_crashed"]
    assert [e["actor"] for e in crashes] == ["housekeeping"] * 4
    assert all(e["log_level"] == "error" and e.get("exc_info") for e in crashes)


async def test_a_task_that_ran_a_while_before_it_crashed_restarts_at_once(autojump_clock):
    starts: list[float] = []

    async def task() -> None:
        starts.append(trio.current_time())
        if len(starts) == 1:
            raise RuntimeError("early")
        if len(starts) == 2:
            raise RuntimeError("early again")
        if len(starts) == 3:
            await trio.sleep(100)
            raise RuntimeError("after a long run")

    await restarting("notifier", task, lambda _: None,
                     RestartPolicy(initial=1, maximum=30, stable=60))
    assert [b - a for a, b in itertools.pairwise(starts)] == [1, 2, 101]


async def test_cancellation_is_not_a_crash(autojump_clock):
    restarts: list[str] = []
    with trio.move_on_after(5):
        await restarting("notifier", trio.sleep_forever, restarts.append)
    assert restarts == []


async def test_restarts_are_counted_by_task(nursery):
    counts = await nursery.start(stats.run)
    counts.record(ActorRestarted("notifier"))
    counts.record(ActorRestarted("notifier"))
    exposed = (await counts.exposition(0, 0)).decode()
    assert 'smsproxy_actor_restarts_total{actor="notifier"} 2.0' in exposed
    assert 'smsproxy_actor_restarts_total{actor="housekeeping"} 0.0' in exposed


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
async def test_what_is_not_an_exception_goes_through(error, autojump_clock):
    async def task() -> None:
        raise error()

    with pytest.raises(error):
        await restarting("notifier", task, lambda _: None)


async def test_a_stats_request_that_raises_fails_alone(nursery):
    counts = await nursery.start(stats.run)
    with pytest.raises(ActorFailed):
        await counts.exposition("not a number", 0)  # type: ignore[arg-type]
    counts.record(ActorRestarted("notifier"))
    assert b'smsproxy_actor_restarts_total{actor="notifier"} 1.0' in await counts.exposition(0, 0)
