"""``callflow doctor`` against the local stack: the checks, and a test call through the stand-ins.

The stack is set up as an operator would set up a deployment (``callflow setup infobip`` creates
the subscription that carries the events; the ElevenLabs workspace has the post-call webhook), so
a healthy stack is what a healthy deployment looks like to the doctor.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from pydantic import SecretStr

from callflow.config import get_settings
from callflow.providers.zoho.token import TOKEN_KEY
from callflow.services import get_services
from callflow_dev import provisioning
from callflow_dev.doctor import command
from callflow_dev.local.demo import _scenarios, seed_scenario
from callflow_dev.local.stack import LocalStack, StackOptions
from callflow_dev.sandbox.elevenlabs import WorkspaceWebhook

pytestmark = pytest.mark.slow

_numbers = itertools.count(3700)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(StackOptions(brief_clips_ms=900, retry_delay_seconds=1)) as running:
        with httpx.Client(timeout=10.0) as http:
            code = provisioning.main(
                ["infobip", "--api-url", running.api_url, "--bridge-url", running.bridge_url],
                settings=get_settings(),
                out=io.StringIO(),
                http=http,
            )
        assert code == 0
        running.infobip.drop_webhooks()  # the subscription setup created carries the events now
        running.elevenlabs.workspace_webhooks.append(
            WorkspaceWebhook("wh_local", f"{running.api_url}/webhooks/elevenlabs")
        )
        running.elevenlabs.post_call_webhook_id = "wh_local"
        yield running


def doctor(
    stack: LocalStack, *extra: str, settings_changes: dict[str, object] | None = None
) -> tuple[int, str]:
    settings = get_settings()
    if settings_changes:
        settings = settings.model_copy(update=settings_changes)
    out = io.StringIO()
    argv = ["--api-url", stack.api_url, "--bridge-url", stack.bridge_url, *extra]
    with httpx.Client(timeout=30.0) as http:
        code = command.main(argv, settings=settings, out=out, http=http)
    return code, out.getvalue()


def test_a_deployment_set_up_by_setup_has_nothing_to_fix(stack: LocalStack) -> None:
    code, output = doctor(stack)
    assert code == 0, output
    assert "PROBLEM" not in output
    assert "the trigger takes zoho_trigger_secret" in output
    assert "the events route takes the subscription's credentials" in output
    assert "post-call webhook wh_local sends to" in output
    assert output.rstrip().endswith("All is well.")


def test_a_secret_the_deployment_does_not_take_is_named(stack: LocalStack) -> None:
    code, output = doctor(stack, settings_changes={"zoho_trigger_secret": SecretStr("not-it")})
    assert code == 1
    assert "Zoho trigger with the secret: answered 403" in output
    assert "our credentials are refused" in output


def test_a_refresh_token_without_the_field_metadata_scope_is_named(stack: LocalStack) -> None:
    table = get_services().store.table
    stack.zoho.granted_scope = "ZohoCRM.modules.ALL"
    table.delete_item(Key=TOKEN_KEY)  # the next token is a fresh one, with the narrower scope
    try:
        code, output = doctor(stack)
    finally:
        stack.zoho.granted_scope = "ZohoCRM.modules.ALL ZohoCRM.settings.fields.READ"
        table.delete_item(Key=TOKEN_KEY)
    assert code == 1
    assert "lacks scope ZohoCRM.settings.fields.READ" in output


def test_a_media_stream_config_at_another_rate_is_a_problem_to_fix(stack: LocalStack) -> None:
    code, output = doctor(stack, settings_changes={"infobip_sample_rate": 8000})
    assert code == 1
    assert "PROBLEM: not set up: create media-stream config" in output


def test_the_test_call_reports_what_each_provider_did(stack: LocalStack) -> None:
    phone = f"(415) 555-{next(_numbers)}"
    scenario = replace(_scenarios()["answered"], phone=phone)
    record_id = seed_scenario(stack, scenario)
    code, output = doctor(
        stack, "--test-call", "+1415555" + phone[-4:], "--record", f"Leads/{record_id}"
    )
    assert code == 0, output
    events = output.split("Infobip events, as the API received them")[1].split("Media stream")[0]
    assert "CALL_ESTABLISHED" in events and "phone leg" in events
    assert "first frame (values redacted): {'frame': {'event': 'string[19]'" in output
    assert events.index("CALL_RINGING") < events.index("CALL_FINISHED")
    assert "held      Infobip delivers the call's events" in output
    assert "held      Media audio is 20 ms frames" in output
    assert "(640 B is 20 ms at 16000 Hz)" in output
    assert "held      ElevenLabs delivers the post-call webhook" in output
    assert "held      Zoho takes the call log" in output
    assert "not held" not in output


def test_the_test_call_dials_only_a_record_holding_the_number(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    phone = f"(415) 555-{next(_numbers)}"
    record_id = seed_scenario(stack, replace(_scenarios()["answered"], phone=phone))
    dialled_before = len(stack.infobip.calls)
    code, _ = doctor(stack, "--test-call", "+14155550000", "--record", f"Leads/{record_id}")
    assert code == 2
    assert "the test call only dials a record that holds the number" in capsys.readouterr().err
    assert len(stack.infobip.calls) == dialled_before


def test_a_calls_configuration_the_account_does_not_have_is_named(stack: LocalStack) -> None:
    code, output = doctor(stack, settings_changes={"infobip_calls_configuration_id": "nope"})
    assert code == 1
    assert "the account has no calls configuration 'nope'" in output
