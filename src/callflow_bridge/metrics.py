"""CloudWatch embedded metric format (EMF) for the bridge, written as JSON lines on stdout.

On Fargate the awslogs driver ships stdout to CloudWatch Logs, which turns each EMF document into
metrics: no agent, no API call, no SDK on the hot path. Powertools' ``Metrics`` is built around a
Lambda invocation (flush per handler), so for a long-lived asyncio service the documents are
written directly: each call aggregates its counters in plain integers and emits one document when
it ends, and the server emits the ``ActiveCalls`` gauge every few seconds.

Metric names are a contract with the dashboard and alarms in ``infra/cdk``: change them together.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from callflow.metric_names import NAMESPACE

SERVICE = "callflow-bridge"
#: EMF allows at most 100 values per metric in one document.
_MAX_VALUES = 100

ACTIVE_CALLS = "ActiveCalls"
CONNECT_TIME_MS = "ConnectTimeMs"
TURN_LATENCY_MS = "TurnLatencyMs"
FRAMES_RELAYED = "FramesRelayed"
UNDERRUNS = "Underruns"
CONVERSIONS = "Conversions"
CALL_ENDS = "CallEnds"

Emit = Callable[[str], None]


def stdout_emit(line: str) -> None:
    """Write ``line`` to stdout and flush it, for the log driver to ship."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def emf_document(
    namespace: str,
    metrics: Sequence[tuple[str, str, float | list[float]]],
    dimensions: dict[str, str],
    timestamp_ms: int | None = None,
) -> str:
    """One EMF document: ``metrics`` are ``(name, unit, value or values)``."""
    doc: dict[str, object] = {
        "_aws": {
            "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [sorted(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in metrics],
                }
            ],
        },
        **dimensions,
    }
    for name, _, value in metrics:
        doc[name] = value[:_MAX_VALUES] if isinstance(value, list) else value
    return json.dumps(doc, separators=(",", ":"))


@dataclass
class CallMetrics:
    """Counters of one call, plain attributes so the hot path pays an integer add."""

    connect_time_ms: float | None = None
    turn_latencies_ms: list[float] = field(default_factory=list)
    frames_relayed: int = 0
    underruns: int = 0
    conversions: int = 0

    def add_turn_latency(self, ms: float) -> None:
        """Record one turn's latency, rounded to 0.1 ms; beyond the first 100 (EMF's limit per
        document) they are dropped."""
        if len(self.turn_latencies_ms) < _MAX_VALUES:
            self.turn_latencies_ms.append(round(ms, 1))

    def summary(self) -> dict[str, object]:
        """The call's counters as plain values (latencies sorted), for the session record."""
        lat = sorted(self.turn_latencies_ms)
        return {
            "connect_time_ms": self.connect_time_ms,
            "turn_latency_ms": lat,
            "frames_relayed": self.frames_relayed,
            "underruns": self.underruns,
            "conversions": self.conversions,
        }


class BridgeMetrics:
    """Writes the bridge's EMF documents."""

    def __init__(self, namespace: str = NAMESPACE, emit: Emit = stdout_emit) -> None:
        self.namespace = namespace
        self.emit = emit
        self._service = {"service": SERVICE}

    def active_calls(self, count: int) -> None:
        """Emit the ``ActiveCalls`` gauge."""
        self.emit(emf_document(self.namespace, [(ACTIVE_CALLS, "Count", count)], self._service))

    def call_ended(self, call: CallMetrics, reason: str) -> None:
        """Emit one call's counters, and a ``CallEnds`` count with ``reason`` as a dimension."""
        values: list[tuple[str, str, float | list[float]]] = [
            (FRAMES_RELAYED, "Count", call.frames_relayed),
            (UNDERRUNS, "Count", call.underruns),
            (CONVERSIONS, "Count", call.conversions),
        ]
        if call.connect_time_ms is not None:
            values.append((CONNECT_TIME_MS, "Milliseconds", round(call.connect_time_ms, 1)))
        if call.turn_latencies_ms:
            values.append((TURN_LATENCY_MS, "Milliseconds", list(call.turn_latencies_ms)))
        self.emit(emf_document(self.namespace, values, self._service))
        self.emit(
            emf_document(
                self.namespace, [(CALL_ENDS, "Count", 1)], {**self._service, "reason": reason}
            )
        )
