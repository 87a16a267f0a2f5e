"""Reading synthesized CloudFormation the way a reviewer would: joins flattened, refs named."""

from __future__ import annotations

from typing import Any


def flatten(value: Any) -> str:
    """A string property as text, with ``Ref``/``GetAtt`` shown as ``<LogicalId>``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return str(separator).join(flatten(p) for p in parts)
        if "Ref" in value:
            return f"<{value['Ref']}>"
        if "Fn::GetAtt" in value:
            return f"<{value['Fn::GetAtt'][0]}>"
    return f"<{value!r}>"


def statements(resources: dict[str, Any], role_logical_id: str) -> list[dict[str, Any]]:
    """Every IAM statement of the policies attached to a role."""
    found: list[dict[str, Any]] = []
    for resource in resources.values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        roles = resource["Properties"].get("Roles", [])
        if {"Ref": role_logical_id} in roles:
            found.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return found


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def resources_of(statement: dict[str, Any]) -> list[str]:
    resource = statement["Resource"]
    items = resource if isinstance(resource, list) else [resource]
    return [flatten(r) for r in items]
