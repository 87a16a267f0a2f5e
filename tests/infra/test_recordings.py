"""The recordings bucket: encrypted, TLS only, private, expiring; the bridge may only put under
the recordings prefix and the writeback may only get."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, RemovalPolicy, Stack

from callflow_infra.recordings import Recordings

from .cfn import actions_of, resources_of
from .conftest import Synthesized


def bucket(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    logical = synth.logical_id(synth.stack.recordings.bucket)
    return logical, synth.resources[logical]["Properties"]


def test_the_bucket_is_encrypted_private_and_expires_recordings(dev: Synthesized) -> None:
    _, props = bucket(dev)
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    [lifecycle] = props["LifecycleConfiguration"]["Rules"]
    assert lifecycle["Status"] == "Enabled"
    assert lifecycle["Prefix"] == "recordings/"
    assert lifecycle["ExpirationInDays"] == 90
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_the_bucket_refuses_requests_without_tls(dev: Synthesized) -> None:
    logical, _ = bucket(dev)
    [policy] = [
        r
        for r in dev.of_type("AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"] == {"Ref": logical}
    ]
    [deny] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def recording_grants(synth: Synthesized) -> dict[str, list[str]]:
    """Role logical id -> the actions its policies allow on the recordings bucket's objects."""
    logical, _ = bucket(synth)
    grants: dict[str, list[str]] = {}
    for policy in synth.of_type("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            resources = resources_of(statement)
            if not any(f"<{logical}>" in r for r in resources):
                continue
            assert resources == [f"<{logical}>/recordings/*"]
            for role in policy["Properties"]["Roles"]:
                grants.setdefault(role["Ref"], []).extend(actions_of(statement))
    return grants


def test_only_the_bridge_puts_and_only_the_writeback_gets(dev: Synthesized) -> None:
    grants = recording_grants(dev)
    bridge_role = dev.logical_id(dev.stack.bridge.task_definition.task_role)
    writeback = dev.stack.functions.by_module["write_back"]
    assert writeback.role is not None
    writeback_role = dev.logical_id(writeback.role)
    assert grants == {bridge_role: ["s3:PutObject"], writeback_role: ["s3:GetObject"]}


def test_the_bucket_is_named_to_every_part(dev: Synthesized) -> None:
    logical, _ = bucket(dev)
    functions = dev.of_type("AWS::Lambda::Function").values()
    for function in functions:
        env = function["Properties"]["Environment"]["Variables"]
        assert env["CALLFLOW_RECORDING_BUCKET"] == {"Ref": logical}
    [task] = dev.of_type("AWS::ECS::TaskDefinition").values()
    [container] = task["Properties"]["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["CALLFLOW_RECORDING_BUCKET"] == {"Ref": logical}


def test_a_retention_below_a_day_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Recordings(
            Stack(App(), "s"),
            "r",
            prefix="recordings/",
            retention_days=0,
            removal=RemovalPolicy.DESTROY,
        )
