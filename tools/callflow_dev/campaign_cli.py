"""``callflow campaign start|status|pause|resume|cancel|export``: campaigns through the API.

Every command talks to a running API (``--api``, or ``CALLFLOW_API_URL``) with the operator's
bearer token (``status_api_token`` from the settings), exactly as the Zoho button does; it prints
the API's answer and exits 0 only when the API accepted the request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    """The ``campaign`` subcommands."""
    parser = argparse.ArgumentParser(prog="callflow campaign", description=__doc__)
    parser.add_argument(
        "--api", default=os.environ.get("CALLFLOW_API_URL", "http://127.0.0.1:8000")
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a campaign over one module's records")
    start.add_argument("--module", default="Leads", help="Zoho module API name")
    source = start.add_mutually_exclusive_group(required=True)
    source.add_argument("--view", metavar="CVID", help="a custom view's id")
    source.add_argument("--coql", metavar="CRITERIA", help="a COQL WHERE clause")
    source.add_argument("--ids", metavar="ID,ID,...", help="record ids, comma-separated")
    start.add_argument("--max-concurrency", type=int, default=10)
    start.add_argument("--name", default="")
    start.add_argument("--flow", default="", help="the flow to call with (default: the default)")
    start.add_argument("--start", default="", help="window start: ISO date or datetime")
    start.add_argument("--end", default="", help="window end (exclusive): ISO date or datetime")
    start.add_argument("--weekdays", default="0,1,2,3,4,5,6", help="Monday = 0")
    start.add_argument("--hours", default="00:00-24:00", help="daily window, HH:MM-HH:MM")
    start.add_argument("--timezone", default="UTC", help="the window's IANA time zone")
    for name in ("status", "pause", "resume", "cancel", "export"):
        command = commands.add_parser(name, help=f"{name} a campaign")
        command.add_argument("campaign_id")
        if name == "export":
            command.add_argument("--out", default="-", help="CSV file (- for stdout)")
    return parser


def start_body(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /campaigns`` body the ``start`` arguments describe."""
    if args.view:
        source: dict[str, Any] = {"view": args.view}
    elif args.coql:
        source = {"coql": args.coql}
    else:
        source = {"ids": [part.strip() for part in args.ids.split(",") if part.strip()]}
    hours_start, _, hours_end = args.hours.partition("-")
    weekdays = [int(day) for day in args.weekdays.split(",") if day.strip()]
    return {
        "module": args.module,
        "source": source,
        "max_concurrency": args.max_concurrency,
        "name": args.name,
        "flow": args.flow,
        "window": {
            "start": args.start,
            "end": args.end,
            "weekdays": weekdays,
            "hours_start": hours_start,
            "hours_end": hours_end,
            "timezone": args.timezone,
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``campaign`` command; its exit status."""
    import httpx

    from callflow.config import get_settings

    args = build_parser().parse_args(argv)
    base = args.api.rstrip("/")
    token = get_settings().status_api_token.get_secret_value()
    headers = {"Authorization": f"Bearer {token}"}
    try:
        if args.command == "start":
            response = httpx.post(
                f"{base}/campaigns", json=start_body(args), headers=headers, timeout=30
            )
        elif args.command == "status":
            response = httpx.get(
                f"{base}/campaigns/{args.campaign_id}", headers=headers, timeout=30
            )
        elif args.command == "export":
            response = httpx.get(
                f"{base}/campaigns/{args.campaign_id}/export", headers=headers, timeout=120
            )
            if response.status_code == 200:
                return _write(args.out, response.text)
        else:
            response = httpx.post(
                f"{base}/campaigns/{args.campaign_id}/{args.command}", headers=headers, timeout=30
            )
    except httpx.HTTPError as error:
        print(f"callflow campaign: the API at {base} cannot be reached ({error})", file=sys.stderr)
        return 1
    try:
        print(json.dumps(response.json(), indent=2))
    except ValueError:
        print(response.text)
    return 0 if response.status_code in (200, 202) else 1


def _write(out: str, text: str) -> int:
    if out == "-":
        sys.stdout.write(text)
    else:
        with open(out, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        print(f"written: {out}", file=sys.stderr)
    return 0
