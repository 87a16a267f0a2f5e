"""The Lambda bundle: exactly the functions' runtime, from the lock, as aarch64 CPython 3.12."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from callflow_infra import bundle as bundle_module
from callflow_infra.bundle import BundleError, build_lambda_bundle
from callflow_infra.packaging import LAMBDA

from .conftest import CDK_DIR, REPO_ROOT
from .imports import closure
from .test_packaging import DEVELOPMENT_DISTRIBUTIONS, locked_names

CACHE = CDK_DIR / ".bundle"


def test_bundle_holds_aarch64_cp312_binaries_and_the_functions_code() -> None:
    built = build_lambda_bundle(REPO_ROOT, CACHE)
    assert (built.path / "callflow_functions" / "api.py").is_file()
    assert (built.path / "callflow_functions" / "workflow.asl.json").is_file()
    assert (built.path / "callflow" / "defaults" / "mapping.yaml").is_file()
    binaries = [p.name for p in (built.path / "pydantic_core").glob("*.so")]
    assert binaries and all("cpython-312-aarch64-linux-gnu" in name for name in binaries)


def test_bundle_carries_no_development_code_and_nothing_unlocked() -> None:
    built = build_lambda_bundle(REPO_ROOT, CACHE)
    top = {p.name for p in built.path.iterdir()}
    assert not top & {"callflow_dev", "callflow_bridge", "tests", "bench", "tools", "src"}
    assert not list(built.path.rglob("*.wav"))
    installed = {
        p.name.removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("_", "-")
        for p in built.path.glob("*.dist-info")
    }
    assert installed == locked_names(LAMBDA.requirements)
    assert not installed & DEVELOPMENT_DISTRIBUTIONS


def test_every_module_a_handler_imports_is_in_the_bundle() -> None:
    built = build_lambda_bundle(REPO_ROOT, CACHE)
    reached = closure(LAMBDA.entry_modules)
    assert {"callflow.store", "callflow.config", "callflow_functions.api"} <= set(reached.modules)
    for name, source in reached.modules.items():
        assert name.split(".")[0] in LAMBDA.packages, f"a handler imports {name}"
        relative = source.relative_to(REPO_ROOT / "src")
        assert (built.path / relative).is_file(), name
    assert {"fastapi", "mangum", "aws_lambda_powertools"} <= reached.third_party
    missing = sorted(
        top
        for top in reached.third_party
        if not (built.path / top).is_dir() and not (built.path / f"{top}.py").is_file()
    )
    assert missing == [], f"imported by a handler but not bundled: {missing}"


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
    api = built.path / "callflow_functions" / "__pycache__" / "api.cpython-312.pyc"
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


def test_second_build_reuses_the_cache_without_installing(monkeypatch: pytest.MonkeyPatch) -> None:
    first = build_lambda_bundle(REPO_ROOT, CACHE)

    def no_install(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        raise AssertionError("an install ran although the lock did not change")

    monkeypatch.setattr(subprocess, "run", no_install)
    again = build_lambda_bundle(REPO_ROOT, CACHE)
    assert again == first


def _small_repo(tmp_path: Path, requirements: bytes) -> Path:
    repo = tmp_path / "repo"
    for package in LAMBDA.packages:
        (repo / "src" / package).mkdir(parents=True)
        (repo / "src" / package / "__init__.py").write_text("")
    (repo / LAMBDA.requirements).parent.mkdir(parents=True)
    (repo / LAMBDA.requirements).write_bytes(requirements)
    return repo


def test_the_cache_is_keyed_by_the_locked_requirements(tmp_path: Path) -> None:
    deps = bundle_module.dependencies_dir(REPO_ROOT, CACHE)
    repo = _small_repo(tmp_path, (REPO_ROOT / LAMBDA.requirements).read_bytes())
    assert bundle_module.dependencies_dir(repo, CACHE) == deps
    (repo / LAMBDA.requirements).write_bytes(b"# another lock\n")
    assert bundle_module.dependencies_dir(repo, tmp_path / "cache").name != deps.name


def test_code_change_changes_the_asset_hash(tmp_path: Path) -> None:
    repo = _small_repo(tmp_path, (REPO_ROOT / LAMBDA.requirements).read_bytes())
    api = repo / "src" / "callflow_functions" / "api.py"
    api.write_text("VALUE = 1\n")
    cache = tmp_path / "cache"
    deps = bundle_module.dependencies_dir(REPO_ROOT, CACHE)
    (cache / deps.name).mkdir(parents=True)  # same lock: an (empty) cached install to reuse
    first = build_lambda_bundle(repo, cache)
    api.write_text("VALUE = 2\n")
    second = build_lambda_bundle(repo, cache)
    assert first.asset_hash != second.asset_hash
    assert (second.path / "callflow_functions" / "api.py").read_text() == "VALUE = 2\n"


def test_install_failure_is_reported_with_the_installers_reason(tmp_path: Path) -> None:
    repo = _small_repo(
        tmp_path, b"no-such-dist-callflow==0.0.0 \\\n    --hash=sha256:" + b"0" * 64 + b"\n"
    )
    with pytest.raises(BundleError, match="no-such-dist-callflow"):
        bundle_module.dependencies_dir(repo, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("deps-*"))
