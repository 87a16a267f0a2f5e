"""The Lambda code asset, built without Docker.

The runtime dependencies (``[project].dependencies`` of ``pyproject.toml``) are installed as
manylinux aarch64 wheels for CPython 3.12 with ``pip install --platform ... --only-binary=:all:``,
which gives the same files a Docker build would, on any machine with network access to PyPI. The
result is cached under ``infra/cdk/.bundle/`` keyed by a hash of ``pyproject.toml``, so only a
change of the pins downloads anything; the project's own code (``callflow/``, ``functions/``,
``config/``) is laid over a hard-linked copy of the cached dependencies at every synth, which takes
well under a second.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

PLATFORM = "manylinux2014_aarch64"
PYTHON_VERSION = "3.12"
CODE_PACKAGES = ("callflow", "functions", "config")
"""Laid out as in the repository: settings find ``config/mapping.yaml`` next to ``callflow/``."""
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.wav", "sandbox", "local")


class BundleError(RuntimeError):
    """The dependencies could not be installed; the message carries pip's own explanation."""


@dataclass(frozen=True)
class LambdaBundle:
    """A ready asset directory and the hash that identifies its content."""

    path: Path
    asset_hash: str


def runtime_requirements(pyproject: Path) -> list[str]:
    """The Lambda runtime's pinned requirements, exactly as ``pyproject.toml`` lists them."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    deps = data.get("project", {}).get("dependencies")
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise BundleError(f"{pyproject}: [project].dependencies must be a list of strings")
    return list(deps)


def dependencies_dir(repo_root: Path, cache_root: Path) -> Path:
    """The installed dependencies for the current pins, built once and then reused."""
    pyproject = repo_root / "pyproject.toml"
    key = hashlib.sha256(pyproject.read_bytes()).hexdigest()[:16]
    target = cache_root / f"deps-{PLATFORM}-cp{PYTHON_VERSION.replace('.', '')}-{key}"
    if target.is_dir():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    partial = cache_root / f".partial-{uuid.uuid4().hex}"
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--platform",
        PLATFORM,
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        "--target",
        str(partial),
        *runtime_requirements(pyproject),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise BundleError(f"pip could not install the Lambda dependencies:\n{result.stderr}")
    try:
        partial.rename(target)
    except OSError:
        # Another synth finished the same build first; its copy is identical.
        shutil.rmtree(partial, ignore_errors=True)
    return target


def build_lambda_bundle(repo_root: Path, cache_root: Path) -> LambdaBundle:
    """Dependencies plus the project's code, in one directory Lambda can run from."""
    deps = dependencies_dir(repo_root, cache_root)
    digest = hashlib.sha256(deps.name.encode())
    for package in CODE_PACKAGES:
        if not (repo_root / package).is_dir():
            continue
        for path in sorted(_code_files(repo_root / package)):
            digest.update(str(path.relative_to(repo_root)).encode())
            digest.update(path.read_bytes())
    asset_hash = digest.hexdigest()
    bundle = cache_root / f"lambda-{asset_hash[:16]}"
    if bundle.is_dir():
        return LambdaBundle(bundle, asset_hash)
    partial = cache_root / f".partial-{uuid.uuid4().hex}"
    shutil.copytree(deps, partial, copy_function=_link_or_copy)
    for package in CODE_PACKAGES:
        if not (repo_root / package).is_dir():
            continue
        shutil.copytree(repo_root / package, partial / package, ignore=_IGNORED)
    try:
        partial.rename(bundle)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
    _prune(cache_root, keep=bundle.name)
    return LambdaBundle(bundle, asset_hash)


def _code_files(package: Path) -> list[Path]:
    files: list[Path] = []
    for root, dirs, names in os.walk(package):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "sandbox", "local")]
        files.extend(Path(root) / n for n in names if not n.endswith((".pyc", ".pyo", ".wav")))
    return files


def _link_or_copy(src: str, dst: str) -> str:
    """Hard links make the copy of the cached dependencies nearly free."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def _prune(cache_root: Path, keep: str) -> None:
    """Keep only the newest few code bundles; the dependency caches stay."""
    bundles = sorted(
        (p for p in cache_root.glob("lambda-*") if p.name != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in bundles[2:]:
        shutil.rmtree(old, ignore_errors=True)
