"""The call workflow's state machine, one ASL file for the CDK stack and the local stack alike.

It ships as package data of :mod:`callflow_functions`, so an installed wheel finds it wherever it
runs. ``${...}Arn`` placeholders name the task functions; each deployment substitutes its own.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

ASL_FILE = "workflow.asl.json"


def definition_file() -> Traversable:
    """The ASL file inside the installed package."""
    return resources.files("callflow_functions").joinpath(ASL_FILE)


def definition_text() -> str:
    """The ASL file's text, placeholders unreplaced."""
    return definition_file().read_text(encoding="utf-8")
