"""cdk-nag AwsSolutions findings this stack accepts, each with the reason it is acceptable.

cdk-nag 3 reports through CDK's validation framework; an accepted finding is a
``Validations.of(construct).acknowledge(...)`` on the construct that causes it (and its children),
never on the whole stack, so a new resource with the same problem still fails the check.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

# Why each accepted finding does not apply. Keys are cdk-nag rule ids (with the finding, if any).
REASONS: dict[str, str] = {
    "AwsSolutions-SMG4": (
        "The secret holds third-party credentials (Zoho refresh token, Infobip and ElevenLabs API "
        "keys) and shared webhook secrets that must change together with the provider's settings; "
        "no rotation Lambda can rotate them. Rotation is a documented manual procedure "
        "(docs/operations.md)."
    ),
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
    "AWSLambdaBasicExecutionRole]": (
        "AWSLambdaBasicExecutionRole only allows writing the function's own CloudWatch logs; it is "
        "the AWS-maintained minimum for any Lambda function."
    ),
    "AwsSolutions-IAM5[Resource::*]": (
        "Only actions without resource-level permissions use '*': X-Ray PutTraceSegments/"
        "PutTelemetryRecords (active tracing); the Step Functions task-token actions "
        "SendTaskSuccess/SendTaskFailure/SendTaskHeartbeat, which take a task token, not an ARN; "
        "the CloudWatch Logs vended-delivery actions Step Functions logging needs; and "
        "ecr:GetAuthorizationToken for pulling the bridge image (Service Authorization Reference)."
    ),
    "AwsSolutions-L1": (
        "Python 3.12 is pinned on purpose: the dependency bundle is built from cp312 aarch64 "
        "wheels (infra/cdk/callflow_infra/bundle.py); moving the runtime means rebuilding it."
    ),
    "AwsSolutions-APIG4": (
        "Every route authenticates in the application, in the way its caller supports: Zoho sends "
        "a shared-secret header, Infobip Basic auth plus a secret path segment, ElevenLabs an HMAC "
        "signature over the raw body, the status route a bearer token; /health and the OpenAPI "
        "document are public by design. No API Gateway authorizer can verify these."
    ),
    "AwsSolutions-ECS2": (
        "The environment carries only non-secret settings (table name, secret ARN, provider base "
        "URLs, timeouts); every secret is read at runtime from Secrets Manager."
    ),
    "AwsSolutions-EC23": (
        "Infobip connects the media-stream WebSocket from its own (unpublished, changing) "
        "addresses; port 443 must be reachable from the internet. Each stage can narrow it with "
        "bridge_ingress_cidr, and the bridge rejects any connection without the path secret and "
        "the per-session token."
    ),
    "AwsSolutions-ELB2": (
        "ALB access logs record a WebSocket only when it closes and would need an S3 bucket with "
        "an ELB log-delivery policy, which requires a fixed region; the bridge logs every call "
        "(session, durations, end reason) to CloudWatch instead."
    ),
    "AwsSolutions-IAM5[campaign-items]": (
        "The campaign bucket holds only campaigns' items, under campaigns/<id>/ with ids made at "
        "run time; each grant names its actions (GetObject, and PutObject for the enumeration "
        "only) on that prefix of this one bucket."
    ),
    "AwsSolutions-IAM5[executions]": (
        "Execution names are made at run time: the campaign machine follows the call workflow's "
        "executions it starts (startExecution.sync:2 describes them, and stops them when its "
        "item is stopped) and its own Distributed Map's child executions; the API stops a "
        "campaign's execution. Each statement names one state machine's executions."
    ),
    "AwsSolutions-IAM5[recordings-prefix]": (
        "Recordings are keyed by session id, known only at run time: the bridge may put, and the "
        "writeback get, any object under the recordings prefix and nothing else in the bucket."
    ),
    "AwsSolutions-S1": (
        "The campaign and recordings buckets are read and written only by this stack's functions, "
        "bridge and campaign state machine, through their roles (every call in CloudTrail, every "
        "step on the session timeline and in their logs); their objects expire by lifecycle "
        "rule. Server access logs would need a second bucket and add nothing to that."
    ),
    "AwsSolutions-IAM5[task-protection]": (
        "Task scale-in protection is requested by each bridge task for itself; ECS task ARNs are "
        "only known at run time, so the statement is scoped to tasks of this cluster."
    ),
}


def acknowledge(construct: IConstruct, *rule_ids: str, finding: str | None = None) -> None:
    """Accept ``rule_ids`` on ``construct`` with their reasons from :data:`REASONS`.

    ``finding`` turns a generic key (``AwsSolutions-IAM5[task-protection]``) into the concrete
    finding id cdk-nag reports (``AwsSolutions-IAM5[Resource::...]``).
    """
    for rule_id in rule_ids:
        reason = REASONS[rule_id]
        reported = rule_id if finding is None else f"{rule_id.split('[', 1)[0]}[{finding}]"
        Validations.of(construct).acknowledge(Acknowledgment(id=reported, reason=reason))
