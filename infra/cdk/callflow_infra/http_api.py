"""The HTTP API in front of the ``api`` Lambda, with one route per endpoint the app serves.

Routes are explicit (no ``$default`` catch-all) so anything else is a 404 at API Gateway and never
costs an invocation. Authentication is the app's job: each provider authenticates differently
(Zoho: shared-secret header; Infobip: Basic auth plus a secret path segment; ElevenLabs: HMAC
signature over the raw body; status: bearer token), which no API Gateway authorizer expresses.
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

ROUTES: tuple[tuple[apigw.HttpMethod, str], ...] = (
    (apigw.HttpMethod.POST, "/webhooks/zoho"),
    (apigw.HttpMethod.POST, "/webhooks/infobip/{secret}"),
    (apigw.HttpMethod.POST, "/webhooks/elevenlabs"),
    (apigw.HttpMethod.GET, "/sessions/{session_id}"),
    (apigw.HttpMethod.GET, "/health"),
    (apigw.HttpMethod.GET, "/openapi.json"),
    (apigw.HttpMethod.GET, "/docs"),
)


class HttpApi(Construct):
    """API, routes and an access-logged default stage."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: lambda_.IFunction,
        log_retention: logs.RetentionDays,
        removal: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.api = apigw.HttpApi(
            self, "Api", description="callflow webhooks and status", create_default_stage=False
        )
        integration = integrations.HttpLambdaIntegration(
            "Handler",
            handler,
            payload_format_version=apigw.PayloadFormatVersion.VERSION_2_0,
        )
        for method, path in ROUTES:
            self.api.add_routes(path=path, methods=[method], integration=integration)
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=removal
        )
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            auto_deploy=True,
            access_log_settings=_AccessLogs(apigw.LogGroupLogDestination(self.access_logs)),
            throttle=apigw.ThrottleSettings(rate_limit=50, burst_limit=100),
        )

    @property
    def url(self) -> str:
        """Base URL without the trailing slash, for the webhook outputs."""
        stack = self.api.stack
        return f"https://{self.api.api_id}.execute-api.{stack.region}.{stack.url_suffix}"


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogs:
    """JSON access log lines (request id, route, status, latency) for Logs Insights queries."""

    def __init__(self, destination: apigw.IAccessLogDestination) -> None:
        self._destination = destination

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw_v1.AccessLogFormat:
        # Only variables HTTP APIs support; the request id ties a line to the Lambda's logs.
        fields = {
            "requestId": "$context.requestId",
            "ip": "$context.identity.sourceIp",
            "requestTime": "$context.requestTime",
            "routeKey": "$context.routeKey",
            "status": "$context.status",
            "responseLength": "$context.responseLength",
            "integrationLatency": "$context.integrationLatency",
            "integrationError": "$context.integrationErrorMessage",
        }
        return apigw_v1.AccessLogFormat.custom(json.dumps(fields))
