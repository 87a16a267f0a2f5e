"""The ``callflow doctor`` command line: the checks, then the test call when one is asked for.

Exit status: 0 when every check passed (and the test call, if any, ended with its writeback and
every behaviour it could show held), 1 when something needs fixing, 2 on bad input or a refused
test call.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import httpx

from callflow.config import Settings, get_settings
from callflow.providers.errors import ProviderAuthError, ProviderError
from callflow_dev.doctor.checks import (
    DoctorOptions,
    DoctorReport,
    check_calls_configuration,
    check_endpoints,
    check_zoho,
    section,
)
from callflow_dev.doctor.trial_call import (
    TrialOptions,
    TrialRefused,
    place_trial_call,
    report_trial,
)
from callflow_dev.provisioning import (
    CREDENTIAL_SETTING,
    ElevenLabsWorkspace,
    InfobipOptions,
    Report,
    SetupError,
    check_zoho_fields,
    setup_elevenlabs,
    setup_infobip,
)

if TYPE_CHECKING:
    from callflow.providers.zoho.token import ZohoTokenProvider


def build_parser() -> argparse.ArgumentParser:
    """The ``callflow doctor`` parser."""
    parser = argparse.ArgumentParser(
        prog="callflow doctor",
        description="Check this deployment against Zoho, Infobip and ElevenLabs (read-only); "
        "with --test-call, place one real call to your own number and report what happened.",
    )
    parser.add_argument("--api-url", required=True, help="the API's base URL (stack output ApiUrl)")
    parser.add_argument("--bridge-url", default="", help="wss://<bridge>/<bridge_path_secret>")
    parser.add_argument(
        "--module",
        action="append",
        default=[],
        help="a Zoho module the workflow calls from (repeatable; default Leads)",
    )
    parser.add_argument("--test-call", metavar="+NUMBER", default="", help="your own number")
    parser.add_argument(
        "--record", metavar="MODULE/ID", default="", help="the record holding that number"
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to wait for the test call to end"
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    out: TextIO | None = None,
    http: httpx.Client | None = None,
) -> int:
    """Run the doctor; see the module's docstring for the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.test_call) != bool(args.record):
        parser.error("--test-call and --record go together")
    stream = out if out is not None else sys.stdout
    current = settings if settings is not None else get_settings()
    options = DoctorOptions(
        api_url=args.api_url, bridge_url=args.bridge_url, modules=tuple(args.module or ["Leads"])
    )
    client = http if http is not None else httpx.Client(timeout=30.0)
    try:
        report = run_checks(current, options, client, stream)
        if not args.test_call:
            print(_verdict(len(report.problems)), file=stream)
            return report.exit_code
        trial = TrialOptions(args.api_url, args.test_call, args.record, timeout_s=args.timeout)
        view = place_trial_call(
            current, trial, read_phone=_phone_reader(current, client), http=client, out=stream
        )
        not_held = report_trial(view, current, stream, _last_unmatched_media(current))
        problems = len(report.problems) + not_held + (view.get("status") != "completed")
        print(_verdict(problems), file=stream)
        return 1 if problems else 0
    except (SetupError, TrialRefused) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TimeoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if http is None:
            client.close()


def _verdict(problems: int) -> str:
    if not problems:
        return "All is well."
    return f"{problems} thing{'s' if problems > 1 else ''} to fix (PROBLEM / not held above)."


def run_checks(
    settings: Settings, options: DoctorOptions, http: httpx.Client, out: TextIO
) -> DoctorReport:
    """Every read-only check, section by section; a provider that fails one section does not
    stop the next."""
    report = DoctorReport(out)
    section(f"This deployment ({options.api_url})", out)
    _guarded(report, "the API", lambda: check_endpoints(settings, options, http, report))
    section("Zoho CRM", out)
    _guarded(
        report,
        "zoho",
        lambda: check_zoho(
            settings,
            options,
            _token_provider(settings, http).access_token,
            report,
            fields_check=lambda found: _zoho_fields(settings, options, http, found),
        ),
    )
    _guarded(report, "infobip", lambda: _infobip(settings, options, http, report))
    _guarded(report, "elevenlabs", lambda: _elevenlabs(settings, options, http, report))
    if settings.flows_dir:
        section(f"Flows ({settings.flows_dir})", out)
        _guarded(report, "flows", lambda: _flows(settings, options, http, report))
    return report


def _flows(
    settings: Settings, options: DoctorOptions, http: httpx.Client, report: DoctorReport
) -> None:
    """Every flow file: it loads, its fields are on the modules, its agent fits it."""
    from callflow.providers.elevenlabs.client import ElevenLabsClient
    from callflow.providers.zoho.client import ZohoClient
    from callflow_dev.doctor.flows import check_flow_agents, check_flow_fields, file_flows

    flows = file_flows(settings, report)
    if not flows:
        return
    zoho = ZohoClient(settings, _token_provider(settings, http), http)
    problems = check_flow_fields(settings, flows, options.modules, zoho.module_fields)
    for problem in problems:
        report.problem(problem)
    if not problems:
        report.done(f"every flow's fields are on {', '.join(options.modules)}, with their type")
    agents = ElevenLabsClient(settings, http)
    try:
        check_flow_agents(settings, flows, agents.get_agent, report)
    finally:
        agents.close()


def _guarded(report: DoctorReport, provider: str, check: Callable[[], None]) -> None:
    try:
        check()
    except SetupError as error:
        report.problem(str(error))
    except ProviderAuthError as error:
        setting = CREDENTIAL_SETTING.get(error.provider, "the credentials")
        report.problem(
            f"{error.provider} refused the credentials ({error.message}): check {setting}"
        )
    except ProviderError as error:
        hint = " (check the id in the settings)" if error.status == 404 else ""
        report.problem(f"{provider}: {error}{hint}")


def _zoho_fields(
    settings: Settings, options: DoctorOptions, http: httpx.Client, report: Report
) -> None:
    from callflow.mapping import FieldMapping
    from callflow.providers.zoho.client import ZohoClient

    zoho = ZohoClient(settings, _token_provider(settings, http), http)
    mapping = FieldMapping.load(settings.field_mapping_path)
    problems = check_zoho_fields(settings, mapping, options.modules, zoho.module_fields)
    for problem in problems:
        report.problem(problem)
    if not problems:
        report.done(f"every configured field is on {', '.join(options.modules)}, with its type")


def _token_provider(settings: Settings, http: httpx.Client) -> ZohoTokenProvider:
    from callflow.providers.zoho.token import ZohoTokenProvider
    from callflow.store import SessionStore

    # The deployment's own token cache: the doctor reuses the workflow's token, so it does not
    # make Zoho issue (and evict) another.
    return ZohoTokenProvider(settings, SessionStore.from_settings(settings).table, http)


def _last_unmatched_media(settings: Settings) -> dict[str, Any] | None:
    from callflow.store import SessionStore

    return SessionStore.from_settings(settings).last_unmatched_media()


def _phone_reader(settings: Settings, http: httpx.Client) -> Callable[[str, str], str]:
    from callflow.providers.zoho.client import ZohoClient
    from callflow.providers.zoho.token import ZohoTokenProvider
    from callflow.store import SessionStore

    tokens = ZohoTokenProvider(settings, SessionStore.from_settings(settings).table, http)
    zoho = ZohoClient(settings, tokens, http)

    def read(module: str, record_id: str) -> str:
        record = zoho.get_record(module, record_id, [settings.zoho_phone_field])
        return str(record.get(settings.zoho_phone_field) or "")

    return read


def _infobip(
    settings: Settings, options: DoctorOptions, http: httpx.Client, report: DoctorReport
) -> None:
    from callflow.providers.infobip.calls import InfobipClient
    from callflow.providers.infobip.subscriptions import InfobipSubscriptionsClient

    setup = InfobipOptions(
        api_url=options.api_url,
        bridge_url=options.bridge_url,
        subscription_id=options.subscription_id,
        profile_id=options.profile_id,
        auth_id=options.auth_id,
        dry_run=True,
    )
    with (
        InfobipClient(settings, http) as calls,
        InfobipSubscriptionsClient(settings, http) as subscriptions,
    ):
        check_calls_configuration(settings, calls, report)
        setup_infobip(
            settings,
            setup,
            calls_client=calls,
            subscriptions=subscriptions,
            out=report.out,
            report=report,
        )


def _elevenlabs(
    settings: Settings, options: DoctorOptions, http: httpx.Client, report: DoctorReport
) -> None:
    from callflow.mapping import FieldMapping
    from callflow.providers.elevenlabs.client import ElevenLabsClient

    agent_client = ElevenLabsClient(settings, http)
    workspace = ElevenLabsWorkspace(settings, http)
    try:
        setup_elevenlabs(
            settings,
            api_url=options.api_url,
            agent_client=agent_client,
            workspace=workspace,
            mapped_items=FieldMapping.load(settings.field_mapping_path).items(),
            out=report.out,
            report=report,
        )
    finally:
        agent_client.close()
        workspace.close()
