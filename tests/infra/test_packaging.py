"""Each deployable carries exactly its runtime, installed from the one lock.

The bridge image cannot be built here (no Docker engine), so it is checked by reading: the
Dockerfile's copies and install against the allow-list in ``callflow_infra.packaging``, the build
context the CDK asset stages, and the import closure of the bridge's entry point against what
the image installs.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from aws_cdk import IgnoreStrategy
from packaging.requirements import Requirement

from callflow_dev import lockfiles
from callflow_infra.packaging import (
    BRIDGE,
    BRIDGE_DOCKERFILE,
    LAMBDA,
    SOURCE_ROOT,
    Deployable,
    bridge_build_context,
)

from .conftest import REPO_ROOT
from .imports import closure, imports_of

#: Distributions only the development tools and tests use: no deployable may install them.
DEVELOPMENT_DISTRIBUTIONS = frozenset(
    {
        "callflow-dev",
        "moto",
        "uvicorn",
        "jsonschema",
        "pytest",
        "mypy",
        "ruff",
        "aws-cdk-lib",
        "cdk-nag",
        "flask",
        "werkzeug",
    }
)
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def locked_names(export: str) -> set[str]:
    """The distribution names an export of the lock installs (normalised)."""
    names = set()
    for line in (REPO_ROOT / export).read_text(encoding="utf-8").splitlines():
        match = _REQUIREMENT.match(line)
        if match:
            names.add(re.sub(r"[._]+", "-", match.group(1)).lower())
    return names


def test_the_exports_are_what_the_lock_says() -> None:
    assert lockfiles.stale(REPO_ROOT) == []


@pytest.mark.parametrize("export", sorted(lockfiles.EXPORTS))
def test_every_exported_requirement_is_pinned_with_hashes(export: str) -> None:
    text = (REPO_ROOT / export).read_text(encoding="utf-8")
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2].strip())
    assert entries
    for entry in entries:
        assert _REQUIREMENT.match(entry), entry
        assert "--hash=sha256:" in entry, entry


def test_the_lambda_and_the_bridge_install_only_their_own_runtime() -> None:
    functions, bridge = locked_names(LAMBDA.requirements), locked_names(BRIDGE.requirements)
    assert {"fastapi", "mangum", "aws-lambda-powertools"} <= functions
    assert {"picows", "numpy", "soxr"} <= bridge
    # The bridge speaks WebSocket through picows; websockets is the development tools' only.
    assert "websockets" not in bridge
    assert not functions & {"websockets", "picows", "numpy", "soxr", "uvloop"}
    assert not bridge & {"fastapi", "mangum", "starlette"}
    assert not (functions | bridge) & DEVELOPMENT_DISTRIBUTIONS


def _dockerfile() -> str:
    return (REPO_ROOT / BRIDGE_DOCKERFILE).read_text(encoding="utf-8")


def test_the_bridge_image_copies_the_allow_list_and_installs_the_locked_export() -> None:
    copies = re.findall(r"^COPY\s+(\S+)\s+(\S+)", _dockerfile(), flags=re.MULTILINE)
    sources = {source for source, _ in copies}
    assert sources == {BRIDGE.requirements, *(f"{SOURCE_ROOT}/{p}" for p in BRIDGE.packages)}
    install = re.search(r"pip install ([^\n\\]+)", _dockerfile())
    assert install is not None
    assert "--require-hashes" in install.group(1) and "--no-deps" in install.group(1)
    assert re.search(r'CMD \["python", "-m", "callflow_bridge"\]', _dockerfile())


def test_the_bridge_build_context_holds_only_what_the_image_copies() -> None:
    strategy = IgnoreStrategy.docker(str(REPO_ROOT), bridge_build_context())
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    sent = {path for path in tracked if not strategy.ignores(str(REPO_ROOT / path))}
    allowed = (BRIDGE_DOCKERFILE, BRIDGE.requirements)
    packages = tuple(f"{SOURCE_ROOT}/{p}/" for p in BRIDGE.packages)
    assert sent, "the build context is empty"
    assert {p for p in sent if not (p in allowed or p.startswith(packages))} == set()
    assert set(allowed) <= sent
    assert not any("callflow_dev" in p or p.startswith("tests/") for p in sent)


def needed_distributions(top_level_modules: set[str]) -> set[str]:
    """The distributions that provide these modules, with everything they require (extras and
    other platforms' markers left out): what a deployable that imports them must install."""
    provides = importlib.metadata.packages_distributions()
    pending = [d for top in top_level_modules for d in provides.get(top, [])]
    found: set[str] = set()
    while pending:
        name = pending.pop()
        normal = re.sub(r"[._]+", "-", name).lower()
        if normal in found:
            continue
        found.add(normal)
        for line in importlib.metadata.distribution(name).requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return found


@pytest.mark.parametrize("deployable", [LAMBDA, BRIDGE], ids=lambda d: d.name)
def test_each_deployable_installs_exactly_what_its_code_imports(deployable: Deployable) -> None:
    """Nothing missing, and nothing extra: each locked distribution is imported by the
    deployable's code or required by one that is. ``tzdata`` is data that ``zoneinfo`` reads
    (no import names it), so it counts wherever zoneinfo is used."""
    reached = closure(deployable.entry_modules)
    modules = set(reached.third_party)
    if any("zoneinfo" in imports_of(path) for path in reached.modules.values()):
        modules.add("tzdata")
    needed = needed_distributions(modules)
    assert locked_names(deployable.requirements) == needed


def _declared(extras: tuple[str, ...]) -> set[str]:
    """The runtime distribution's direct requirements, with the given extras."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return {re.sub(r"[._]+", "-", Requirement(line).name).lower() for line in lines}


@pytest.mark.parametrize(
    ("deployable", "extras"),
    [(LAMBDA, ("functions",)), (BRIDGE, ("bridge",))],
    ids=["lambda", "bridge"],
)
def test_what_the_code_imports_is_a_declared_dependency(
    deployable: Deployable, extras: tuple[str, ...]
) -> None:
    """A distribution the code imports directly is pinned in pyproject.toml, not only reached
    through another one's requirements (which may drop it in any release)."""
    provides = importlib.metadata.packages_distributions()
    imported = {
        re.sub(r"[._]+", "-", dist).lower()
        for top in closure(deployable.entry_modules).third_party
        for dist in provides.get(top, [])
    }
    assert imported - _declared(extras) == set()


def test_every_module_the_bridge_imports_is_in_the_image() -> None:
    reached = closure(BRIDGE.entry_modules)
    assert {"callflow_bridge.server", "callflow.config", "callflow.store"} <= set(reached.modules)
    outside = sorted(n for n in reached.modules if n.split(".")[0] not in BRIDGE.packages)
    assert outside == [], f"the bridge imports modules its image does not carry: {outside}"
    distributions = importlib.metadata.packages_distributions()
    installed = locked_names(BRIDGE.requirements)
    for top in sorted(reached.third_party):
        names = {re.sub(r"[._]+", "-", d).lower() for d in distributions.get(top, [])}
        assert names & installed, f"the bridge imports {top}, which its image does not install"


def test_the_functions_import_no_bridge_or_development_code() -> None:
    reached = closure(LAMBDA.entry_modules)
    foreign = ("callflow_bridge", "callflow_dev")
    assert not [n for n in reached.modules if n.split(".")[0] in foreign]


def test_an_installed_runtime_wheel_finds_its_data_outside_the_checkout(tmp_path: Path) -> None:
    """Package data, not checkout paths: the default mapping and the ASL come with the wheel."""
    wheels = tmp_path / "wheels"
    subprocess.run(  # noqa: S603 - uv with fixed arguments
        # sdist first, then the wheel from it, in a scratch directory: the checkout stays clean.
        [lockfiles.uv_binary(), "build", "--quiet", "--out-dir", str(wheels)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("callflow-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.startswith("callflow-")} == {
        "callflow",
        "callflow_functions",
        "callflow_bridge",
    }
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    probe = (
        "import callflow, callflow_functions.definition as d;"
        "from callflow.mapping import FieldMapping;"
        f"assert callflow.__file__.startswith({str(target)!r}), callflow.__file__;"
        "print(len(FieldMapping.load().rules), len(d.definition_text()))"
    )
    result = subprocess.run(  # noqa: S603 - this interpreter with a fixed probe
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    rules, asl = map(int, result.stdout.split())
    assert rules > 0 and asl > 1000
