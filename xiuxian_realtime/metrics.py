"""Prometheus metrics, read from the hub's plain counters at scrape time.

Nothing on the message path touches prometheus_client: the counters are ints the hub
already keeps, and the collector turns them into samples only when scraped.
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .hub import Hub

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HubCollector:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub, stats = self.hub, self.hub.stats
        yield GaugeMetricFamily("xiuxian_ws_connections", "Open WebSocket connections",
                                value=hub.connection_count())
        yield GaugeMetricFamily("xiuxian_ws_users", "Users with at least one connection",
                                value=hub.online_count())
        counters = {
            "connections": ("Connections accepted", stats.connections_total),
            "messages_in": ("Text frames received", stats.messages_in),
            "messages_out": ("Messages sent", stats.messages_out),
            "bad_frames": ("Inbound frames ignored as malformed or unknown", stats.bad_frames),
            "slow_disconnects": ("Connections closed as slow consumers", stats.slow_disconnects),
            "policy_disconnects": ("Connections closed for a policy violation", stats.policy_disconnects),
            "timeout_disconnects": ("Connections closed for heartbeat timeout", stats.timeout_disconnects),
            "replaced": ("Connections closed by the per-user cap", stats.replaced),
            "auth_failures": ("Upgrades refused: token or origin", stats.auth_failures),
            "resumes": ("Resumes served from history", stats.resumes),
            "resyncs": ("Resume requests answered with resync", stats.resyncs),
        }
        for name, (doc, value) in counters.items():
            yield CounterMetricFamily(f"xiuxian_ws_{name}", doc, value=value)
        yield GaugeMetricFamily("xiuxian_history_bytes", "Bytes held by resume history",
                                value=hub.broker.history_bytes())


def make_registry(hub: Hub) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(hub))  # type: ignore[arg-type]
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
