"""Logging and metrics for the Lambda functions (Powertools).

Every log line carries the session id as the correlation id, so one call's story can be read in
CloudWatch Logs Insights with a single filter. Metric names here are the contract with the CDK
dashboard and alarms (``infra/cdk``): change them together.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from callflow.metric_names import NAMESPACE, SERVICE

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


class Metric:
    """Metric names; the CDK dashboard and alarms refer to them by these exact strings."""

    CALLS_PLACED = "CallsPlaced"
    CALLS_ANSWERED = "CallsAnswered"
    CALLS_UNREACHED = "CallsUnreached"
    CALLS_FAILED = "CallsFailed"
    WRITEBACKS_SUCCEEDED = "WritebacksSucceeded"
    WRITEBACKS_FAILED = "WritebacksFailed"
    CALLS_QUEUED = "CallsQueued"
    """Calls that found a pool full and waited (counted once per attempt)."""
    CALLS_ADMITTED = "CallsAdmitted"
    SLOT_WAIT_SECONDS = "SlotWaitSeconds"
    """How long an admitted call waited for its slots (0 when one was free at once)."""


def count(name: str, value: int = 1) -> None:
    """Add ``value`` to the count metric ``name``."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def seconds(name: str, value: float) -> None:
    """Record ``value`` seconds under the metric ``name`` (percentiles on the dashboard)."""
    metrics.add_metric(name=name, unit=MetricUnit.Seconds, value=value)


def bind_session(session_id: str) -> None:
    """Tag every following log line with the session id, as the correlation id and a key."""
    logger.set_correlation_id(session_id)
    logger.append_keys(session_id=session_id)
