"""Per-stage settings of the stack, read from the CDK context (``cdk.json``, ``-c stage=..``).

Everything that differs between a developer's sandbox and production lives in one context block
per stage, so a deployment is reproducible from the repository alone and ``cdk synth`` needs no
AWS account: nothing here is looked up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callflow.config import Settings

STAGES_KEY = "callflow:stages"
STAGE_NAMES = ("dev", "prod")

# Never set from context: these come from the stack (table, secret, state machine) or the secret.
_MANAGED_SETTINGS = frozenset(
    {"table_name", "secrets_id", "state_machine_arn", "aws_region", "flows_dir"}
)
_SECRET_SETTINGS = frozenset(
    name for name, info in Settings.model_fields.items() if "SecretStr" in repr(info.annotation)
)


class StageConfigError(ValueError):
    """The stage name or its context block is wrong; the message says what to fix."""


@dataclass(frozen=True)
class StageConfig:
    """One stage's knobs. Defaults suit a small dev deployment."""

    name: str
    nat_gateways: int = 1
    bridge_min_tasks: int = 1
    bridge_max_tasks: int = 4
    bridge_calls_per_task: int = 20
    bridge_cpu: int = 1024
    bridge_memory_mib: int = 2048
    bridge_domain_name: str = ""
    bridge_certificate_arn: str = ""
    bridge_ingress_cidr: str = "0.0.0.0/0"
    alarm_email: str = ""
    log_retention_days: int = 30
    removal_policy: str = "destroy"
    api_snap_start: bool = False
    """SnapStart for the API function (docs/operations.md, "Cold starts and SnapStart"): the HTTP
    API then invokes an alias of its latest published version, restored from a snapshot taken
    after the route modules were imported."""
    flows_dir: str = ""
    """A directory of flow files, relative to the repository (``config/flows``): shipped in the
    Lambda bundle, validated at synth (a file that does not load stops it), and named by
    ``CALLFLOW_FLOWS_DIR``. Empty: the one flow built from the settings."""
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def retain(self) -> bool:
        """Whether the table, the secret and the log groups outlive the stack when it is deleted."""
        return self.removal_policy == "retain"

    def setting(self, name: str) -> str:
        """A setting's value for the stage: its own, or the :class:`Settings` default."""
        if name in self.settings:
            return self.settings[name]
        return str(Settings.model_fields[name].default)

    @property
    def max_call_seconds(self) -> int:
        """The longest a call can last: Infobip's max duration plus its connect timeout."""
        defaults = Settings.model_fields
        duration = int(
            self.settings.get("infobip_max_duration", defaults["infobip_max_duration"].default)
        )
        connect = int(
            self.settings.get(
                "infobip_connect_timeout", defaults["infobip_connect_timeout"].default
            )
        )
        return duration + connect

    def environment(self) -> dict[str, str]:
        """The non-secret settings as ``CALLFLOW_*`` environment variables."""
        return {f"CALLFLOW_{name.upper()}": value for name, value in sorted(self.settings.items())}


def check_flows(config: StageConfig, repo_root: Path) -> None:
    """Load the stage's flow files with its settings, as the functions will: a file that does
    not validate stops the synth with its file, line and mistake."""
    if not config.flows_dir:
        return
    from callflow.flows.errors import FlowConfigError
    from callflow.flows.loading import load_flows

    settings = Settings.model_validate(
        {**config.settings, "flows_dir": str(repo_root / config.flows_dir)}
    )
    try:
        load_flows(settings)
    except FlowConfigError as error:
        raise StageConfigError(f"stage {config.name!r}: {error}") from None


def load_stage(context: Any, stage: str) -> StageConfig:
    """The named stage's config from the context value under ``callflow:stages``.

    Unknown keys and secret settings are refused, not ignored: a typo in ``cdk.json`` or a password
    pasted into it should stop the synth, not surface as a silent default in production.
    """
    if not isinstance(context, dict):
        raise StageConfigError(f"cdk.json context needs a {STAGES_KEY!r} object with the stages")
    if stage not in context:
        known = ", ".join(sorted(context)) or "none"
        raise StageConfigError(f"unknown stage {stage!r}; cdk.json defines: {known}")
    block = context[stage]
    if not isinstance(block, dict):
        raise StageConfigError(f"stage {stage!r} must be a JSON object")
    known_keys = set(StageConfig.__dataclass_fields__) - {"name"}
    unknown = sorted(set(block) - known_keys)
    if unknown:
        raise StageConfigError(
            f"stage {stage!r}: unknown keys {unknown}; known: {sorted(known_keys)}"
        )
    raw_settings = block.get("settings", {})
    if not isinstance(raw_settings, dict):
        raise StageConfigError(f"stage {stage!r}: 'settings' must be a JSON object")
    settings = {str(k): str(v) for k, v in raw_settings.items()}
    _check_settings(stage, settings)
    values = {k: v for k, v in block.items() if k != "settings"}
    try:
        config = StageConfig(name=stage, settings=settings, **values)
    except TypeError as exc:  # pragma: no cover - guarded by the key check above
        raise StageConfigError(f"stage {stage!r}: {exc}") from exc
    _check_types(config)
    return config


def _check_settings(stage: str, settings: dict[str, str]) -> None:
    fields = Settings.model_fields
    for name in settings:
        if name not in fields:
            raise StageConfigError(f"stage {stage!r}: {name!r} is not a callflow setting")
        if name in _SECRET_SETTINGS:
            raise StageConfigError(
                f"stage {stage!r}: {name!r} is a secret; put it in the Secrets Manager secret, "
                "not in cdk.json"
            )
        if name in _MANAGED_SETTINGS:
            raise StageConfigError(f"stage {stage!r}: {name!r} is set by the stack itself")
    # Validate values the way the running code will, so a bad value fails the synth.
    Settings.model_validate({k: v for k, v in settings.items()})


def _check_types(config: StageConfig) -> None:
    for name, spec in StageConfig.__dataclass_fields__.items():
        value = getattr(config, name)
        expected = {"int": int, "str": str, "bool": bool}.get(str(spec.type))
        if expected is not None and (type(value) is not expected):
            raise StageConfigError(
                f"stage {config.name!r}: {name!r} must be {expected.__name__}, got {value!r}"
            )
    if config.removal_policy not in ("destroy", "retain"):
        raise StageConfigError(
            f"stage {config.name!r}: removal_policy must be 'destroy' or 'retain'"
        )
    if not 1 <= config.bridge_min_tasks <= config.bridge_max_tasks:
        raise StageConfigError(
            f"stage {config.name!r}: need 1 <= bridge_min_tasks <= bridge_max_tasks"
        )
