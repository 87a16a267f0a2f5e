"""``python -m bench [name ...]``: run every benchmark, each in its own Python process.

A benchmark is a module ``bench/<area>_<name>.py`` with a ``main()`` that prints its results as
JSON lines on stdout. Each runs in a fresh process so one benchmark's imports, threads or event
loop cannot colour another's numbers. The exit status is non-zero when any benchmark failed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def benchmark_names() -> list[str]:
    return sorted(path.stem for path in HERE.glob("*_*.py") if not path.stem.startswith("_"))


def main(argv: list[str]) -> int:
    names = argv or benchmark_names()
    unknown = sorted(set(names) - set(benchmark_names()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        code = f"import bench.{name} as module; module.main()"
        # Names come from the bench directory listing (checked above), not from free input.
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False)
        if result.returncode != 0:
            failed.append(name)
    if failed:
        print(f"benchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
