"""``callflow setup``: the provider setup commands against the Infobip and ElevenLabs stand-ins."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from callflow.config import Settings
from callflow.mapping import FieldMapping
from callflow.providers.elevenlabs.client import override_paths
from callflow.providers.infobip.calls import InfobipClient
from callflow.providers.infobip.subscriptions import CALL_EVENTS
from callflow.providers.zoho.client import ZohoField, fields_from_listing
from callflow_dev.local.servers import AsgiServer
from callflow_dev.provisioning import MASK, check_zoho_fields, main
from callflow_dev.sandbox.agent import AgentConfig
from callflow_dev.sandbox.elevenlabs import ElevenLabsSandbox, WorkspaceWebhook
from callflow_dev.sandbox.infobip import InfobipSandbox
from callflow_dev.sandbox.phone_network import busy
from callflow_dev.sandbox.zoho import default_modules
from tests.unit.infobip_fixtures import subscriptions_spec

INFOBIP_KEY = "infobip-test-key"
ELEVENLABS_KEY = "xi-test-key"
PATH_SECRET = "pathsecret123"
BRIDGE_SECRET = "bridgesecret456"
API_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com"
BRIDGE_URL = f"wss://bridge.example.com/{BRIDGE_SECRET}"
WEBHOOK_ID = "wh_callflow"


# --- Infobip -------------------------------------------------------------------------------------


@dataclass
class InfobipRig:
    sandbox: InfobipSandbox
    server: AsgiServer

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "infobip_base_url": self.server.url,
            "infobip_api_key": INFOBIP_KEY,
            "infobip_webhook_username": "infobip",
            "infobip_webhook_password": "hook-password",
            "infobip_webhook_path_secret": PATH_SECRET,
            "infobip_calls_configuration_id": "calls-config-1",
            "infobip_sample_rate": 16000,
            "bridge_public_url": BRIDGE_URL,
        }
        values.update(overrides)
        return Settings(**values)

    def writes(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.sandbox.requests if r.method != "GET"]


@pytest.fixture
def infobip() -> Iterator[InfobipRig]:
    sandbox = InfobipSandbox(INFOBIP_KEY, rate_limits=False)
    server = AsgiServer(sandbox.app, name="infobip").start()
    try:
        yield InfobipRig(sandbox, server)
    finally:
        server.stop()


def run(argv: list[str], settings: Settings) -> tuple[int, str]:
    out = io.StringIO()
    with httpx.Client(timeout=5.0) as http:
        code = main(argv, settings=settings, out=out, http=http)
    return code, out.getvalue()


def test_infobip_setup_creates_the_config_and_subscription(infobip: InfobipRig) -> None:
    code, output = run(["infobip", "--api-url", API_URL], infobip.settings())
    assert code == 0, output
    (config,) = infobip.sandbox.media_stream_configs.values()
    assert config["url"] == BRIDGE_URL
    assert config["sampleRate"] == "16000"
    assert config["type"] == "WEBSOCKET_ENDPOINT"
    assert f"infobip_media_stream_config_id = {config['id']}" in output
    assert "identifier (<session id>.<token>)" in output and "bridge#unmatched-media" in output
    (subscription,) = infobip.sandbox.subscriptions.values()
    assert subscription["channel"] == "VOICE_VIDEO"
    assert "CALL_ESTABLISHED" in subscription["events"]
    assert "CALL_FINISHED" in subscription["events"]
    assert subscription["criteria"] == [{"callsConfigurationId": "calls-config-1"}]
    profile = infobip.sandbox.profiles[subscription["profileId"]]
    assert profile["webhook"]["notifyUrl"] == f"{API_URL}/webhooks/infobip/{PATH_SECRET}"
    security = infobip.sandbox.security[profile["authId"]]
    assert security["type"] == "BASIC"
    assert security["credentials"] == {"username": "infobip", "password": "hook-password"}


def test_infobip_setup_explains_both_media_routings(infobip: InfobipRig) -> None:
    code, output = run(["infobip", "--api-url", API_URL], infobip.settings())
    assert code == 0, output
    assert "'shared', the default" in output and "'per-session' makes a config per" in output
    assert "CALLFLOW_INFOBIP_MEDIA_ROUTING=shared" in output


def test_per_session_setup_makes_no_shared_config_and_names_what_it_needs(
    infobip: InfobipRig,
) -> None:
    settings = infobip.settings(infobip_media_routing="per-session")

    code, output = run(["infobip", "--api-url", API_URL], settings)

    assert code == 0, output
    assert infobip.sandbox.media_stream_configs == {}
    assert "no shared config is set, and none is made" in output
    assert "sweep_media_configs (every 15 minutes) deletes 'callflow-s-*' configs" in output
    assert "at most 80 configs are made a minute" in output
    assert infobip.sandbox.subscriptions  # the events subscription is made all the same


def test_per_session_setup_without_the_bridge_url_in_the_settings_is_a_problem(
    infobip: InfobipRig,
) -> None:
    settings = infobip.settings(infobip_media_routing="per-session", bridge_public_url="")

    code, output = run(["infobip", "--api-url", API_URL, "--bridge-url", BRIDGE_URL], settings)

    assert code == 1
    assert "per-session routing needs bridge_public_url" in output


def test_per_session_setup_refuses_a_budget_at_infobips_limit(infobip: InfobipRig) -> None:
    settings = infobip.settings(
        infobip_media_routing="per-session", infobip_config_creations_per_minute=100
    )

    code, output = run(["infobip", "--api-url", API_URL], settings)

    assert code == 1
    assert "CALLFLOW_INFOBIP_CONFIG_CREATIONS_PER_MINUTE=100: it must be 1..99" in output


def test_after_setup_call_events_reach_the_api_with_basic_auth(infobip: InfobipRig) -> None:
    received: list[tuple[str, str, dict[str, Any]]] = []

    async def events(request: Request) -> JSONResponse:
        body = await request.json()
        received.append((request.url.path, request.headers.get("authorization", ""), body))
        return JSONResponse({})

    api = Starlette(routes=[Route("/webhooks/infobip/{secret}", events, methods=["POST"])])
    server = AsgiServer(api, name="api").start()
    try:
        settings = infobip.settings()
        assert run(["infobip", "--api-url", server.url], settings)[0] == 0
        infobip.sandbox.set_behaviour("+14155550100", [busy()])
        with InfobipClient(settings) as client:
            call = client.place_call("+14155550100", custom_data={"s": "1"}, external_id="s-1")
        deadline = time.monotonic() + 5
        while not any(b.get("callId") == call.id for *_, b in received):
            assert time.monotonic() < deadline, "no event reached the API"
            time.sleep(0.05)
    finally:
        server.stop()
    path, authorization, event = next(r for r in received if r[2].get("callId") == call.id)
    assert path == f"/webhooks/infobip/{PATH_SECRET}"
    assert authorization == "Basic " + base64.b64encode(b"infobip:hook-password").decode()
    assert event["callsConfigurationId"] == "calls-config-1"


def test_infobip_setup_run_twice_creates_nothing_new(infobip: InfobipRig) -> None:
    settings = infobip.settings()
    assert run(["infobip", "--api-url", API_URL], settings)[0] == 0
    writes = infobip.writes()
    code, output = run(["infobip", "--api-url", API_URL], settings)
    assert code == 0
    assert infobip.writes() == writes
    assert len(infobip.sandbox.media_stream_configs) == 1
    assert "already points at" in output
    assert "already sends events" in output


def test_infobip_dry_run_reads_but_writes_nothing(infobip: InfobipRig) -> None:
    code, output = run(["infobip", "--api-url", API_URL, "--dry-run"], infobip.settings())
    assert code == 0
    assert infobip.writes() == []
    assert infobip.sandbox.requests, "the dry run should still read the account"
    assert "would: create media-stream config" in output
    assert "would: create VOICE_VIDEO subscription" in output


def test_infobip_config_at_another_sample_rate_is_not_reused(infobip: InfobipRig) -> None:
    run(["infobip", "--api-url", API_URL], infobip.settings(infobip_sample_rate=8000))
    code, output = run(["infobip", "--api-url", API_URL], infobip.settings())
    assert code == 0
    rates = sorted(c["sampleRate"] for c in infobip.sandbox.media_stream_configs.values())
    assert rates == ["16000", "8000"]
    assert "sample rate 8000, not 16000" in output


def test_infobip_setup_adds_the_dialog_failure_events_to_an_older_subscription(
    infobip: InfobipRig,
) -> None:
    """A subscription made before DIALOG_FAILED, ERROR and MEDIA_STREAM_FAILED were handled
    would never send them: setup brings its events up to date, keeping profile and criteria."""
    run(["infobip", "--api-url", API_URL], infobip.settings())
    (subscription,) = infobip.sandbox.subscriptions.values()
    subscription["events"] = [e for e in subscription["events"] if "DIALOG" not in e]
    before = dict(subscription)

    code, output = run(["infobip", "--api-url", API_URL], infobip.settings())

    assert code == 0, output
    assert set(subscription["events"]) == set(CALL_EVENTS)
    assert subscription["criteria"] == before["criteria"]
    assert subscription["profileId"] == before["profileId"]
    assert "now also sends DIALOG_FAILED" in output
    [put] = [r for r in infobip.sandbox.requests if r.method == "PUT"]
    spec = subscriptions_spec()
    name = next(
        n
        for n in spec.spec["components"]["schemas"]
        if n.endswith(".VoiceVideoNoIdSubscriptionRequest")
    )
    assert spec.problems(put.body, f"#/components/schemas/{name}") == []
    _, again = run(["infobip", "--api-url", API_URL], infobip.settings())
    assert "now also sends" not in again


def test_infobip_moves_the_existing_profile_to_a_new_api_url(infobip: InfobipRig) -> None:
    run(["infobip", "--api-url", API_URL], infobip.settings())
    new_api = "https://new.execute-api.eu-west-1.amazonaws.com"
    code, output = run(["infobip", "--api-url", new_api], infobip.settings())
    assert code == 0, output
    assert len(infobip.sandbox.subscriptions) == 1
    profile = infobip.sandbox.profiles["callflow-events"]
    assert profile["authId"] == "callflow-basic"
    assert profile["webhook"]["notifyUrl"] == f"{new_api}/webhooks/infobip/{PATH_SECRET}"
    assert "now points at" in output


def test_infobip_output_never_shows_the_secrets_unless_asked(infobip: InfobipRig) -> None:
    _, hidden = run(["infobip", "--api-url", API_URL, "--dry-run"], infobip.settings())
    assert PATH_SECRET not in hidden and BRIDGE_SECRET not in hidden
    assert f"/webhooks/infobip/{MASK}" in hidden
    _, shown = run(
        ["infobip", "--api-url", API_URL, "--dry-run", "--show-secrets"], infobip.settings()
    )
    assert PATH_SECRET in shown and BRIDGE_SECRET in shown


def test_infobip_setup_without_webhook_password_says_where_to_set_it(
    infobip: InfobipRig, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(["infobip", "--api-url", API_URL], infobip.settings(infobip_webhook_password=""))
    assert code == 2
    assert "infobip_webhook_password is empty" in capsys.readouterr().err
    assert infobip.sandbox.requests == []


@pytest.mark.parametrize(
    ("bridge_url", "reason"),
    [
        ("https://bridge.example.com/x", "must start with wss://"),
        ("wss://bridge.example.com/", "bridge_path_secret"),
        ("wss://bridge.example.com/{bridge_path_secret}", "bridge_path_secret"),
    ],
)
def test_infobip_refuses_a_bridge_url_infobip_cannot_use(
    infobip: InfobipRig, capsys: pytest.CaptureFixture[str], bridge_url: str, reason: str
) -> None:
    code, _ = run(["infobip", "--api-url", API_URL, "--bridge-url", bridge_url], infobip.settings())
    assert code == 2
    assert reason in capsys.readouterr().err


def test_plain_http_api_url_is_refused(
    infobip: InfobipRig, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(["infobip", "--api-url", "http://api.example.com"], infobip.settings())
    assert code == 2
    assert "https://" in capsys.readouterr().err


def test_wrong_infobip_key_is_reported_as_an_auth_failure(
    infobip: InfobipRig, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(["infobip", "--api-url", API_URL], infobip.settings(infobip_api_key="wrong"))
    assert code == 1
    assert "infobip refused the credentials" in capsys.readouterr().err
    assert infobip.sandbox.media_stream_configs == {}


# --- ElevenLabs ----------------------------------------------------------------------------------


CALLFLOW_WEBHOOK = WorkspaceWebhook(WEBHOOK_ID, f"{API_URL}/webhooks/elevenlabs")
"""The post-call webhook as setup leaves it: HMAC, enabled, sending to this deployment."""


MAPPING = """
mappings:
  - item: interested
    field: Interested
    type: boolean
  - item: monthly_bill
    field: Monthly_Bill
    type: currency
"""


def check_agent(
    tmp_path: Path,
    agent: AgentConfig,
    *,
    post_call_webhook_id: str | None = WEBHOOK_ID,
    webhooks: tuple[WorkspaceWebhook, ...] = (CALLFLOW_WEBHOOK,),
    mapping: str = MAPPING,
    send_audio: bool = False,
    **settings: Any,
) -> tuple[int, str]:
    sandbox = ElevenLabsSandbox(
        ELEVENLABS_KEY,
        agent,
        post_call_webhook_id=post_call_webhook_id,
        workspace_webhooks=webhooks,
    )
    sandbox.send_audio = send_audio
    server = AsgiServer(sandbox.app).start()
    mapping_file = tmp_path / "mapping.yaml"
    mapping_file.write_text(mapping)
    values: dict[str, Any] = {
        "elevenlabs_base_url": server.url,
        "elevenlabs_api_key": ELEVENLABS_KEY,
        "elevenlabs_agent_id": agent.agent_id,
        "elevenlabs_webhook_secret": "whsec",
        "infobip_sample_rate": 16000,
        "field_mapping_path": str(mapping_file),
    }
    values.update(settings)
    try:
        return run(["elevenlabs", "--api-url", API_URL], Settings(**values))
    finally:
        server.stop()


def test_agent_that_fits_the_phone_leg_passes(tmp_path: Path) -> None:
    code, output = check_agent(tmp_path, AgentConfig())
    assert code == 0, output
    assert "matches the phone leg" in output
    assert "'interruption' is among" in output
    assert f"post-call webhook {WEBHOOK_ID} sends to {API_URL}/webhooks/elevenlabs" in output


def test_agent_without_interruption_events_is_a_problem(tmp_path: Path) -> None:
    events = tuple(e for e in AgentConfig().client_events if e != "interruption")
    code, output = check_agent(tmp_path, AgentConfig(client_events=events))
    assert code == 1
    assert "'interruption' is not among the agent's client events" in output


def test_mapped_item_missing_on_the_agent_is_named(tmp_path: Path) -> None:
    mapping = MAPPING + "  - item: roof_type\n    field: Roof\n    type: text\n"
    code, output = check_agent(tmp_path, AgentConfig(), mapping=mapping)
    assert code == 1
    assert "data-collection item 'roof_type'" in output
    assert "'interested'" not in output.split("PROBLEM")[-1]


def test_other_agent_formats_are_converted_not_refused(tmp_path: Path) -> None:
    agent = AgentConfig(user_input_audio_format="ulaw_8000", agent_output_audio_format="pcm_24000")
    code, output = check_agent(tmp_path, agent)
    assert code == 0, output
    assert "ulaw_8000, the phone leg is pcm_16000: the bridge converts" in output
    assert "pcm_24000, the phone leg is pcm_16000" in output


def test_override_not_enabled_on_the_agent_is_a_problem(tmp_path: Path) -> None:
    overrides = '{"agent": {"first_message": "Hi"}, "tts": {"voice_id": "v1"}}'
    agent = AgentConfig(allowed_overrides=frozenset({"agent.first_message"}))
    code, output = check_agent(tmp_path, agent, elevenlabs_overrides=overrides)
    assert code == 1
    assert "override agent.first_message is enabled" in output
    assert "sets tts.voice_id, but the agent does not allow that override" in output


def test_missing_post_call_webhook_is_a_problem(tmp_path: Path) -> None:
    code, output = check_agent(tmp_path, AgentConfig(), post_call_webhook_id=None, webhooks=())
    assert code == 1
    assert "no post-call webhook is configured" in output
    assert f"{API_URL}/webhooks/elevenlabs" in output


def test_webhook_to_another_deployment_is_a_problem(tmp_path: Path) -> None:
    webhook = replace(CALLFLOW_WEBHOOK, webhook_url="https://old.example.com/webhooks/elevenlabs")
    code, output = check_agent(tmp_path, AgentConfig(), webhooks=(webhook,))
    assert code == 1
    assert "sends to 'https://old.example.com/webhooks/elevenlabs'" in output


def test_auto_disabled_webhook_is_a_problem(tmp_path: Path) -> None:
    webhook = replace(CALLFLOW_WEBHOOK, is_auto_disabled=True)
    code, output = check_agent(tmp_path, AgentConfig(), webhooks=(webhook,))
    assert code == 1
    assert "webhook is disabled" in output


def test_post_call_audio_turned_on_is_a_problem(tmp_path: Path) -> None:
    code, output = check_agent(tmp_path, AgentConfig(), send_audio=True)
    assert code == 1
    assert "also sends audio (post_call_audio)" in output
    assert "disables a webhook after 10+ consecutive failed deliveries" in output


def test_post_call_audio_off_is_reported_done(tmp_path: Path) -> None:
    code, output = check_agent(tmp_path, AgentConfig())
    assert code == 0, output
    assert "post-call audio is off" in output


def test_unknown_agent_points_at_the_agent_id_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = check_agent(tmp_path, AgentConfig(), elevenlabs_agent_id="agent_typo")
    assert code == 1
    assert "check the id in the settings" in capsys.readouterr().err


def test_wrong_elevenlabs_key_names_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = check_agent(tmp_path, AgentConfig(), elevenlabs_api_key="wrong")
    assert code == 1
    assert "check elevenlabs_api_key" in capsys.readouterr().err


def test_override_paths_are_the_leaves() -> None:
    assert override_paths({"agent": {"prompt": {"prompt": "x"}, "language": "en"}}) == [
        "agent.prompt.prompt",
        "agent.language",
    ]


# --- Zoho ----------------------------------------------------------------------------------------


def zoho_settings() -> Settings:
    return Settings(zoho_trigger_secret=SecretStr("trigger-secret-xyz"))


def test_zoho_settings_name_url_method_header_and_body() -> None:
    code, output = run(["zoho", "--api-url", API_URL + "/"], zoho_settings())
    assert code == 0
    assert f"URL to notify:   {API_URL}/webhooks/zoho" in output
    assert "Method:          POST" in output
    assert f"X-Callflow-Secret: {MASK}" in output
    assert "trigger-secret-xyz" not in output
    assert '{"module": "Leads", "record_id": "${Leads.Lead Id}"}' in output


def test_zoho_settings_show_the_secret_and_other_modules_on_request() -> None:
    code, output = run(
        ["zoho", "--api-url", API_URL, "--module", "Deals", "--show-secrets"], zoho_settings()
    )
    assert code == 0
    assert "X-Callflow-Secret: trigger-secret-xyz" in output
    assert '"module": "Deals"' in output and "${Potentials.Potential Id}" in output


def test_zoho_settings_without_trigger_secret_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _ = run(["zoho", "--api-url", API_URL], Settings(zoho_trigger_secret=SecretStr("")))
    assert code == 2
    assert "zoho_trigger_secret is empty" in capsys.readouterr().err


# --- Zoho fields against the module's metadata ---------------------------------------------------


def _stand_in_fields(module: str) -> dict[str, ZohoField]:
    """The Zoho stand-in's metadata for ``module``, read as the client reads the fields API."""
    meta = default_modules()[module]
    return fields_from_listing([f.describe(i) for i, f in enumerate(meta.values())])


def test_zoho_fields_of_the_default_configuration_fit_leads() -> None:
    settings = Settings(zoho_variable_fields="First_Name,Last_Name,Company")
    problems = check_zoho_fields(settings, FieldMapping.load(), ["Leads"], _stand_in_fields)
    assert problems == []


def test_zoho_fields_a_module_lacks_are_named_in_words() -> None:
    settings = Settings(zoho_variable_fields="First_Name,Company", zoho_call_status_field="AI_Call")
    problems = check_zoho_fields(settings, FieldMapping.load(), ["Contacts"], _stand_in_fields)
    text = "\n".join(problems)
    assert "Contacts has no field Company (in zoho_variable_fields" in text
    assert "Contacts has no field AI_Call (set by zoho_call_status_field)" in text
    assert "Contacts has no field Interested (mapped from 'interested'" in text
    assert "Lead_Status" not in text  # that entry is for Leads only


def test_zoho_field_of_an_incompatible_type_is_named() -> None:
    mapping = FieldMapping.parse(
        "mappings:\n"
        "  - {item: bill, field: Monthly_Bill, type: boolean}\n"
        "  - {item: status, field: Lead_Status, type: picklist, choices: [Qualified, Hot]}\n"
    )
    problems = check_zoho_fields(Settings(), mapping, ["Leads"], _stand_in_fields)
    assert (
        "Leads.Monthly_Bill is a currency field, but the mapping writes it as boolean"
        in (problems[0])
    )
    assert "Leads.Lead_Status has no choice 'Hot'" in problems[1]
    assert len(problems) == 2


def test_zoho_phone_field_of_the_wrong_type_is_named() -> None:
    settings = Settings(zoho_phone_field="Interested", zoho_variable_fields="")
    problems = check_zoho_fields(settings, FieldMapping([]), ["Leads"], _stand_in_fields)
    assert problems == [
        "Leads.Interested is a boolean field; zoho_phone_field needs one of phone, text"
    ]


def test_the_opt_out_field_must_be_a_checkbox() -> None:
    fine = Settings(optout_field="Do_Not_Call", zoho_variable_fields="")
    assert check_zoho_fields(fine, FieldMapping([]), ["Leads"], _stand_in_fields) == []
    wrong = Settings(optout_field="Company", zoho_variable_fields="")
    assert check_zoho_fields(wrong, FieldMapping([]), ["Leads"], _stand_in_fields) == [
        "Leads.Company is a text field; optout_field needs one of boolean"
    ]
    absent = check_zoho_fields(fine, FieldMapping([]), ["Contacts"], _stand_in_fields)
    assert absent == ["Contacts has no field Do_Not_Call (set by optout_field); check its API name"]


def test_zoho_setup_prints_the_campaign_button_for_the_deployment_and_module() -> None:
    settings = Settings(
        zoho_trigger_secret=SecretStr("trigger-secret-xyz"),
        status_api_token=SecretStr("status-token-abc"),
    )
    code, output = run(["zoho", "--api-url", API_URL + "/", "--module", "Contacts"], settings)
    assert code == 0
    button = output[output.index("Start a campaign from the Contacts list view") :]
    assert "string button.callflowCampaignContacts(string recordIds)" in button
    assert f'url: "{API_URL}/campaigns"' in button
    assert 'body.put("module", "Contacts");' in button and 'source.put("ids", ids);' in button
    assert "recordIds = Contacts - Contact Id" in button
    assert 'connection: "callflow"' in button and "Parameter Key: Authorization" in button
    assert "status-token-abc" not in output and "getOrgVariable" not in button
    assert button.count("{") == button.count("}")  # the pasted function is whole


def test_zoho_campaign_button_can_read_the_token_from_an_org_variable() -> None:
    code, output = run(
        ["zoho", "--api-url", API_URL, "--token-from", "org-variable"], zoho_settings()
    )
    assert code == 0
    assert 'zoho.crm.getOrgVariable("callflow_api_token")' in output
    assert "connection:" not in output and "recordIds = Leads - Lead Id" in output


def test_zoho_setup_refuses_a_module_that_is_not_an_api_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, output = run(["zoho", "--api-url", API_URL, "--module", 'Leads");x("'], zoho_settings())
    assert code == 2 and output == ""
    assert "--module must be a Zoho module API name" in capsys.readouterr().err


def test_setup_checks_every_flows_agent(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "fits.yaml").write_text(
        "agent: {agent_id: agent_sandbox}\n"
        "mapping:\n  - {item: interested, field: I, type: boolean}\n"
    )
    (flows / "lacks.yaml").write_text(
        "agent: {agent_id: agent_sandbox}\nmapping:\n  - {item: roof_type, field: R, type: text}\n"
    )
    (flows / "gone.yaml").write_text("agent: {agent_id: agent_gone}\n")
    code, output = check_agent(tmp_path, AgentConfig(), flows_dir=str(flows))
    assert code == 1
    assert "3 flow file(s) load: fits, gone, lacks" in output
    assert "flow gone (" in output and "names agent agent_gone" in output
    assert "data-collection item 'roof_type'" in output
    assert output.count("PROBLEM") == 2, output
