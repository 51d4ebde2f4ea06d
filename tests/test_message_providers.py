"""What a store keeps of a message's providers, on memory, SQLite and PostgreSQL alike:
its sender, the provider that took it and that provider's own id for it (the webhooks
read them), and the provider an unknown outcome left it with (a claim returns it, so
that it is resent there only, after a restart and on any instance)."""

from smsproxy.models import Message, new_id
from smsproxy.repository import Attributed, Repository
from smsproxy.routing import SharedRoute
from smsproxy.stores import MessageStore
from tests.fakes import MANUAL_CLOCK_AT_START as T0
from tests.test_queue import claim, in_transaction


def saved(store: MessageStore, count: int, sender: str | None = None) -> list[str]:
    messages = [Message(new_id(), "+4912345678", f"m{n}", T0 + n * 0.001, sender=sender)
                for n in range(count)]
    in_transaction(store, store.insert, messages)
    return [m.id for m in messages]


def test_a_message_keeps_its_sender(queue, clock):
    [named] = saved(queue, 1, sender="MyShop")
    [plain] = saved(queue, 1)
    assert in_transaction(queue, queue.lookup, named).sender == "MyShop"
    assert in_transaction(queue, queue.lookup, plain).sender is None
    clock.now = T0 + 5
    claimed = claim(queue)
    assert {m.id: m.sender for m in claimed.messages} == {named: "MyShop", plain: None}


def test_a_sent_message_names_the_provider_that_took_it(queue, clock):
    ids = saved(queue, 3)
    clock.now = T0 + 5
    claim(queue)
    assert in_transaction(queue, queue.lookup, ids[0]).provider is None  # not sent yet
    in_transaction(queue, queue.mark_sent, "a", ids, 1,
                   {ids[0]: "infobip", ids[1]: "sinch", ids[2]: "sinch"},
                   {ids[1]: "batch-1/4912345678"})
    assert [in_transaction(queue, queue.lookup, i).provider for i in ids] == [
        "infobip", "sinch", "sinch"]
    assert in_transaction(queue, queue.owners, [*ids, "unknown"]) == {
        ids[0]: "infobip", ids[1]: "sinch", ids[2]: "sinch"}


def test_a_report_by_the_provider_s_own_id_finds_the_message(queue, clock):
    ids = saved(queue, 2)
    clock.now = T0 + 5
    claim(queue)
    in_transaction(queue, queue.mark_sent, "a", ids, 1, dict.fromkeys(ids, "sinch"),
                   {ids[0]: "b1/491", ids[1]: "b1/492"})
    assert in_transaction(queue, queue.by_refs, "sinch", ["b1/492", "b9/1"]) == {
        "b1/492": ids[1]}
    assert in_transaction(queue, queue.by_refs, "twilio", ["b1/492"]) == {}  # not its ref


def test_a_message_an_unknown_outcome_left_comes_back_pinned_to_that_provider(queue, clock):
    pinned, refused = saved(queue, 2)
    clock.now = T0 + 5
    claim(queue)
    in_transaction(queue, queue.park, "a", [pinned, refused], 1, "timed out", True, 5, 300,
                   {pinned: "infobip"})
    assert in_transaction(queue, queue.lookup, pinned).provider is None  # not taken yet
    assert in_transaction(queue, queue.owners, [pinned, refused]) == {pinned: "infobip"}
    clock.now += 5
    claimed = claim(queue)
    assert {m.id: m.provider for m in claimed.messages} == {pinned: "infobip", refused: None}
    in_transaction(queue, queue.park, "a", [pinned], 1, "down", False, 5, 300, {})
    clock.now += 10
    [again] = claim(queue).messages
    assert again.provider == "infobip"  # a later refusal does not free it


def test_the_later_change_of_a_route_wins_and_one_instance_is_granted_each_probe(queue):
    down = SharedRoute("ib", True, 100, probe_at=T0 + 1, probe_interval=1.0, changed_at=T0)
    in_transaction(queue, queue.share_routes, [down])
    stale = SharedRoute("ib", False, 100, 0.0, 0.0, changed_at=T0 - 5)
    in_transaction(queue, queue.share_routes, [stale])  # older than what is there
    assert in_transaction(queue, queue.shared_routes) == [down]
    assert not in_transaction(queue, queue.claim_probe, "ib", T0 + 0.5, T0 + 3)  # not due
    assert in_transaction(queue, queue.claim_probe, "ib", T0 + 1, T0 + 3)
    assert not in_transaction(queue, queue.claim_probe, "ib", T0 + 1, T0 + 3)  # granted once
    [moved] = in_transaction(queue, queue.shared_routes)
    assert moved.probe_at == T0 + 3
    up = SharedRoute("ib", False, 90, 0.0, 0.0, changed_at=T0 + 2)
    in_transaction(queue, queue.share_routes, [up])
    assert in_transaction(queue, queue.shared_routes) == [up]
    assert not in_transaction(queue, queue.claim_probe, "ib", T0 + 9, T0 + 10)  # it is up


def test_a_provider_may_report_on_what_it_took_and_on_what_no_provider_took(queue, clock):
    ours, theirs, unsent = saved(queue, 3)
    clock.now = T0 + 5
    claim(queue)
    in_transaction(queue, queue.mark_sent, "a", [ours, theirs], 1,
                   {ours: "sinch", theirs: "twilio"}, {ours: "b1/491"})
    repository = Repository(queue, clock)
    attributed = in_transaction(queue, repository.attribute, "sinch",
                                [theirs, unsent, "never-sent"], ["b1/491", "b9/000"])
    assert attributed == Attributed(
        accepted={unsent: unsent, "never-sent": "never-sent", "b1/491": ours},
        unknown=("b9/000",), foreign=(theirs,))
    twilio = in_transaction(queue, repository.attribute, "twilio", [theirs], ["b1/491"])
    assert twilio == Attributed({theirs: theirs}, unknown=("b1/491",))  # not its ref
