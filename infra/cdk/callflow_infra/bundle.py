"""The Lambda code asset, built without Docker.

The dependencies are the Lambda's export of ``uv.lock`` (``requirements/lambda.txt``: exact
versions, every file's hash), installed as manylinux aarch64 wheels for CPython 3.12 by
``uv pip install --python-platform ... --only-binary :all: --require-hashes``, which gives the same
files a Docker build would, on any machine with network access to PyPI, and evaluates environment
markers for the target rather than for this machine. The result is cached under
``infra/cdk/.bundle/``, keyed by a hash of that export, so only a change of the lock downloads
anything. The code is an allow-list: the packages :data:`callflow_infra.packaging.LAMBDA` names,
copied from ``src/`` over a hard-linked copy of the cached dependencies at every synth (well under
a second). The development tools live outside ``src/`` and cannot get in.

Lambda's code directory is read-only, so CPython cannot write the ``__pycache__`` it would
otherwise keep: a bundle without bytecode compiles every imported module from source on every cold
start (on the development machine, importing the API takes about 1 s from source against 0.3 s
from bytecode). The bundle therefore carries bytecode, compiled by a CPython of the runtime's
version (the format differs between versions) in ``unchecked-hash`` mode, so it is used as is,
whatever the files' timestamps in the zip. Where no such interpreter is found, the bundle is built
without bytecode and a warning says so: synthesis still works, the cold start is slower.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from callflow_infra.packaging import FLOWS_IN_BUNDLE, LAMBDA, SOURCE_ROOT, Deployable

PLATFORM = "aarch64-manylinux2014"
"""uv's name of the Lambda arm64 platform (glibc 2.17 or newer)."""
PYTHON_VERSION = "3.12"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


BUNDLE_PYTHON_ENV = "CALLFLOW_BUNDLE_PYTHON"
"""Path of a CPython 3.12 to compile the bundle's bytecode with (else one is looked for)."""


class BundleError(RuntimeError):
    """The dependencies could not be installed; the message carries pip's own explanation."""


@dataclass(frozen=True)
class LambdaBundle:
    """A ready asset directory and the hash that identifies its content."""

    path: Path
    asset_hash: str


def requirements_file(repo_root: Path, deployable: Deployable = LAMBDA) -> Path:
    """The locked requirements the deployable installs (an export of ``uv.lock``)."""
    path = repo_root / deployable.requirements
    if not path.is_file():
        raise BundleError(f"{path} is missing: run `make lock`")
    return path


def uv_binary() -> str:
    """The uv executable of this environment (the ``uv`` package of the dev group)."""
    try:
        from uv import find_uv_bin
    except ImportError:
        found = shutil.which("uv")
        if found is None:
            raise BundleError("uv is not installed: run `make setup`") from None
        return found
    return str(find_uv_bin())


@cache
def runtime_python() -> str | None:
    """A CPython of the Lambda runtime's version, to compile bytecode with; ``None``: none here.

    ``CALLFLOW_BUNDLE_PYTHON`` names one; else ``python3.12`` on the PATH, else a pyenv install.
    """
    chosen = os.environ.get(BUNDLE_PYTHON_ENV)
    if chosen:
        if _python_version(chosen) != PYTHON_VERSION:
            raise BundleError(f"{BUNDLE_PYTHON_ENV}={chosen} is not a CPython {PYTHON_VERSION}")
        return chosen
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [f"python{PYTHON_VERSION}"]
    candidates += sorted(
        str(p) for p in pyenv_root.glob(f"versions/{PYTHON_VERSION}.*/bin/python3")
    )
    for candidate in candidates:
        if _python_version(candidate) == PYTHON_VERSION:
            return candidate
    warnings.warn(
        f"no CPython {PYTHON_VERSION} found (set {BUNDLE_PYTHON_ENV}): the Lambda bundle carries "
        "no bytecode, so every cold start compiles the code from source",
        stacklevel=2,
    )
    return None


def _python_version(python: str) -> str | None:
    """``"3.12"`` for a working CPython 3.12 interpreter; ``None`` when it does not run."""
    try:
        result = subprocess.run(  # noqa: S603 - an interpreter path, run with fixed arguments
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


LAMBDA_TASK_ROOT = "/var/task"
"""Where Lambda unpacks the code: the file names tracebacks show."""


def compile_bytecode(directory: Path, python: str, runtime_path: str = LAMBDA_TASK_ROOT) -> None:
    """Write ``__pycache__/*.cpython-312.pyc`` beside every module below ``directory``.

    ``runtime_path`` is where ``directory`` will be on Lambda, for the file names in tracebacks.
    """
    command = [
        python,
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
        "-d",
        runtime_path,
        str(directory),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        # A module that does not compile on the runtime's Python would fail there at import.
        raise BundleError(
            f"the bundle does not compile on Python {PYTHON_VERSION}:\n{result.stdout}"
        )


def dependencies_dir(repo_root: Path, cache_root: Path) -> Path:
    """The installed dependencies for the current pins, built once and then reused."""
    requirements = requirements_file(repo_root)
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    python = runtime_python()
    flavour = "pyc" if python else "src"
    target = cache_root / f"deps-{PLATFORM}-cp{PYTHON_VERSION.replace('.', '')}-{key}-{flavour}"
    if target.is_dir():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    with _building(target) as partial:
        command = [
            uv_binary(),
            "pip",
            "install",
            "--quiet",
            "--no-config",
            "--no-deps",
            "--require-hashes",
            "--no-compile",
            "--python-platform",
            PLATFORM,
            "--python-version",
            PYTHON_VERSION,
            "--only-binary",
            ":all:",
            "--target",
            str(partial),
            "-r",
            str(requirements),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise BundleError(f"uv could not install the Lambda dependencies:\n{result.stderr}")
        if python:
            compile_bytecode(partial, python)
    return target


def build_lambda_bundle(repo_root: Path, cache_root: Path, flows_dir: str = "") -> LambdaBundle:
    """Dependencies plus the project's code, in one directory Lambda can run from; with
    ``flows_dir`` (relative to ``repo_root``) the flow files too, as :data:`FLOWS_IN_BUNDLE`."""
    deps = dependencies_dir(repo_root, cache_root)
    digest = hashlib.sha256(deps.name.encode())
    source = repo_root / SOURCE_ROOT
    for package in LAMBDA.packages:
        for path in sorted(_code_files(source / package)):
            digest.update(str(path.relative_to(source)).encode())
            digest.update(path.read_bytes())
    flows = repo_root / flows_dir if flows_dir else None
    if flows is not None:
        if not flows.is_dir():
            raise BundleError(f"{flows} is missing: the stage's flows_dir names it")
        for path in sorted(_code_files(flows)):
            digest.update(f"{FLOWS_IN_BUNDLE}/{path.relative_to(flows)}".encode())
            digest.update(path.read_bytes())
    asset_hash = digest.hexdigest()
    bundle = cache_root / f"lambda-{asset_hash[:16]}"
    if bundle.is_dir():
        return LambdaBundle(bundle, asset_hash)
    python = runtime_python()
    with _building(bundle) as partial:
        shutil.copytree(deps, partial, copy_function=_link_or_copy)
        for package in LAMBDA.packages:
            shutil.copytree(source / package, partial / package, ignore=_IGNORED)
            if python:
                compile_bytecode(partial / package, python, f"{LAMBDA_TASK_ROOT}/{package}")
        if flows is not None:
            shutil.copytree(flows, partial / FLOWS_IN_BUNDLE, ignore=_IGNORED)
    _prune(cache_root, keep=bundle.name)
    return LambdaBundle(bundle, asset_hash)


@contextmanager
def _building(target: Path) -> Iterator[Path]:
    """A scratch directory beside ``target``, renamed to it when the block succeeds.

    A failed build leaves nothing behind, and a half-built directory is never taken for a
    finished one. When another synth finished the same build first, its identical copy stays.
    """
    partial = target.parent / f".partial-{uuid.uuid4().hex}"
    try:
        yield partial
        partial.rename(target)
    except OSError:
        if not target.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _code_files(package: Path) -> list[Path]:
    if not package.is_dir():
        raise BundleError(f"{package} is missing: the Lambda bundle carries it")
    files: list[Path] = []
    for root, dirs, names in os.walk(package):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        files.extend(Path(root) / n for n in names if not n.endswith((".pyc", ".pyo")))
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
