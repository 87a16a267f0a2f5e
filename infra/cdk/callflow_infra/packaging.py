"""What each deployable carries: an allow-list of the project's packages, and the locked
requirements it installs.

The runtime lives under ``src/`` as three packages: ``callflow`` (the shared library),
``callflow_functions`` (the Lambda entry points) and ``callflow_bridge`` (the audio bridge). The
development tools (``tools/callflow_dev``) are in none of the lists, so no deployable can carry
them. Each requirements file is an export of ``uv.lock`` with hashes (``make lock`` refreshes
them; a test fails when one is stale), so the Lambda bundle, the bridge image and a developer's
``.venv`` install the very same versions.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE_ROOT = "src"


@dataclass(frozen=True)
class Deployable:
    """One thing that is deployed: the packages it carries and the requirements it installs."""

    name: str
    packages: tuple[str, ...]
    """Top-level packages under ``src/``, copied whole; nothing else of the repository goes."""
    requirements: str
    """The ``uv.lock`` export it installs, relative to the repository root."""
    entry_modules: tuple[str, ...]
    """Modules the platform starts; every module they import must be in ``packages``."""


LAMBDA = Deployable(
    name="lambda",
    packages=("callflow", "callflow_functions"),
    requirements="requirements/lambda.txt",
    entry_modules=(
        "callflow_functions.api",
        "callflow_functions.prepare",
        "callflow_functions.admit",
        "callflow_functions.place_call",
        "callflow_functions.plan_retry",
        "callflow_functions.await_analysis",
        "callflow_functions.fetch_analysis",
        "callflow_functions.write_back",
        "callflow_functions.mark_failed",
        "callflow_functions.sweep_media_configs",
        "callflow_functions.execution_stopped",
        "callflow_functions.campaign_enumerate",
        "callflow_functions.campaign_item",
        "callflow_functions.campaign_finish",
    ),
)
BRIDGE = Deployable(
    name="bridge",
    packages=("callflow", "callflow_bridge"),
    requirements="requirements/bridge.txt",
    entry_modules=("callflow_bridge.__main__",),
)
BRIDGE_DOCKERFILE = "infra/bridge.Dockerfile"
WORKFLOW_DEFINITION = f"{SOURCE_ROOT}/callflow_functions/workflow.asl.json"
"""The state machine: package data of the functions, read by the CDK stack as a file."""
CAMPAIGN_DEFINITION = f"{SOURCE_ROOT}/callflow_functions/campaign.asl.json"
"""The campaign state machine, likewise."""
FLOWS_IN_BUNDLE = "callflow_flows"
"""Where a stage's flow files (its ``flows_dir``, a directory of the repository) go in the
Lambda bundle; the stack points ``CALLFLOW_FLOWS_DIR`` at it. Only ``*.yaml`` / ``*.yml`` files
and what they name (a mapping file beside them) travel: the whole directory is copied."""


def bridge_build_context() -> list[str]:
    """The Docker build context as an allow-list (``.dockerignore`` syntax): everything is left
    out except the Dockerfile, the bridge's requirements and its packages (bytecode excluded)."""
    keep = [BRIDGE_DOCKERFILE, BRIDGE.requirements]
    keep += [f"{SOURCE_ROOT}/{package}" for package in BRIDGE.packages]
    return ["*", *(f"!{path}" for path in keep), "**/__pycache__", "**/*.pyc"]
