"""Zoho API credits per completed call.

Runs one answered call end to end on the embedded default (shortened clips) and counts the Zoho
API requests it made, from the Zoho stand-in's request log: the record read at trigger time, the
field update, the note and the logged call. OAuth token requests are not API calls and cost no
credits; they are reported apart. Target: <= 4 credits per call.
"""

from __future__ import annotations

import json
import os

from callflow_dev.local.demo import Printer, _scenarios, run_scenario
from callflow_dev.local.stack import LocalStack, StackOptions


def main() -> None:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    with LocalStack(StackOptions(brief_clips_ms=700)) as stack:
        result = run_scenario(stack, _scenarios()["answered"], None, Printer(quiet=True))
        api_calls = [r for r in stack.zoho.requests if r.path.startswith("/crm/")]
        tokens = stack.zoho.token_requests()
    print(
        json.dumps(
            {
                "benchmark": "zoho_credits_per_call",
                "outcome": result.session.outcome.value if result.session.outcome else None,
                "credits": len(api_calls),
                "requests": [f"{r.method} {r.path.split('/crm/v8')[-1]}" for r in api_calls],
                "token_refreshes": len(tokens),
                "target": 4,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
