"""The state machines' ASL files, one each for the CDK stack and the local stack alike: the call
workflow (one execution per call session) and the campaign (enumerate, a Distributed Map running
the call workflow per record, finish).

They ship as package data of :mod:`callflow_functions`, so an installed wheel finds them wherever
it runs. ``${...}Arn`` placeholders name the task functions (and, in the campaign's, the call
workflow); each deployment substitutes its own.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

ASL_FILE = "workflow.asl.json"
CAMPAIGN_ASL_FILE = "campaign.asl.json"


def definition_file(name: str = ASL_FILE) -> Traversable:
    """The ASL file inside the installed package (the call workflow's by default)."""
    return resources.files("callflow_functions").joinpath(name)


def definition_text(name: str = ASL_FILE) -> str:
    """The ASL file's text, placeholders unreplaced."""
    return definition_file(name).read_text(encoding="utf-8")
