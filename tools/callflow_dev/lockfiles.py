"""The exports of ``uv.lock`` that the deployables and the bootstrap install from.

``uv.lock`` is the one lock: every dependency set of the project, resolved once, with the hash of
every file. A deployable cannot run uv at build time (the bridge image is built by plain pip), so
each one installs from an export of the lock in ``requirements/``: the same versions, the same
hashes, in pip's format. ``make lock`` writes them; ``python -m callflow_dev.lockfiles`` (and a
test) checks that they are still what the lock says.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

#: Export file -> what it holds, as ``uv export`` options.
EXPORTS: dict[str, tuple[str, ...]] = {
    "requirements/lambda.txt": ("--extra", "functions"),
    "requirements/bridge.txt": ("--extra", "bridge"),
    "requirements/uv.txt": ("--only-group", "bootstrap"),
}


def uv_binary() -> str:
    """The uv executable installed in this environment."""
    from uv import find_uv_bin

    return str(find_uv_bin())


def export(repo_root: Path, name: str) -> str:
    """What ``name`` must hold for the current ``uv.lock`` (``uv export`` of its options)."""
    command = [
        uv_binary(),
        "export",
        "--quiet",
        "--frozen",
        "--no-default-groups",
        *EXPORTS[name],
        "--no-emit-project",
        "--no-emit-workspace",
        "--output-file",
        name,
    ]
    # --output-file so the header names the file; written to a scratch copy, compared by caller.
    result = subprocess.run(  # noqa: S603 - uv with fixed arguments
        [*command[:-1], "/dev/stdout"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.replace("/dev/stdout", name)


def stale(repo_root: Path) -> list[str]:
    """The exports that no longer match the lock (missing ones included)."""
    found = []
    for name in EXPORTS:
        path = repo_root / name
        if not path.is_file() or path.read_text(encoding="utf-8") != export(repo_root, name):
            found.append(name)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Check the exports (exit 1 when stale) or, with ``--write``, rewrite them."""
    parser = argparse.ArgumentParser(prog="python -m callflow_dev.lockfiles", description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the exports from uv.lock")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the repository root")
    args = parser.parse_args(argv)
    if args.write:
        for name in EXPORTS:
            (args.repo / name).write_text(export(args.repo, name), encoding="utf-8")
        return 0
    outdated = stale(args.repo)
    for name in outdated:
        print(f"{name} does not match uv.lock: run `make lock`", file=sys.stderr)
    return 1 if outdated else 0


if __name__ == "__main__":
    raise SystemExit(main())
