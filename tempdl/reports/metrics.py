"""`/metrics`: Prometheus counters read from the audit database when Prometheus scrapes.

Counting in the database instead of in process memory keeps the numbers right with several
server processes on one database and across restarts, and leaves the audit code untouched: one
aggregate query per scrape (see `stats.metrics_snapshot`). The price: `prune` deletes rows, so the
counters go down then, which Prometheus reads as a counter reset.

Each app gets its own `CollectorRegistry` (tests build many apps; the global one would collide).
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import Engine

from tempdl.audit.records import Outcome
from tempdl.reports.breakdowns import NONE_KEY
from tempdl.reports.stats import MetricsSnapshot, metrics_snapshot


def _families(snapshot: MetricsSnapshot | None, in_flight: int) -> list[Metric]:
    issued = CounterMetricFamily("tempdl_links_issued", "Links handed out (rows in issuances).")
    attempts = CounterMetricFamily(
        "tempdl_download_attempts", "Download requests by outcome (rows in download_attempts).", labels=["outcome"]
    )
    sent = CounterMetricFamily("tempdl_bytes_sent", "Body bytes sent to download clients, by file.", labels=["file"])
    inflight = GaugeMetricFamily("tempdl_downloads_in_flight", "Downloads streaming right now in this process.")
    if snapshot is not None:
        issued.add_metric([], snapshot.links_issued)
        for outcome in Outcome:  # every outcome from the start, so rate() works from the first one
            attempts.add_metric([outcome], snapshot.attempts_by_outcome.get(outcome, 0))
        for file_id, count in sorted(snapshot.bytes_by_file.items()):
            if file_id != NONE_KEY:
                sent.add_metric([file_id], count)
        inflight.add_metric([], in_flight)
    return [issued, attempts, sent, inflight]


class AuditCollector(Collector):
    def __init__(self, engine: Engine, inflight: Sized) -> None:
        self.engine = engine
        self.inflight = inflight

    def describe(self) -> Iterator[Metric]:
        """The metric names without touching the database (the registry asks when registering)."""
        return iter(_families(None, 0))

    def collect(self) -> Iterator[Metric]:
        """Blocking: runs the aggregate query. Call it off the event loop."""
        return iter(_families(metrics_snapshot(self.engine), len(self.inflight)))


def make_registry(engine: Engine, inflight: Sized) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(AuditCollector(engine, inflight))
    return registry
