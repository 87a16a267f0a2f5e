"""The Lambda bundle: aarch64 CPython 3.12 wheels plus the project's code, cached by pins."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from callflow_infra import bundle as bundle_module
from callflow_infra.bundle import BundleError, build_lambda_bundle, runtime_requirements

from .conftest import CDK_DIR, REPO_ROOT

CACHE = CDK_DIR / ".bundle"


def test_requirements_are_the_pinned_project_dependencies() -> None:
    requirements = runtime_requirements(REPO_ROOT / "pyproject.toml")
    assert "fastapi==0.165.0" in requirements
    assert all("==" in r for r in requirements)
    assert not any(r.startswith(("moto", "aws-cdk-lib", "websockets")) for r in requirements)


def test_bundle_holds_aarch64_cp312_binaries_and_the_code() -> None:
    built = build_lambda_bundle(REPO_ROOT, CACHE)
    assert (built.path / "functions" / "api.py").is_file()
    assert (built.path / "functions" / "workflow.asl.json").is_file()
    assert (built.path / "callflow" / "config.py").is_file()
    assert not (built.path / "callflow" / "sandbox").exists()
    binaries = [p.name for p in (built.path / "pydantic_core").glob("*.so")]
    assert binaries and all("cpython-312-aarch64-linux-gnu" in name for name in binaries)
    assert not list(built.path.rglob("*.wav"))


def test_bundle_carries_bytecode_for_the_runtime_python() -> None:
    """Lambda's code directory is read-only: without bytecode every cold start compiles."""
    python = bundle_module.runtime_python()
    if python is None:
        pytest.skip("no CPython 3.12 on this machine to compile the bundle's bytecode with")
    built = build_lambda_bundle(REPO_ROOT, CACHE)
    modules = list(built.path.rglob("*.py"))
    caches = list(built.path.rglob("*.pyc"))
    assert all(p.name.endswith(".cpython-312.pyc") for p in caches)
    assert len(caches) == len(modules)
    api = built.path / "functions" / "__pycache__" / "api.cpython-312.pyc"
    header = api.read_bytes()[:16]
    magic = subprocess.run(  # noqa: S603 - the interpreter the bundle was compiled with
        [
            python,
            "-c",
            "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert header[:4].hex() == magic
    # Flags 0b01: hash-based and unchecked, so the zip's timestamps do not matter.
    assert int.from_bytes(header[4:8], "little") == 1


def test_without_a_runtime_python_the_bundle_is_built_from_source_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(bundle_module.BUNDLE_PYTHON_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no python3.12 on it
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))  # and no pyenv versions
    bundle_module.runtime_python.cache_clear()
    try:
        with pytest.warns(UserWarning, match="no bytecode"):
            assert bundle_module.runtime_python() is None
    finally:
        bundle_module.runtime_python.cache_clear()


def test_a_bundle_python_of_another_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bundle_module.BUNDLE_PYTHON_ENV, sys.executable)  # the 3.11 running tests
    bundle_module.runtime_python.cache_clear()
    try:
        with pytest.raises(BundleError, match=r"is not a CPython 3\.12"):
            bundle_module.runtime_python()
    finally:
        bundle_module.runtime_python.cache_clear()


def test_second_build_reuses_the_cache_without_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    first = build_lambda_bundle(REPO_ROOT, CACHE)

    def no_pip(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        raise AssertionError("pip ran although the pins did not change")

    monkeypatch.setattr(subprocess, "run", no_pip)
    again = build_lambda_bundle(REPO_ROOT, CACHE)
    assert again == first


def test_code_change_changes_the_asset_hash(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "functions").mkdir(parents=True)
    (repo / "pyproject.toml").write_bytes((REPO_ROOT / "pyproject.toml").read_bytes())
    (repo / "functions" / "api.py").write_text("VALUE = 1\n")
    cache = tmp_path / "cache"
    deps = bundle_module.dependencies_dir(REPO_ROOT, CACHE)
    (cache / deps.name).mkdir(parents=True)  # same pins: an (empty) cached install to reuse
    first = build_lambda_bundle(repo, cache)
    (repo / "functions" / "api.py").write_text("VALUE = 2\n")
    second = build_lambda_bundle(repo, cache)
    assert first.asset_hash != second.asset_hash
    assert (second.path / "functions" / "api.py").read_text() == "VALUE = 2\n"


def test_pip_failure_is_reported_with_pips_reason(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "0"\ndependencies = ["no-such-dist-callflow==0.0.0"]\n'
    )
    with pytest.raises(BundleError, match="no-such-dist-callflow"):
        bundle_module.dependencies_dir(repo, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("deps-*"))


def _imports(path: Path) -> set[str]:
    """Every absolute import in a module, those deferred into functions included.

    Handlers import some modules where they are used (to keep the cold start short): those run
    on Lambda just the same, so they must be in the bundle too.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _project_file(name: str) -> Path | None:
    base = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_every_module_a_handler_imports_is_in_the_bundle() -> None:
    built = build_lambda_bundle(REPO_ROOT, CACHE)
    pending = [f"functions.{p.stem}" for p in (REPO_ROOT / "functions").glob("*.py")]
    seen: set[str] = set()
    third_party: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        top = name.split(".")[0]
        if top in ("callflow", "functions"):
            source = _project_file(name)
            if source is not None:
                assert (built.path / source.relative_to(REPO_ROOT)).is_file(), name
                pending.extend(_imports(source))
        elif top not in sys.stdlib_module_names and top != "__future__":
            third_party.add(top)
    assert {"callflow.store", "callflow.config", "functions.api"} <= seen
    assert {"fastapi", "mangum", "aws_lambda_powertools"} <= third_party
    missing = sorted(
        top
        for top in third_party
        if not (built.path / top).is_dir() and not (built.path / f"{top}.py").is_file()
    )
    assert missing == [], f"imported by a handler but not bundled: {missing}"
