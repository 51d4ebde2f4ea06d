"""The Prometheus metrics of smsproxy, in one registry per service (not the global one).

``docs/operations.md`` says what each one means and what to do when it moves.
"""

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from smsproxy.models import BatchFailed, BatchLeaseLost, BatchSucceeded
from smsproxy.records import (
    ActorRestarted,
    AttemptFinished,
    BulkReceived,
    CallbackAttempted,
    CallbackBacklog,
    ClaimsTaken,
    HttpServed,
    InboundReceived,
    KeyAccepted,
    KeySpent,
    MessagesAccepted,
    MessagesExpired,
    MessagesPurged,
    ProviderTook,
    StatsRecord,
    StoreFailed,
    UpdateRejected,
    UpdatesApplied,
    WebhookRefused,
)

__all__ = ["CONTENT_TYPE", "SIDE_TASKS", "WEBHOOK_REFUSALS", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The *_created series only say when the process started; dashboards do not need them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream

_BATCH_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
_LATENCIES = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_WAITS = (0.1, 0.25, 0.5, 0.6, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200)
"""Seconds from acceptance to the provider: the delivery classes' range."""
_HTTP_LATENCIES = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

_UPDATE_REFUSALS = ("unknown_status", "unknown_message", "final_status", "other")
_CALLBACK_OUTCOMES = (
    [("delivered", "2xx")]
    + [(outcome, reason) for outcome in ("retry", "abandon")
       for reason in ("408", "429", "5xx", "timeout", "connection")]
    + [("abandon", reason) for reason in ("3xx", "4xx", "refused_address", "invalid_url",
                                          "internal error")]
    + [("retry", "internal error")]
)
WEBHOOK_REFUSALS = ("missing_signature", "malformed_timestamp", "stale_signature",
                    "wrong_signature", "missing_credentials", "wrong_credentials")
"""Why a provider report was refused (``smsproxy.signing.verify``'s answers)."""
SIDE_TASKS = ("notifier", "housekeeping", "stats_publishing")
"""The tasks restarted one-for-one when they crash (``actors._restarting``)."""


class Metrics:
    """Every labelled counter starts with each of its known label values at zero, so
    that ``increase()`` sees its first increment. ``max_attempts`` and
    ``store_operations`` are those label values for batches and store errors."""

    def __init__(self, instance: str = "", max_attempts: int = 3,
                 store_operations: Iterable[str] = (), max_queue: int = 100_000,
                 classes: Iterable[str] = ()) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        if instance:
            Info("smsproxy_instance", "This instance's name (--instance-name).",
                 registry=registry).info({"instance": instance})
        self.accepted = Counter("smsproxy_messages_accepted", "Messages accepted (202).",
                                registry=registry)
        self.inbound = Counter("smsproxy_inbound_messages", "Replies the providers forwarded, "
                               "by the keyword each was (opt_out, opt_in, none).", ["keyword"],
                               registry=registry)
        for keyword in ("opt_out", "opt_in", "none"):
            self.inbound.labels(keyword)
        self.opted_out_failed = Counter("smsproxy_messages_opted_out", "Waiting messages "
                                        "failed because their recipient opted out.",
                                        registry=registry)
        self.key_messages = Counter("smsproxy_key_messages", "Messages each API key sent "
                                    "(accepted), by the key's name.", ["key"], registry=registry)
        self.key_segments = Counter("smsproxy_key_segments", "Segments of the messages each "
                                    "API key sent, by the key's name.", ["key"],
                                    registry=registry)
        self.key_spend = Counter("smsproxy_key_spend", "What each API key's messages cost: "
                                 "each paid request's price shared among the messages it "
                                 "carried (--providers prices).", ["key"], registry=registry)
        self.purged = Counter("smsproxy_messages_purged",
                              "Final messages deleted with their history after --retention.",
                              registry=registry)
        self.expired = Counter("smsproxy_messages_expired",
                               "Messages failed because they outlived the message TTL.",
                               registry=registry)
        self.batches = Counter("smsproxy_batches", "Batches handed to the provider, by outcome "
                               "and the attempts used.", ["outcome", "attempts"],
                               registry=registry)
        self.batch_messages = Histogram("smsproxy_batch_messages", "Messages per batch sent.",
                                        buckets=_BATCH_SIZES, registry=registry)
        self.attempt_seconds = Histogram("smsproxy_provider_attempt_seconds",
                                         "Duration of each call to the provider, by outcome.",
                                         ["outcome"], buckets=_LATENCIES, registry=registry)
        self.provider_calls = Counter("smsproxy_provider_calls", "Calls made to the provider.",
                                      registry=registry)
        self.messages_sent = Counter("smsproxy_messages_sent",
                                     "Messages the provider took, in batches.", registry=registry)
        self.calls_saved = Gauge("smsproxy_provider_calls_saved", "Provider calls batching "
                                 "saved: messages the provider took minus the successful calls "
                                 "that carried them.", registry=registry)
        self.claimed = Counter("smsproxy_messages_claimed", "Messages this instance claimed "
                               "from the shared queue (PostgreSQL).", registry=registry)
        self.taken_over = Counter("smsproxy_claims_taken_over", "Claimed messages whose "
                                  "previous claim, by another instance, had run out.",
                                  registry=registry)
        self.store_errors = Counter("smsproxy_store_errors", "Store transactions that failed, by "
                                    "the operations they held.", ["operation"],
                                    registry=registry)
        self.queue_depth = Gauge("smsproxy_queue_depth",
                                 "Messages accepted but not yet taken by the provider.",
                                 registry=registry)
        Gauge("smsproxy_queue_capacity", "Unsent messages at which POST answers 503 "
              "(--max-queue): alert on the queue depth against it.",
              registry=registry).set(max_queue)
        self.in_flight = Gauge("smsproxy_batches_in_flight", "Batches being sent right now.",
                               registry=registry)
        self.updates_applied = Counter("smsproxy_status_updates_applied",
                                       "Provider status updates applied.", registry=registry)
        self.updates_rejected = Counter("smsproxy_status_updates_rejected",
                                        "Provider status updates refused, by reason.",
                                        ["reason"], registry=registry)
        self.bulk_messages = Histogram("smsproxy_bulk_request_messages",
                                       "Messages per accepted bulk request.",
                                       buckets=_BATCH_SIZES, registry=registry)
        self.delivered = Counter("smsproxy_messages_delivered",
                                 "Messages the provider reported DELIVERED.", registry=registry)
        self.http_requests = Counter("smsproxy_http_requests", "HTTP requests served, by route, "
                                     "method and status code.", ["route", "method", "code"],
                                     registry=registry)
        self.callbacks = Counter("smsproxy_callback_attempts", "Status callbacks POSTed to the "
                                 "shop, by outcome (delivered, retry, abandon) and reason.",
                                 ["outcome", "reason"], registry=registry)
        self.callbacks_pending = Gauge("smsproxy_callbacks_pending", "Status callbacks not yet "
                                       "delivered or abandoned.", registry=registry)
        self.callback_oldest = Gauge("smsproxy_callback_oldest_pending_seconds",
                                     "Age of the oldest pending status callback's event.",
                                     registry=registry)
        self.http_seconds = Histogram("smsproxy_http_request_duration_seconds",
                                      "Time from a request's arrival at the app to its answer, "
                                      "by route and method.", ["route", "method"],
                                      buckets=_HTTP_LATENCIES, registry=registry)
        self.webhook_refused = Counter("smsproxy_webhook_refused", "Provider status reports "
                                       "refused for their signature, by reason.", ["reason"],
                                       registry=registry)
        self.to_provider = Histogram("smsproxy_time_to_provider_seconds", "From a message's "
                                     "acceptance until its batch left for the provider (the "
                                     "attempt the provider took), by delivery "
                                     "class (default: none given; custom: deliver_within).",
                                     ["class"], buckets=_WAITS, registry=registry)
        self.deadlines_missed = Counter("smsproxy_deadlines_missed", "Messages the provider "
                                        "took after their deadline, by delivery class.",
                                        ["class"], registry=registry)
        self.restarts = Counter("smsproxy_actor_restarts", "Side tasks restarted after a "
                                "crash, by task (their tracebacks are in the log).", ["actor"],
                                registry=registry)
        self._start_at_zero(max(1, max_attempts), store_operations)
        for label in ("default", "custom", *classes):
            self.to_provider.labels(label)
            self.deadlines_missed.labels(label)

    def _start_at_zero(self, max_attempts: int, store_operations: Iterable[str]) -> None:
        for attempts in range(1, max_attempts + 1):
            for outcome in ("sent", "failed"):
                self.batches.labels(outcome, str(attempts))
        for outcome in ("ok", "error"):
            self.attempt_seconds.labels(outcome)
        for operation in store_operations:
            self.store_errors.labels(operation)
        for kind in _UPDATE_REFUSALS:
            self.updates_rejected.labels(kind)
        for outcome, reason in _CALLBACK_OUTCOMES:
            self.callbacks.labels(outcome, reason)
        for reason in WEBHOOK_REFUSALS:
            self.webhook_refused.labels(reason)
        for task in SIDE_TASKS:
            self.restarts.labels(task)

    def record(self, record: StatsRecord) -> None:
        match record:
            case BatchSucceeded(size=size, attempts=attempts):
                self.batches.labels("sent", str(attempts)).inc()
                self.batch_messages.observe(size)
                self.messages_sent.inc(size)
            case BatchFailed(attempts=attempts):
                self.batches.labels("failed", str(attempts)).inc()
            case BatchLeaseLost(attempts=attempts):
                self.batches.labels("lease_lost", str(attempts)).inc()
            case AttemptFinished(seconds=seconds, ok=ok):
                self.attempt_seconds.labels("ok" if ok else "error").observe(seconds)
                self.provider_calls.inc()
            case MessagesAccepted(count):
                self.accepted.inc(count)
            case MessagesExpired(count):
                self.expired.inc(count)
            case MessagesPurged(count):
                self.purged.inc(count)
            case UpdatesApplied(count, delivered):
                self.updates_applied.inc(count)
                self.delivered.inc(delivered)
            case BulkReceived(size):
                self.bulk_messages.observe(size)
            case UpdateRejected(kind=kind):
                self.updates_rejected.labels(kind).inc()
            case ClaimsTaken(count, taken_over):
                self.claimed.inc(count)
                self.taken_over.inc(taken_over)
            case StoreFailed(operations):
                for operation in operations:
                    self.store_errors.labels(operation).inc()
            case CallbackAttempted(outcome, reason):
                self.callbacks.labels(outcome, reason).inc()
            case CallbackBacklog(pending, oldest_age):
                self.callbacks_pending.set(pending)
                self.callback_oldest.set(oldest_age)
            case HttpServed(counts, durations):
                for (route, method, status), count in counts.items():
                    self.http_requests.labels(route, method, str(status)).inc(count)
                for (route, method), times in durations.items():
                    histogram = self.http_seconds.labels(route, method)
                    for duration in times:
                        histogram.observe(duration)
            case WebhookRefused(reason):
                self.webhook_refused.labels(reason).inc()
            case ActorRestarted(actor):
                self.restarts.labels(actor).inc()
            case InboundReceived(keyword, failed):
                self.inbound.labels(keyword).inc()
                self.opted_out_failed.inc(failed)
            case KeyAccepted(key, messages, segments):
                self.key_messages.labels(key).inc(messages)
                self.key_segments.labels(key).inc(segments)
            case KeySpent(spend):
                for key, amount in spend.items():
                    if key:
                        self.key_spend.labels(key).inc(amount)
            case ProviderTook(waited, late):
                for label, times in waited.items():
                    histogram = self.to_provider.labels(label)
                    for seconds in times:
                        histogram.observe(seconds)
                for label, count in late.items():
                    self.deadlines_missed.labels(label).inc(count)

    def exposition(self, queue_depth: int, in_flight: int, calls_saved: int) -> bytes:
        self.queue_depth.set(queue_depth)
        self.in_flight.set(in_flight)
        self.calls_saved.set(calls_saved)
        return generate_latest(self.registry)
