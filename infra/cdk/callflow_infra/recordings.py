"""The recordings bucket: call recordings the bridge stores and the writeback attaches to Zoho.

Encrypted at rest with S3-managed keys (every object is also put with ``AES256``), reachable only
over TLS, never public, bucket-owner objects only, and each recording expires after the stage's
``recording_retention_days`` (a lifecycle rule on the recordings prefix). The bridge may only put
objects under that prefix and the writeback may only get them (see :meth:`Recordings.grant`).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct


class Recordings(Construct):
    """The bucket, its lifecycle, and least-privilege grants on its prefix."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        retention_days: int,
        removal: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        if retention_days < 1:
            raise ValueError(f"recording_retention_days must be at least 1, got {retention_days}")
        self.prefix = prefix
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireRecordings",
                    prefix=prefix,
                    expiration=Duration.days(retention_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=removal,
        )

    @property
    def nag_objects_pattern(self) -> str:
        """How cdk-nag prints :attr:`objects` (for the acknowledgment in the stack)."""
        logical = Stack.of(self).get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]
        return f"<{logical}.Arn>/{self.prefix}*"

    @property
    def objects(self) -> str:
        """The ARN pattern of every recording (the prefix's objects)."""
        return self.bucket.arn_for_objects(f"{self.prefix}*")

    def grant(self, principal: iam.IGrantable, action: str) -> None:
        """Allow ``principal`` one object action (``s3:PutObject``, ``s3:GetObject``) under the
        recordings prefix, nothing else."""
        principal.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=[action], resources=[self.objects])
        )
