"""The metric families donebox's processes count into, and one small function per event.

Labels stay bounded: providers, reasons, states, kinds, sender names (the operator's own list)
and fixed outcome words; never an address, a domain or an id. docs/metrics.md lists them all.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # no *_created series: multiprocess mode has none, so one process is like many

# seconds: a local transport answers in milliseconds, a distant SMTP server in seconds
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# why an inbound webhook was refused, by its answer's status (app/web/hooks/webhooks.py)
REFUSALS = {
    400: "bad_payload",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_configured",
    411: "no_length",
    413: "too_large",
    415: "media_type",
    429: "rate_limited",
    503: "temporary_failure",
}

inbound_accepted = Counter(
    "donebox_inbound_accepted", "Inbound messages stored (committed) by provider", ["provider"]
)
inbound_duplicates = Counter(
    "donebox_inbound_duplicates", "Inbound copies already stored (nothing new stored)", ["provider"]
)
inbound_refused = Counter(
    "donebox_inbound_refused",
    "Inbound webhook requests refused, by provider and reason",
    ["provider", "reason"],
)
inbound_processed = Counter(
    "donebox_inbound_processed", "Inbound messages processed, by the state they ended in", ["outcome"]
)
inbound_processing = Histogram(
    "donebox_inbound_processing_seconds", "Duration of one inbound processing batch", buckets=LATENCY_BUCKETS
)
inbound_delay = Histogram(
    "donebox_inbound_delay_seconds",
    "From an inbound message's arrival to its outcome being written",
    buckets=(1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 86400),
)
send_attempts = Counter(
    "donebox_send_attempts", "Messages handed to a transport, by sender and result", ["sender", "result"]
)
send_latency = Histogram(
    "donebox_send_seconds",
    "How long a transport took to take (or refuse) a message",
    ["sender"],
    buckets=LATENCY_BUCKETS,
)
breaker_open = Gauge(
    "donebox_breaker_open",
    "Open circuits of a sender in running processes (scope: sender, or one recipient domain)",
    ["sender", "scope"],
    multiprocess_mode="livesum",
)
breaker_opened = Counter("donebox_breaker_opened", "Circuits that opened", ["sender", "scope"])
scheduler_tick = Histogram(
    "donebox_scheduler_tick_seconds", "Duration of one scheduler tick", buckets=LATENCY_BUCKETS
)
scheduler_rows = Counter(
    "donebox_scheduler_rows", "Rows a scheduler tick created, moved or purged, by kind", ["kind"]
)
scheduler_failures = Counter("donebox_scheduler_tick_failures", "Scheduler ticks that raised")
webhook_attempts = Counter("donebox_webhook_attempts", "Outgoing webhook POSTs, by result", ["result"])
webhook_latency = Histogram(
    "donebox_webhook_seconds", "How long an outgoing webhook POST took", buckets=LATENCY_BUCKETS
)
tracking_hits = Counter("donebox_tracking_hits", "Opens, clicks and unsubscribes recorded", ["kind"])


def refused(provider: str, status: int, known: bool) -> None:
    """An inbound webhook answered ``status`` (4xx, 5xx); an unknown provider counts as 'unknown'."""
    inbound_refused.labels(provider if known else "unknown", REFUSALS.get(status, str(status))).inc()


def accepted(provider: str, duplicate: bool) -> None:
    """One inbound message stored, or found already stored."""
    (inbound_duplicates if duplicate else inbound_accepted).labels(provider).inc()


def processed(outcomes: list[str], delays_s: list[float], took_s: float) -> None:
    """A processing batch wrote ``outcomes`` (one state a message), each ``delays_s`` after arrival."""
    for outcome in outcomes:
        inbound_processed.labels(outcome).inc()
    for delay in delays_s:
        inbound_delay.observe(max(0.0, delay))
    inbound_processing.observe(took_s)


def sent(sender: str, result: str, took_s: float) -> None:
    """A transport took (``sent``) or refused (``transient``, ``permanent``, ``error``) a message."""
    send_attempts.labels(sender, result).inc()
    send_latency.labels(sender).observe(took_s)


def circuit(sender: str, scope: str, opened: bool) -> None:
    """A circuit of ``sender`` opened (``opened``) or closed again; ``scope``: 'sender' or 'domain'."""
    if opened:
        breaker_opened.labels(sender, scope).inc()
        breaker_open.labels(sender, scope).inc()
    else:
        breaker_open.labels(sender, scope).dec()


def ticked(took_s: float, rows: dict[str, int]) -> None:
    """A scheduler tick took ``took_s`` and handled ``rows`` (by kind)."""
    scheduler_tick.observe(took_s)
    for kind, n in rows.items():
        if n:
            scheduler_rows.labels(kind).inc(n)


def webhook_attempt(result: str, took_s: float) -> None:
    """One outgoing webhook POST: ``ok``, ``http_error``, ``no_answer`` or ``refused``."""
    webhook_attempts.labels(result).inc()
    webhook_latency.observe(took_s)


def hit(kind: str) -> None:
    """A tracking hit recorded: open, click or unsubscribe."""
    tracking_hits.labels(kind).inc()
