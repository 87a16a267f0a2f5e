"""CDK entry point: ``cdk synth -c stage=dev|prod`` (see the Makefile's synth/deploy/destroy)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from callflow_infra.app import build_app  # noqa: E402

if __name__ == "__main__":
    build_app().synth()
