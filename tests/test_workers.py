"""How the workers of one --workers set are counted as one: the merge rules."""

from dataclasses import asdict

from actors.stats import Snapshot
from api.workers import FRESH_SECONDS, merge_expositions, merge_snapshots

WORKER_1 = """# HELP smsproxy_messages_accepted_total Messages accepted (202).
# TYPE smsproxy_messages_accepted_total counter
smsproxy_messages_accepted_total 7.0
# HELP smsproxy_queue_depth Messages accepted but not yet taken by the provider.
# TYPE smsproxy_queue_depth gauge
smsproxy_queue_depth 40.0
# HELP smsproxy_batches_in_flight Batches being sent right now.
# TYPE smsproxy_batches_in_flight gauge
smsproxy_batches_in_flight 2.0
# HELP smsproxy_batch_messages Messages per batch sent.
# TYPE smsproxy_batch_messages histogram
smsproxy_batch_messages_bucket{le="10.0"} 1.0
smsproxy_batch_messages_bucket{le="+Inf"} 2.0
smsproxy_batch_messages_count 2.0
smsproxy_batch_messages_sum 105.0
"""
WORKER_2 = WORKER_1.replace(" 7.0", " 5.0").replace("depth 40.0", "depth 41.0")


def test_counters_and_histograms_are_summed_and_the_shared_queue_depth_is_not():
    merged = merge_expositions([WORKER_1, WORKER_2]).decode()
    assert "smsproxy_messages_accepted_total 12.0" in merged
    assert "smsproxy_queue_depth 41.0" in merged  # each reads the same table: the latest
    assert "smsproxy_batches_in_flight 4.0" in merged
    assert 'smsproxy_batch_messages_bucket{le="+Inf"} 4.0' in merged
    assert "smsproxy_batch_messages_sum 210.0" in merged


def snapshot_file(age: float, in_flight: int, **counts: int) -> tuple[float, dict]:
    snapshot = asdict(Snapshot(**counts, success_by_attempt={1: counts.get("success", 0)}))
    return age, {"snapshot": snapshot, "in_flight": in_flight}


def test_snapshots_are_summed_and_a_dead_worker_keeps_its_totals_but_not_its_gauge():
    live = snapshot_file(0.5, 2, success=3, messages_sent=300, attempts=4)
    dead = snapshot_file(FRESH_SECONDS + 60, 3, success=1, messages_sent=100, attempts=1)
    merged, in_flight = merge_snapshots([live, dead])
    assert (merged.success, merged.messages_sent, merged.attempts) == (4, 400, 5)
    assert merged.success_by_attempt == {1: 4}
    assert merged.provider_calls_saved == 400 - 4
    assert in_flight == 2  # the dead worker's batches are not in flight any more


def test_the_callback_backlog_each_worker_reads_from_the_store_is_not_summed():
    one = snapshot_file(0.5, 0, callbacks_pending=30, callbacks_delivered=5)
    two = snapshot_file(0.5, 0, callbacks_pending=31, callbacks_delivered=7)
    merged, _ = merge_snapshots([one, two])
    assert (merged.callbacks_pending, merged.callbacks_delivered) == (31, 12)
    gauge = ("# HELP smsproxy_callbacks_pending Pending.\n# TYPE smsproxy_callbacks_pending"
             " gauge\nsmsproxy_callbacks_pending {}\n")
    assert "smsproxy_callbacks_pending 31.0" in merge_expositions(
        [gauge.format(30.0), gauge.format(31.0)]).decode()


def test_the_set_started_with_its_first_worker_and_shares_one_descriptor_limit():
    text = ("# HELP process_start_time_seconds Start.\n# TYPE process_start_time_seconds gauge\n"
            "process_start_time_seconds {}\n# HELP process_max_fds Limit.\n"
            "# TYPE process_max_fds gauge\nprocess_max_fds 1024.0\n"
            "# HELP process_open_fds Open.\n# TYPE process_open_fds gauge\n"
            "process_open_fds 10.0\n")
    merged = merge_expositions([text.format(100.0), text.format(90.0)]).decode()
    assert "process_start_time_seconds 90.0" in merged
    assert "process_max_fds 1024.0" in merged
    assert "process_open_fds 20.0" in merged
