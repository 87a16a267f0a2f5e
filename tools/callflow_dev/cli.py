"""The ``callflow`` command.

- ``demo``: a whole call on the embedded default (moto + provider stand-ins), printed as it happens.
- ``serve``: the same local stack, talking to the real providers configured in the environment.
- ``call MODULE/ID``: trigger a call through a running API.
- ``status SESSION``: a session's state through the API.
- ``replay SESSION``: run a failed writeback again (against the AWS account in the environment).
- ``campaign start|status|pause|resume|cancel|export``: campaigns through a running API.
- ``setup infobip|elevenlabs|zoho``: connect the providers to a deployment.
- ``doctor``: check a deployment against the providers (read-only); ``--test-call`` places one
  real call to the operator's own number and reports what each provider really did.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``callflow`` command and return its exit status.

    ``setup`` is handed whole to :func:`callflow_dev.provisioning.main`, which has its own parser.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["setup"]:  # its own parser: `callflow setup infobip --help` works
        from callflow_dev import provisioning

        return provisioning.main(args_list[1:])
    if args_list[:1] == ["campaign"]:
        from callflow_dev import campaign_cli

        return campaign_cli.main(args_list[1:])
    if args_list[:1] == ["doctor"]:
        from callflow_dev.doctor import command

        return command.main(args_list[1:])
    parser = argparse.ArgumentParser(
        prog="callflow", description="AI phone agents from your CRM (Zoho, Infobip, ElevenLabs)."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run a whole call on the embedded default")
    demo.add_argument(
        "--scenario",
        default="answered",
        choices=[
            "answered",
            "retry",
            "busy",
            "voicemail",
            "invalid",
            "interrupt",
            "optout",
            "reminder",
            "callback",
            "campaign",
        ],
    )
    demo.add_argument("--out", default="demo-output", help="where the call's WAV is saved")
    demo.add_argument("--quiet", action="store_true", help="print only the final summary")
    demo.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME",
        help="run under a stand-in variant of an unverified provider behaviour (repeatable)",
    )
    demo.add_argument(
        "--list-variants", action="store_true", help="print the variants' names, one a line"
    )

    serve = commands.add_parser("serve", help="the local stack against the real providers")
    serve.add_argument("--api-port", type=int, default=8000)
    serve.add_argument("--bridge-port", type=int, default=8080)
    serve.add_argument(
        "--public-api-url", required=True, help="https URL that reaches --api-port (a tunnel)"
    )
    serve.add_argument(
        "--public-bridge-url", required=True, help="wss URL that reaches --bridge-port"
    )

    call = commands.add_parser(
        "call", help="trigger a call: MODULE/ID, e.g. Leads/4150868000000224005"
    )
    call.add_argument("record")
    call.add_argument("--flow", default="", help="the flow to call with (default: the default)")
    call.add_argument("--api", default=os.environ.get("CALLFLOW_API_URL", "http://127.0.0.1:8000"))

    status = commands.add_parser("status", help="show a session")
    status.add_argument("session_id")
    status.add_argument(
        "--api", default=os.environ.get("CALLFLOW_API_URL", "http://127.0.0.1:8000")
    )

    replay = commands.add_parser("replay", help="replay a failed CRM writeback")
    replay.add_argument("session_id")

    commands.add_parser("setup", help="connect the providers to a deployment (see setup --help)")
    commands.add_parser("campaign", help="start and steer campaigns (see campaign --help)")
    commands.add_parser(
        "doctor", help="check a deployment against the providers; --test-call (see doctor --help)"
    )

    args = parser.parse_args(args_list)
    if args.command == "demo":
        from callflow_dev.local.demo import list_variants, run_demo

        if args.list_variants:
            return list_variants()
        if args.scenario == "campaign":
            from callflow_dev.local.campaign_demo import run_campaign_demo

            return run_campaign_demo(quiet=args.quiet)
        return run_demo(
            args.scenario, out_dir=args.out, quiet=args.quiet, variant_names=args.variant
        )
    if args.command == "serve":
        from callflow_dev.local.serve import serve_forever

        return serve_forever(
            api_port=args.api_port,
            bridge_port=args.bridge_port,
            public_api_url=args.public_api_url,
            public_bridge_url=args.public_bridge_url,
        )
    if args.command == "call":
        return _call(args.api, args.record, args.flow)
    if args.command == "status":
        return _status(args.api, args.session_id)
    if args.command == "replay":
        return _replay(args.session_id)
    parser.error(f"unknown command {args.command}")
    return 2


def _replay(session_id: str) -> int:
    """Replay a failed writeback; a refusal or a failure is a sentence and exit 1."""
    from callflow.lifecycle import writeback
    from callflow.providers.errors import ProviderError
    from callflow.services import get_services
    from callflow.store import SessionNotFound

    try:
        result = writeback.replay(get_services(), session_id)
    except SessionNotFound:
        print(f"callflow replay: no session {session_id}", file=sys.stderr)
        return 1
    except writeback.NotReplayable as refused:
        print(f"callflow replay: {refused}", file=sys.stderr)
        return 1
    except ProviderError as error:
        print(
            f"callflow replay: the writeback failed again ({error}); the session is "
            "writeback_failed, its results kept: replay it once the provider is back",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _call(api: str, record: str, flow: str = "") -> int:
    import httpx

    from callflow.config import get_settings

    module, _, record_id = record.partition("/")
    if not module or not record_id:
        print("give the record as MODULE/ID, e.g. Leads/4150868000000224005", file=sys.stderr)
        return 2
    secret = get_settings().zoho_trigger_secret.get_secret_value()
    response = httpx.post(
        f"{api.rstrip('/')}/webhooks/zoho",
        json={"module": module, "record_id": record_id, **({"flow": flow} if flow else {})},
        headers={"X-Callflow-Secret": secret},
        timeout=30,
    )
    print(json.dumps(response.json(), indent=2))
    return 0 if response.status_code == 202 else 1


def _status(api: str, session_id: str) -> int:
    import httpx

    from callflow.config import get_settings

    token = get_settings().status_api_token.get_secret_value()
    response = httpx.get(
        f"{api.rstrip('/')}/sessions/{session_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    print(json.dumps(response.json(), indent=2))
    return 0 if response.status_code == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
