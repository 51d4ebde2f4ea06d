"""The actors' shared mailbox: calls, timeouts, a closed inbox, shielded calls."""

import pytest
import trio
import trio.testing

from actors._mailbox import Call, Mailbox
from actors.errors import ActorTimeout, ActorUnavailable


class Echo(Call[str]):
    def __init__(self, text: str) -> None:
        self.text = text


async def serve_after(inbox: trio.MemoryReceiveChannel, delay: float) -> None:
    async for envelope in inbox:
        await trio.sleep(delay)
        envelope.reply.set(envelope.request.text.upper())


async def test_call_returns_the_actors_reply(nursery):
    mailbox, inbox = Mailbox.open("echo")
    nursery.start_soon(serve_after, inbox, 0)
    assert await mailbox.call(Echo("hi")) == "HI"


async def test_an_unanswered_call_times_out_as_actor_timeout(autojump_clock):
    mailbox, _inbox = Mailbox.open("silent", timeout=2.0)
    with pytest.raises(ActorTimeout, match="silent"):
        await mailbox.call(Echo("hi"))
    assert trio.current_time() == pytest.approx(2.0)


async def test_a_call_to_a_closed_mailbox_is_actor_unavailable():
    mailbox, inbox = Mailbox.open("gone")
    await inbox.aclose()
    with pytest.raises(ActorUnavailable, match="gone"):
        await mailbox.call(Echo("hi"))


async def test_a_shielded_call_waits_for_its_reply_through_cancellation(nursery, autojump_clock):
    mailbox, inbox = Mailbox.open("echo")
    nursery.start_soon(serve_after, inbox, 1.0)
    with trio.CancelScope() as scope:
        scope.cancel()
        answer = await mailbox.call(Echo("hi"), shield=True)
    assert answer == "HI"
    assert trio.current_time() == pytest.approx(1.0)


async def test_an_unshielded_call_is_cancelled_with_its_caller(nursery, autojump_clock):
    mailbox, inbox = Mailbox.open("echo")
    nursery.start_soon(serve_after, inbox, 1.0)
    with trio.CancelScope() as scope:
        scope.cancel()
        await mailbox.call(Echo("hi"))
    assert scope.cancelled_caught
    assert trio.current_time() == 0
