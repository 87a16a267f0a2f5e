"""The stack's state: the DynamoDB table and the one Secrets Manager secret.

One table holds sessions, the shared Zoho token cache and idempotency records (see
``callflow/store.py``): on-demand billing because call traffic is bursty, TTL on ``expires_at`` so
finished sessions age out, point-in-time recovery because collected results may be waiting there
for a replayed writeback.
"""

from __future__ import annotations

import json

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

# The keys ``callflow.config.get_settings()`` reads from the secret. The placeholder written at
# creation makes the expected shape visible in the console; docs/deploy.md says how to fill it.
SECRET_KEYS = (
    "zoho_client_secret",
    "zoho_refresh_token",
    "zoho_trigger_secret",
    "infobip_api_key",
    "infobip_webhook_password",
    "infobip_webhook_path_secret",
    "elevenlabs_api_key",
    "elevenlabs_webhook_secret",
    "status_api_token",
    "bridge_path_secret",
)
# Secrets Manager generates one random key at creation; the bridge's path secret is the one that
# must never be guessable before the operator has filled in the rest (the bridge is public).
GENERATED_KEY = "bridge_path_secret"


class State(Construct):
    """Table and secret, with the removal policy of the stage."""

    def __init__(self, scope: Construct, construct_id: str, *, retain: bool) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.table = dynamodb.TableV2(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            time_to_live_attribute="expires_at",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=retain,
            removal_policy=removal,
        )
        # Empty values fail closed: callflow_functions.auth refuses every request while a webhook's
        # secret is empty, so a half-configured deployment answers 401, never "open".
        template = {k: "" for k in SECRET_KEYS if k != GENERATED_KEY}
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            description="callflow settings secrets (JSON object; keys are callflow Settings names)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps(template),
                generate_string_key=GENERATED_KEY,
                exclude_punctuation=True,
                password_length=40,
            ),
            removal_policy=removal,
        )


__all__ = ["GENERATED_KEY", "SECRET_KEYS", "State"]
