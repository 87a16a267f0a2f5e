"""Validation of ElevenLabs agent WebSocket messages against the official AsyncAPI contract.

The contract (``callflow_dev/schemas/elevenlabs/agent.asyncapi.json``, extracted from ElevenLabs'
published file) is the only authority on message names and fields; the scripted agent checks every
frame the bridge sends against it, so a misspelt field fails a test here instead of failing a live
call.

Two details of the file need care:

- Its schemas use OpenAPI's ``nullable: true``, which JSON Schema does not know. Each such schema
  is rewritten to ``anyOf: [{type: null}, <schema>]`` before validation, so ``null`` is accepted
  exactly where the contract allows it (also next to a ``$ref``, whose siblings draft 7 ignores).
- In this file ``subscribe`` lists what the *client* sends and ``publish`` what the *server*
  sends (its own comments say so). Messages are told apart by their ``type`` constant; the user
  audio chunk has no ``type`` and is recognised by its required ``user_audio_chunk`` field.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from callflow_dev import schemas

CONTRACT = ("elevenlabs", "agent.asyncapi.json")
"""The extracted contract in :mod:`callflow_dev.schemas`."""
_BASE_URI = "urn:callflow:elevenlabs-agent-asyncapi"
_CHANNEL = "AgentMessages"


class ContractError(ValueError):
    """The AsyncAPI file does not have the shape this module relies on."""


def _nullable_to_anyof(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable_to_anyof(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_to_anyof(value) for key, value in node.items()}
    if converted.pop("nullable", False) is True:
        return {"anyOf": [{"type": "null"}, converted]}
    return converted


def _is_base64(value: object) -> bool:
    if not isinstance(value, str):
        return True
    base64.b64decode(value, validate=True)
    return True


_FORMATS = FormatChecker()
_FORMATS.checks("base64", raises=(binascii.Error, ValueError))(_is_base64)


@dataclass(frozen=True)
class MessageKind:
    """One message of the contract: its component name, payload schema and ``type`` constant."""

    name: str
    schema_ref: str
    type_const: str | None
    required: tuple[str, ...]


class AgentContract:
    """The parsed contract: which messages each side may send, and a validator for each."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = _nullable_to_anyof(dict(document))
        resource = Resource.from_contents(self._document, default_specification=DRAFT7)
        self._registry: Registry[Any] = Registry().with_resource(_BASE_URI, resource)
        try:
            channel = self._document["channels"][_CHANNEL]
            self.client_kinds = self._kinds(channel["subscribe"]["message"]["oneOf"])
            self.server_kinds = self._kinds(channel["publish"]["message"]["oneOf"])
        except (KeyError, TypeError) as error:
            raise ContractError(f"contract has no {_CHANNEL} channel messages: {error}") from error
        self._validators: dict[str, Draft7Validator] = {}

    def _resolve_local(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ContractError(f"only local $refs are supported, got {ref!r}")
        node: Any = self._document
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def _kinds(self, refs: list[Mapping[str, str]]) -> list[MessageKind]:
        kinds = []
        for entry in refs:
            message_ref = entry["$ref"]
            message = self._resolve_local(message_ref)
            schema_ref = message["payload"]["$ref"]
            schema = self._resolve_local(schema_ref)
            type_schema = schema.get("properties", {}).get("type", {})
            kinds.append(
                MessageKind(
                    name=message_ref.rsplit("/", 1)[-1],
                    schema_ref=schema_ref,
                    type_const=type_schema.get("const"),
                    required=tuple(schema.get("required", ())),
                )
            )
        return kinds

    def client_types(self) -> set[str]:
        """The ``type`` constants of the messages a client may send."""
        return {kind.type_const for kind in self.client_kinds if kind.type_const}

    def server_types(self) -> set[str]:
        """The ``type`` constants of the messages the server may send."""
        return {kind.type_const for kind in self.server_kinds if kind.type_const}

    def has_server_type(self, type_name: str) -> bool:
        """Whether the contract lets the server send a message of this ``type``."""
        return type_name in self.server_types()

    def schema_errors(self, schema_ref: str, instance: object) -> list[str]:
        """Errors of ``instance`` against one schema of the file (``#/components/schemas/X``)."""
        validator = self._validators.get(schema_ref)
        if validator is None:
            validator = Draft7Validator(
                {"$ref": _BASE_URI + schema_ref},
                registry=self._registry,
                format_checker=_FORMATS,
            )
            self._validators[schema_ref] = validator
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        return [f"{_path(error.absolute_path)}: {error.message}" for error in errors]

    def validate_client(self, message: object) -> list[str]:
        """Contract errors of a message a client (the bridge) sent; empty when it is valid."""
        return self._validate(message, self.client_kinds, "client")

    def validate_server(self, message: object) -> list[str]:
        """Contract errors of a message the server (the agent) sends; empty when it is valid."""
        return self._validate(message, self.server_kinds, "server")

    def _validate(self, message: object, kinds: list[MessageKind], side: str) -> list[str]:
        if not isinstance(message, dict):
            return [f"a {side} message must be a JSON object, got {type(message).__name__}"]
        type_name = message.get("type")
        if type_name is None:
            untyped = [kind for kind in kinds if kind.type_const is None]
            matching = [k for k in untyped if all(field in message for field in k.required)]
            if not matching:
                return [
                    f"{side} message has no 'type' and matches no untyped message of the contract"
                ]
            return self.schema_errors(matching[0].schema_ref, message)
        typed = [kind for kind in kinds if kind.type_const == type_name]
        if not typed:
            return [f"type: {type_name!r} is not a {side} message of the contract"]
        return self.schema_errors(typed[0].schema_ref, message)


def _path(parts: Any) -> str:
    text = "/".join(str(part) for part in parts)
    return text or "<message>"


def load_contract(document: Mapping[str, Any] | None = None) -> AgentContract:
    """The contract of an AsyncAPI document (the extracted ElevenLabs one by default)."""
    if document is None:
        document = schemas.load(*CONTRACT)
    if not isinstance(document, Mapping):
        raise ContractError("not an AsyncAPI document")
    return AgentContract(document)


@lru_cache(maxsize=1)
def contract() -> AgentContract:
    """The committed contract, parsed once per process."""
    return load_contract()


def validate_client_message(message: object) -> list[str]:
    """Errors of a message the client (the bridge) sent; empty when it conforms."""
    return contract().validate_client(message)


def validate_server_message(message: object) -> list[str]:
    """Errors of a message the server (the agent) sent; empty when it conforms."""
    return contract().validate_server(message)
