"""Where the providers' official API descriptions are: ``shared/specs`` beside the checkout (as
CI lays it out), or ``$CALLFLOW_SPECS_DIR``."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SPECS_DIR = Path(os.environ.get("CALLFLOW_SPECS_DIR", REPO_ROOT.parent / "shared" / "specs"))
