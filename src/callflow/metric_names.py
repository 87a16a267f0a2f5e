"""The names every metric is published under: the contract with the CDK dashboard and alarms.

The Lambdas publish through Powertools (:mod:`callflow.observability`), the bridge writes its own
EMF documents (:mod:`callflow_bridge.metrics`); both use these names, and
``infra/cdk/callflow_infra/monitoring.py`` reads the same namespace (a test keeps them equal).
"""

from __future__ import annotations

NAMESPACE = "Callflow"
"""The CloudWatch namespace of every metric the system emits."""
SERVICE = "callflow"
"""The ``service`` dimension of the Lambdas' metrics and their logs' service name."""
